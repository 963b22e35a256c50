"""app.py: LiveApp over real FileSources, a real OscSender on real UDP sockets, History."""

from __future__ import annotations

import math
import socket
import threading
import time

import numpy as np
import pytest
from pythonosc.osc_message import OscMessage

from mer_live.inference.model import Model
from mer_live.live.app import History, LiveApp
from mer_live.live.pipeline import PipelineConfig
from mer_live.live.records import Estimate
from mer_live.outputs.osc import OscConfig, OscSender
from mer_live.sources.filesource import FileSource, SourceError

SR = 22050
OUR_THREADS = ("mer-pipeline", "FileSource(", "mer-osc")


def _ours() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(OUR_THREADS) and t.is_alive()]


@pytest.fixture(scope="module")
def model(loudness_model) -> Model:
    return Model(loudness_model, provider="cpu")


@pytest.fixture(scope="module")
def clips() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(21)
    return {
        "loud": (0.3 * rng.standard_normal(SR * 2)).astype(np.float32),
        "quiet": (0.004 * rng.standard_normal(SR * 2)).astype(np.float32),
    }


def _factory(clips: dict[str, np.ndarray]):
    def open_source(spec):
        if spec not in clips:
            raise SourceError(f"no such input: {spec!r}")
        return FileSource(clips[spec], SR, realtime=True, loop=True, blocksize=512, name=spec)

    return open_source


def _wait(cond, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


def _est(wall: float, a: float = 0.5) -> Estimate:
    return Estimate(t=wall, wall=wall, arousal_raw=a, valence_raw=0.5, arousal=a, valence=0.5,
                    level_rms_db=-20, level_peak_db=-6, silent=False, clipping=False, input_ok=True,
                    bad_samples=0, model_ms=1.0, latency_ms=5.0, overflows=0, hops_skipped=0)


def test_history_keeps_a_time_window_and_snapshots_safely():
    h = History(seconds=2.0)
    for i in range(50):
        h(_est(100.0 + 0.1 * i))
    snap = h.snapshot()
    assert snap[-1].wall == pytest.approx(104.9)
    assert snap[0].wall >= 104.9 - 2.0 - 1e-9 and len(snap) == 21
    snap.clear()  # a copy: the history is untouched
    assert len(h) == 21

    stop = threading.Event()

    def writer():
        w = 200.0
        while not stop.is_set():
            w += 0.01
            h(_est(w))

    t = threading.Thread(target=writer)
    t.start()
    try:
        for _ in range(200):
            s = h.snapshot()
            assert all(s[i].wall <= s[i + 1].wall for i in range(len(s) - 1))
    finally:
        stop.set()
        t.join(5)
    with pytest.raises(ValueError):
        History(0)


def test_history_keeps_events_for_the_window():
    """History is an event sink too (the pipeline's fan-out finds its ``event``): the window reads
    beats and sections on its timer; old ones go with the time window; clear() empties both."""
    from mer_live.live.records import Event
    from mer_live.live.sinks import Sinks

    h = History(seconds=2.0)
    sinks = Sinks([h])
    for i in range(30):
        sinks.event(Event("beat", i + 1, 0.1 * i, 100.0 + 0.1 * i, bpm=600.0))
    sinks.event(Event("section", 1, 3.0, 103.0))
    ev = h.events()
    assert ev[-1].kind == "section" and ev[0].wall >= 103.0 - 2.0 - 1e-9 and len(ev) == 21
    ev.clear()  # a copy
    assert len(h.events()) == 21
    h.clear()
    assert h.events() == [] and h.snapshot() == []


def test_start_stop_leaves_no_threads(model, clips):
    before = _ours()
    app = LiveApp(model, PipelineConfig(), _factory(clips), device="loud")
    app.start()
    try:
        assert app.running
        assert _wait(lambda: sum(e.music for e in app.history.snapshot()) >= 3), "no estimates within 10 s"
    finally:
        t0 = time.monotonic()
        app.stop()
        stop_s = time.monotonic() - t0
        app.stop()  # idempotent
    assert not app.running
    assert _wait(lambda: _ours() == before, timeout=2.0), f"threads left: {_ours()}"
    assert stop_s < 5.0  # generous bound; a hang would be caught here rather than by the suite timeout
    assert app.history.snapshot()[-1].arousal > 0.8


def test_switch_device_between_two_file_sources(model, clips):
    app = LiveApp(model, PipelineConfig(attack_s=0.0, release_s=0.0), _factory(clips), device="loud")
    app.start()
    try:
        assert _wait(lambda: app.pipeline.latest is not None and app.pipeline.latest.arousal > 0.8)
        first = app.source
        app.switch_device("quiet")
        assert app.source_name == "quiet" and app.device == "quiet"
        assert _wait(lambda: app.pipeline.latest.arousal < 0.2), "the quiet input never arrived"
        assert not first.ok  # the old input was stopped
        with pytest.raises(SourceError, match="nope"):
            app.switch_device("nope")
        assert app.source_name == "quiet" and app.running  # the show goes on with the old input
        st = app.status()
        assert st["source"] == "quiet" and st["samplerate"] == SR and st["model"] == "loudness-test"
        assert st["provider"] == "CPUExecutionProvider"
        assert st["model_ms"] > 0 and math.isfinite(st["latency_ms"])
        assert st["osc_targets"] == [] and st["running"]
    finally:
        app.stop()
    assert not any(n.startswith("FileSource(") for n in _ours())


def test_restart_after_stop(model, clips):
    app = LiveApp(model, PipelineConfig(), _factory(clips), device="loud")
    app.start()
    assert _wait(lambda: len(app.history) >= 1)
    app.stop()
    n = app.pipeline.hops
    app.start()
    try:
        assert _wait(lambda: app.pipeline.hops > n)
    finally:
        app.stop()
    assert not app.running


def test_osc_sender_as_sink_and_target_switch(model, clips):
    socks = []
    for _ in range(2):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.2)
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    osc = OscSender(OscConfig(targets=[f"127.0.0.1:{ports[0]}"], rate_hz=20.0))
    app = LiveApp(model, PipelineConfig(), _factory(clips), osc=osc, device="loud")

    def arousal_from(sock: socket.socket, timeout: float = 10.0) -> float | None:
        deadline = time.monotonic() + timeout
        live = False
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            m = OscMessage(data)
            # the values are the model's once /mer/quadrant is 1..4 (/mer/music says "music" from
            # the gate's first word, before the emotion window is full)
            live = live or (m.address == "/mer/quadrant" and m.params[0] > 0)
            if m.address == "/mer/arousal" and live:
                return float(m.params[0])
        return None

    app.start()
    try:
        assert _wait(lambda: app.pipeline.latest is not None and app.pipeline.latest.music)
        a = arousal_from(socks[0])
        assert a is not None and a > 0.8
        app.set_osc_targets([f"127.0.0.1:{ports[1]}"])
        assert arousal_from(socks[1]) is not None
        st = app.status()
        assert st["osc_targets"] == [f"127.0.0.1:{ports[1]}"]
        assert _wait(lambda: app.status()["osc_rate_hz"] > 5)
    finally:
        app.stop()
        for s in socks:
            s.close()
    assert not any(n.startswith("mer-osc") for n in _ours())


def test_file_run_ends_by_itself(model):
    x = (0.2 * np.random.default_rng(2).standard_normal(SR * 3)).astype(np.float32)
    app = LiveApp(model, PipelineConfig(),
                  lambda spec: FileSource(x, SR, realtime=False, name="file"), device=None)
    app.start()
    assert app.wait(30.0)
    assert not app.running and len(app.history) == 30  # boundaries at 0.1 .. 3.0 s
    assert sum(e.music for e in app.history.snapshot()) == 21  # a full window at 1.0 .. 3.0 s
    app.stop()


def test_bad_device_at_construction_propagates(model, clips):
    with pytest.raises(SourceError, match="no such input"):
        LiveApp(model, PipelineConfig(), _factory(clips), device="missing")
