"""End to end through real parts: null sink -> PortAudio -> DeviceSource -> Pipeline (the loudness
test model, onnxruntime) -> OscSender -> a UDP socket, parsed as OSC. Louder, busier audio must
give higher arousal on the wire than quiet, sparse audio."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from mer_live.inference.model import Model
from mer_live.live.pipeline import Pipeline, PipelineConfig
from mer_live.outputs.osc import OscConfig, OscSender
from mer_live.sources.capture import CaptureConfig, DeviceSource
from tests.audio import SINK_RATE, PulseServer, pulse_fixture, write_wav  # noqa: F401
from tests.outputs.test_osc import Receiver

pytestmark = [pytest.mark.audio, pytest.mark.slow, pytest.mark.timeout(120)]


def noise_bursts(seconds: float, amp: float, burst_s: float, every_s: float, seed: int) -> np.ndarray:
    """Noise bursts of ``burst_s`` every ``every_s`` (busy when they touch, sparse when far apart)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SINK_RATE)
    x = (amp * rng.standard_normal(n)).astype(np.float32)
    t = np.arange(n) / SINK_RATE
    x[(t % every_s) >= burst_s] = 0.0
    return np.repeat(np.clip(x, -1, 1)[:, None], 2, axis=1)


def play_and_listen(pulse: PulseServer, wav, receiver: Receiver) -> list[tuple[float, float]]:
    """Play ``wav`` into the sink and return (receive time, raw arousal) while it plays."""
    got: list[tuple[float, float]] = []
    seen = 0
    p = pulse.play(wav, wait=False)
    deadline = time.monotonic() + 30
    while p.poll() is None and time.monotonic() < deadline:
        receiver.pump(lambda r, n=seen: len(r.messages) > n, timeout=0.1)
        for m in receiver.messages[seen:]:
            if m.address == "/mer/arousal_raw":
                got.append((time.monotonic(), float(m.params[0])))
        seen = len(receiver.messages)
    assert p.poll() == 0, "paplay did not finish"
    return got


def tail_median(values: list[tuple[float, float]], frac: float = 0.4) -> float:
    assert len(values) >= 10, f"only {len(values)} values received"
    t0, t1 = values[0][0], values[-1][0]
    tail = [v for t, v in values if t >= t1 - frac * (t1 - t0)]
    return float(np.median(tail))


def test_loud_busy_beats_quiet_sparse_on_the_wire(pulse: PulseServer, loudness_model, tmp_path) -> None:
    quiet = write_wav(tmp_path / "quiet.wav", noise_bursts(3.0, 0.02, 0.05, 0.25, seed=1))
    loud = write_wav(tmp_path / "loud.wav", noise_bursts(3.0, 0.3, 0.2, 0.2, seed=2))
    receiver = Receiver()
    with pulse.activate():
        model = Model(loudness_model, provider="cpu")
        source = DeviceSource(CaptureConfig(device="pulse"))
        osc = OscSender(OscConfig(targets=[f"127.0.0.1:{receiver.port}"], rate_hz=20))
        pipe = Pipeline(source, model, PipelineConfig(hop_s=0.1), sinks=[osc])
        osc.start()
        pipe.start()
        try:
            quiet_vals = play_and_listen(pulse, quiet, receiver)
            loud_vals = play_and_listen(pulse, loud, receiver)
            stats = osc.stats()
        finally:
            pipe.stop()
            osc.stop()
            receiver.close()
    q, lo = tail_median(quiet_vals), tail_median(loud_vals)
    print(f"arousal on the wire: quiet sparse {q:.3f}, loud busy {lo:.3f}")
    assert lo > 0.8, f"loud arousal {lo:.2f}"
    assert q < 0.4, f"quiet arousal {q:.2f}"
    assert lo - q > 0.4
    assert [v for _, v in quiet_vals + loud_vals] == pytest.approx(
        np.clip([v for _, v in quiet_vals + loud_vals], 0, 1))
    inputs = receiver.values("/mer/input")
    assert inputs and all(v == [1] for v in inputs[-10:])
    assert stats["per_target"][f"127.0.0.1:{receiver.port}"]["errors"] == 0
    assert source.overflows == 0


def test_device_loss_reaches_the_wire_and_recovers(
    pulse: PulseServer, loudness_model, tmp_path, caplog
) -> None:
    """Server killed mid-show: /mer/input goes 0 while values keep coming, the log says so once
    (not a flood), and it comes back to 1 by itself."""
    caplog.set_level(logging.WARNING, logger="mer_live")
    loud = write_wav(tmp_path / "loud.wav", noise_bursts(2.0, 0.3, 0.2, 0.2, seed=3))
    receiver = Receiver()
    with pulse.activate():
        model = Model(loudness_model, provider="cpu")
        source = DeviceSource(CaptureConfig(device="pulse", retry_s=0.3))
        osc = OscSender(OscConfig(targets=[f"127.0.0.1:{receiver.port}"], rate_hz=20))
        pipe = Pipeline(source, model, PipelineConfig(hop_s=0.1), sinks=[osc])
        osc.start()
        pipe.start()
        try:
            assert receiver.pump(lambda r: [1] in r.values("/mer/input"), timeout=10)
            pulse.kill_server()
            assert receiver.pump(lambda r: [0] in r.values("/mer/input"), timeout=10), "loss not on the wire"
            n_lost, hb_lost = len(receiver.messages), len(receiver.values("/mer/heartbeat"))
            assert receiver.pump(lambda r: len(r.values("/mer/heartbeat")) >= hb_lost + 2, timeout=10), \
                "heartbeat stopped while the input was lost"
            assert len(receiver.messages) > n_lost, "sending stopped while the input was lost"
            pulse.start()
            mark = len(receiver.messages)
            assert receiver.pump(lambda r: [1] in [m.params for m in r.messages[mark:]
                                                   if m.address == "/mer/input"], timeout=15)
            assert source.ok and pipe.running
            vals = play_and_listen(pulse, loud, receiver)
        finally:
            pipe.stop()
            osc.stop()
            receiver.close()
    assert source.losses == 1
    assert tail_median(vals) > 0.8, "values did not flow again after the device came back"
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len([m for m in said if "no input" in m]) == 1, said
