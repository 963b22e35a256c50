"""Capture through a real PortAudio device: ALSA's ``pulse`` plugin on a private null sink."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest

from mer_live.sources.capture import (
    CaptureConfig,
    DeviceError,
    DeviceSource,
    default_blocksize,
    format_devices,
    list_devices,
    resolve_device,
)
from tests.audio import PulseServer, dominant_hz, pulse_fixture, tone, write_wav  # noqa: F401

pytestmark = [pytest.mark.audio, pytest.mark.timeout(120)]


def wait_until(pred, timeout: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())


# -- pure matching rules (a fixed device table, no PortAudio) -----------------------------------
TABLE = [
    {"index": 0, "name": "Scarlett 2i2 USB", "hostapi": "ALSA", "max_input_channels": 2,
     "default_samplerate": 48000.0},
    {"index": 3, "name": "Scarlett", "hostapi": "ALSA", "max_input_channels": 2,
     "default_samplerate": 48000.0},
    {"index": 4, "name": "Built-in Mic", "hostapi": "ALSA", "max_input_channels": 1,
     "default_samplerate": 44100.0},
    {"index": 5, "name": "USB Audio Mic", "hostapi": "ALSA", "max_input_channels": 1,
     "default_samplerate": 44100.0},
]


def test_exact_name_wins_over_substring() -> None:
    assert resolve_device("Scarlett", TABLE) == 3
    assert resolve_device("scarlett", TABLE) == 3
    assert resolve_device("2i2", TABLE) == 0


def test_ambiguous_substring_lists_candidates() -> None:
    with pytest.raises(DeviceError) as e:
        resolve_device("mic", TABLE)
    msg = str(e.value)
    assert "ambiguous" in msg and "4 'Built-in Mic'" in msg and "5 'USB Audio Mic'" in msg
    assert "\n" not in msg


def test_index_and_digit_string() -> None:
    assert resolve_device(4, TABLE) == 4
    assert resolve_device(" 5 ", TABLE) == 5
    assert resolve_device(None, TABLE) is None
    with pytest.raises(DeviceError, match=r"no input device with index 1; inputs: 0 'Scarlett 2i2 USB'"):
        resolve_device(1, TABLE)


def test_config_validation() -> None:
    assert CaptureConfig(device="pulse", samplerate=48000).validate().device == "pulse"
    for bad in (
        dict(samplerate=10),
        dict(blocksize=-1),
        dict(channels=0),
        dict(retry_s=0),
        dict(device=""),
        dict(device=True),
        dict(ring_seconds=0.1),
    ):
        with pytest.raises(ValueError) as e:  # checked when made (mer_live.common.validate)
            CaptureConfig(**bad)
        key = next(iter(bad))
        assert "\n" not in str(e.value) and str(e.value).startswith(f"[capture] {key} must be ")
    cfg = CaptureConfig()
    cfg.channels = 0  # changed after it was made: validate() checks again
    with pytest.raises(ValueError, match=r"^\[capture\] channels must be an integer in 1..64, got 0$"):
        cfg.validate()


# -- the real device list under the null sink ---------------------------------------------------
def test_resolve_through_portaudio(pulse: PulseServer) -> None:
    with pulse.activate():
        devs = list_devices()
        names = [d["name"] for d in devs]
        assert "pulse" in names and "default" in names
        idx = {d["name"]: d["index"] for d in devs}
        assert resolve_device("pulse") == idx["pulse"]
        assert resolve_device("PULSE") == idx["pulse"]
        assert resolve_device("puls") == idx["pulse"]
        assert resolve_device(str(idx["default"])) == idx["default"]
        with pytest.raises(DeviceError) as e:
            resolve_device("ul")  # in both 'pulse' and 'default'
        assert "ambiguous" in str(e.value) and "'pulse'" in str(e.value) and "'default'" in str(e.value)
        with pytest.raises(DeviceError) as e:
            resolve_device("Scarlett")
        assert str(e.value) == (
            "no input device matches 'Scarlett'; inputs: "
            + ", ".join(f"{d['index']} {d['name']!r}" for d in devs)
        )
        table = format_devices()
        assert "pulse" in table and "ALSA" in table


def test_missing_device_at_start_is_one_line_error(pulse: PulseServer) -> None:
    with pulse.activate():
        with pytest.raises(DeviceError) as e:
            DeviceSource(CaptureConfig(device="Scarlett"))
        assert "inputs:" in str(e.value) and "'pulse'" in str(e.value) and "\n" not in str(e.value)


def test_captures_a_tone(pulse: PulseServer, tmp_path) -> None:
    wav = write_wav(tmp_path / "a440.wav", tone(440.0, 1.0, amp=0.5))
    with pulse.activate():
        src = DeviceSource(CaptureConfig(device="pulse"))
        assert src.channels == 2 and src.samplerate > 0 and src.ring.channels == 2
        src.start()
        try:
            assert src.ok
            assert wait_until(lambda: src.ring.frames_written > 0, 5.0), "no callback within 5 s"
            src.ring.read_new()
            pulse.play(wav)
            x = src.ring.read_new()
        finally:
            src.stop()
    loud = x[np.abs(x[:, 0]) > 0.0]
    assert len(loud) > 0.8 * src.samplerate, f"captured only {len(loud)} non-silent frames"
    assert 0.4 < np.abs(x).max() < 0.6
    assert abs(dominant_hz(loud, src.samplerate) - 440.0) < 2.0
    assert src.overflows == 0


def _capture_with_block_sizes(src: DeviceSource, pulse: PulseServer, wav) -> tuple[list[int], np.ndarray]:
    """Start ``src``, play ``wav`` into the sink and return (frames of every callback, the audio)."""
    sizes: list[int] = []
    real = src._callback

    def spy(indata, frames, time_info, status):
        sizes.append(frames)
        real(indata, frames, time_info, status)

    src._callback = spy
    src.start()
    try:
        assert wait_until(lambda: src.ring.frames_written > 0, 5.0), "no callback within 5 s"
        src.ring.read_new()
        pulse.play(wav)
        x = src.ring.read_new()
    finally:
        src.stop()
    return sizes, x


def test_low_latency_opens_at_the_model_rate_in_small_blocks(pulse: PulseServer, tmp_path) -> None:
    """--low-latency: the PulseAudio device accepts the model's rate, so it opens at 16 kHz (no
    resampler in mer-live) with 128-frame callbacks, and still captures the tone."""
    wav = write_wav(tmp_path / "a440.wav", tone(440.0, 1.0, amp=0.5))
    with pulse.activate():
        plain = DeviceSource(CaptureConfig(device="pulse"), model_rate=16000)
        assert plain.samplerate != 16000 and plain.blocksize == 0  # off by default
        src = DeviceSource(CaptureConfig(device="pulse", low_latency=True), model_rate=16000)
        assert src.samplerate == 16000 and src.blocksize == 128
        # given the pipeline's hop, blocks divide it: every hop boundary ends a callback block
        hop = DeviceSource(CaptureConfig(device="pulse", low_latency=True), model_rate=16000,
                           hop_frames=1600)
        assert hop.blocksize == 100
        pinned = DeviceSource(CaptureConfig(device="pulse", low_latency=True, blocksize=256),
                              model_rate=16000, hop_frames=1600)
        assert pinned.blocksize == 256  # an explicit --blocksize wins
        sizes, x = _capture_with_block_sizes(src, pulse, wav)
    assert set(sizes) == {128}
    loud = x[np.abs(x[:, 0]) > 0.0]
    assert len(loud) > 0.8 * 16000
    assert abs(dominant_hz(loud, 16000) - 440.0) < 2.0


def test_default_blocksize_divides_the_hop_at_the_device_rate() -> None:
    assert default_blocksize(48000, 4800, 0.02) == 960  # 0.1-s hop: 5 blocks of 20 ms
    assert default_blocksize(44100, 4410, 0.02) == 882
    assert default_blocksize(48000, 1200, 0.02) == 600  # 0.025-s hop: 2 blocks
    assert default_blocksize(48000, 4800.5, 0.02) == 0  # not whole frames: PortAudio's choice
    assert default_blocksize(48000, 4801, 0.02) == 0  # a prime-ish hop: nothing in 240..960 divides it


def test_default_blocks_are_20_ms_that_end_on_hop_boundaries(pulse: PulseServer, tmp_path) -> None:
    """Without --low-latency the device runs at its own rate in blocks that divide the hop there
    (fewer wake-ups than PortAudio's ~8.6-ms choice), and the tone still arrives intact."""
    wav = write_wav(tmp_path / "a440.wav", tone(440.0, 1.0, amp=0.5))
    with pulse.activate():
        src = DeviceSource(CaptureConfig(device="pulse"), model_rate=16000, hop_frames=1600)
        hop_dev = 1600 * src.samplerate // 16000
        assert src.samplerate != 16000 and src.blocksize == default_blocksize(src.samplerate, hop_dev, 0.02)
        assert hop_dev % src.blocksize == 0 and src.blocksize > 0.01 * src.samplerate
        sizes, x = _capture_with_block_sizes(src, pulse, wav)
    assert set(sizes) == {src.blocksize}
    loud = x[np.abs(x[:, 0]) > 0.0]
    assert abs(dominant_hz(loud, src.samplerate) - 440.0) < 2.0


def test_starved_consumer_keeps_newest_and_counts(pulse: PulseServer, tmp_path) -> None:
    """Nobody reads the ring for longer than it holds: oldest frames are lost, newest kept."""
    first = write_wav(tmp_path / "a300.wav", tone(300.0, 1.5))
    second = write_wav(tmp_path / "a1000.wav", tone(1000.0, 0.8))
    with pulse.activate():
        src = DeviceSource(CaptureConfig(device="pulse", ring_seconds=1.0))
        src.start()
        try:
            assert wait_until(lambda: src.ring.frames_written > 0, 5.0)
            src.ring.read_new()
            pulse.play(first)
            pulse.play(second)
            time.sleep(0.1)
            x = src.ring.read_new()
            assert src.ok, "a starved consumer must not look like a lost device"
        finally:
            src.stop()
    assert len(x) == src.ring.capacity
    assert src.ring.frames_lost > src.samplerate  # 1.5 s + 0.8 s played into a 1 s ring
    tail = x[-int(0.5 * src.samplerate) - int(0.1 * src.samplerate): -int(0.1 * src.samplerate)]
    assert abs(dominant_hz(tail, src.samplerate) - 1000.0) < 5.0


def test_overflow_flag_counted_in_callback(pulse: PulseServer) -> None:
    """PortAudio's input-overflow flag is counted and the block still lands in the ring.

    The ALSA ``pulse`` plugin buffers instead of reporting overflows (measured: a callback that
    sleeps 3 s gets no flag), so the flag is fed to the real callback as PortAudio would set it.
    """
    import sounddevice as sd

    with pulse.activate():
        src = DeviceSource(CaptureConfig(device="pulse", ring_seconds=1.0))
    block = np.full((64, src.channels), 0.25, np.float32)
    src._callback(block, 64, None, sd.CallbackFlags())
    src._callback(block, 64, None, sd.CallbackFlags(sd._lib.paInputOverflow))
    src._callback(block, 64, None, sd.CallbackFlags(sd._lib.paInputOverflow | sd._lib.paInputUnderflow))
    assert src.overflows == 2
    assert src.ring.frames_written == 192
    assert np.allclose(src.ring.read_new(), 0.25)


def test_device_lost_and_back(pulse: PulseServer, tmp_path, caplog) -> None:
    wav = write_wav(tmp_path / "a440.wav", tone(440.0, 0.8))
    caplog.set_level(logging.INFO, logger="mer_live.sources.capture")
    with pulse.activate():
        src = DeviceSource(CaptureConfig(device="pulse", retry_s=0.2))
        src.start()
        try:
            assert wait_until(lambda: src.ring.frames_written > 0, 5.0)
            pulse.kill_server()
            assert wait_until(lambda: not src.ok, 3.0), "loss not noticed within 3 s"
            assert src.message == "no input: pulse lost, retrying"
            time.sleep(1.5)  # several retries (retry_s=0.2) while the server is down
            warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert len(warnings) == 1, [r.getMessage() for r in warnings]
            assert "lost" in warnings[0].getMessage()
            pulse.start()
            assert wait_until(lambda: src.ok, 10.0), "input did not come back within 10 s"
            assert any(r.getMessage().startswith("input back") for r in caplog.records)
            src.ring.read_new()
            pulse.play(wav)
            x = src.ring.read_new()
        finally:
            src.stop()
    assert src.losses == 1
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    loud = x[np.abs(x[:, 0]) > 0.0]
    assert len(loud) > 0.5 * src.samplerate
    assert abs(dominant_hz(loud, src.samplerate) - 440.0) < 3.0


def test_wait_for_device_at_start(pulse: PulseServer, caplog) -> None:
    caplog.set_level(logging.INFO, logger="mer_live.sources.capture")
    with pulse.activate():
        pulse.kill_server()
        from mer_live.sources.capture import rescan_devices

        rescan_devices()
        with pytest.raises(DeviceError):
            DeviceSource(CaptureConfig(device="pulse"))
        cancel = threading.Event()
        box: dict = {}

        def make() -> None:
            try:
                box["src"] = DeviceSource(CaptureConfig(device="pulse", wait_for_device=True, retry_s=0.2),
                                          cancel=cancel)
            except DeviceError as e:
                box["err"] = e

        t = threading.Thread(target=make, daemon=True)
        t.start()
        time.sleep(1.0)
        assert t.is_alive() and not box, "should still be waiting for the device"
        pulse.start()
        t.join(10.0)
        if t.is_alive():
            cancel.set()
            t.join(2.0)
            pytest.fail("device appeared but the source kept waiting")
        src = box["src"]
        src.start()
        try:
            assert wait_until(lambda: src.ring.frames_written > 0, 5.0)
        finally:
            src.stop()
    waits = [r for r in caplog.records if r.getMessage().startswith("waiting for input device")]
    assert len(waits) == 1
