"""filesource.py: decoding, paced vs unpaced writing, back-pressure, loop, errors, playback fallback."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest
import soundfile as sf

from mer_live.sources.filesource import FileSource, SourceError
from tests.conftest import missing


def _stereo(sr: int, seconds: float) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return np.stack([0.5 * np.sin(2 * np.pi * 220 * t), 0.25 * np.sin(2 * np.pi * 330 * t)], 1).astype(
        np.float32
    )


def _drain(src: FileSource, until_frames: int, timeout: float = 10.0, chunk: int | None = None) -> np.ndarray:
    """Read from the ring like a (slow) consumer until ``until_frames`` arrived or the source ended."""
    got, n = [], 0
    deadline = time.monotonic() + timeout
    while n < until_frames and time.monotonic() < deadline:
        b = src.ring.read_new(chunk)
        if b.shape[0]:
            got.append(b)
            n += b.shape[0]
        elif src.finished and src.ring.available() == 0:
            break
        else:
            time.sleep(0.001)
    assert time.monotonic() < deadline, "timed out waiting for the source"
    return np.concatenate(got) if got else np.zeros((0, src.channels), np.float32)


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG", "MP3"])
def test_decodes_formats_and_keeps_channels(tmp_path, fmt):
    sr = 22050 if fmt != "MP3" else 44100
    x = _stereo(sr, 1.0)
    path = tmp_path / f"a.{fmt.lower()}"
    try:
        sf.write(str(path), x, sr, format=fmt)
    except Exception as e:  # libsndfile without an encoder for this format (libsndfile1 >= 1.1 has all)
        missing(f"libsndfile cannot write {fmt} here: {e}")
    src = FileSource(path, realtime=False)
    assert src.samplerate == sr and src.channels == 2 and src.name == path.name
    if fmt in ("WAV", "FLAC"):
        np.testing.assert_allclose(src.data, x, atol=1e-4)
    else:  # lossy: same length within the codec's padding, same energy
        assert abs(src.data.shape[0] - x.shape[0]) < 0.1 * sr
        assert np.std(src.data[:, 0]) == pytest.approx(np.std(x[:, 0]), rel=0.15)


def test_unpaced_never_loses_audio_with_a_slow_consumer():
    sr = 8000
    x = np.random.default_rng(0).standard_normal((sr * 5, 2)).astype(np.float32)
    # ring of 0.25 s, 5 s of audio, consumer reads small chunks: the writer must wait, not overwrite
    src = FileSource(x, sr, realtime=False, blocksize=256, ring_seconds=0.25)
    src.start()
    try:
        out = _drain(src, x.shape[0], chunk=300)
    finally:
        src.stop()
    assert src.ring.frames_lost == 0
    np.testing.assert_array_equal(out, x)
    assert src.finished and src.message.startswith("finished")


def test_paced_writes_in_real_time_and_keeps_the_audio():
    sr = 8000
    x = _stereo(sr, 1.5)
    src = FileSource(x, sr, realtime=True, blocksize=400)
    unpaced = FileSource(x, sr, realtime=False, blocksize=400)
    src.start()
    unpaced.start()
    try:
        assert unpaced.join(5.0) and unpaced.finished  # fits in the ring: done at once
        time.sleep(0.2)
        assert not src.finished  # 1.5 s of audio cannot have been "played" yet
        assert 0 < src.ring.frames_written < x.shape[0]
        out = _drain(src, x.shape[0], timeout=10.0)
        assert src.join(5.0) and src.finished
    finally:
        src.stop()
        unpaced.stop()
    np.testing.assert_array_equal(out, x)
    log = list(src.write_log)
    assert log[-1][0] == x.shape[0]
    assert all(a[0] < b[0] and a[1] <= b[1] for a, b in zip(log, log[1:], strict=False))  # in order


def test_loop_repeats_and_never_finishes():
    sr = 8000
    x = np.arange(1000, dtype=np.float32) / 1000
    src = FileSource(x, sr, realtime=False, loop=True, blocksize=128, ring_seconds=0.5)
    src.start()
    try:
        out = _drain(src, 3500)
        assert not src.finished
    finally:
        src.stop()
    assert src.join(1.0)  # stop() joined the writer thread
    np.testing.assert_array_equal(out[:3000, 0], np.tile(x, 3))


def test_stop_is_prompt_and_idempotent():
    src = FileSource(np.zeros(8000 * 60, np.float32), 8000, realtime=True)
    src.start()
    t0 = time.monotonic()
    src.stop()
    src.stop()
    assert src.join(1.0)
    assert not src.ok
    assert time.monotonic() - t0 < 5.0  # generous: a stuck thread would hang for the whole minute


def test_restart_plays_from_the_beginning():
    x = np.arange(500, dtype=np.float32)
    src = FileSource(x, 8000, realtime=False)
    src.start()
    a = _drain(src, 500)
    src.stop()
    src.start()
    b = _drain(src, 500)
    src.stop()
    np.testing.assert_array_equal(a, b)


def test_corrupt_and_missing_files_give_one_line_errors(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" + bytes(100))
    with pytest.raises(SourceError, match="broken.wav") as ei:
        FileSource(bad)
    assert "\n" not in str(ei.value)
    with pytest.raises(SourceError, match="not found"):
        FileSource(tmp_path / "nope.flac")
    text = tmp_path / "notes.mp3"
    text.write_text("this is not audio\n" * 50)
    with pytest.raises(SourceError, match="notes.mp3") as ei:
        FileSource(text)
    assert "does not exist" not in str(ei.value)  # libsndfile's misleading text is replaced
    assert "not a valid or supported audio file" in str(ei.value)
    with pytest.raises(SourceError, match="samplerate"):
        FileSource(np.zeros(10, np.float32))


def test_play_without_output_device_warns_once_and_carries_on(caplog, monkeypatch):
    import sounddevice as sd

    try:
        has_output = sd.query_devices(kind="output") is not None
    except Exception:
        has_output = False
    if has_output:
        pytest.skip("this machine has an output device")
    x = np.random.default_rng(1).standard_normal(4000).astype(np.float32) * 0.1
    src = FileSource(x, 8000, realtime=True, play=True, blocksize=500)
    with caplog.at_level(logging.WARNING, logger="mer_live.sources.filesource"):
        src.start()
        try:
            out = _drain(src, 4000, timeout=10.0)
        finally:
            src.stop()
    warnings = [r for r in caplog.records if "no audio output" in r.getMessage()]
    assert len(warnings) == 1 and "\n" not in warnings[0].getMessage()
    np.testing.assert_array_equal(out[:, 0], x)
