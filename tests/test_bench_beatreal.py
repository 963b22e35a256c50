"""The ground truth of bench/beatreal.py (issue #31): the beat grids it derives must be exact.

Why: a grid off by a few tens of ms, or a tempo change integrated wrongly, would score a good
tracker as bad. Each test builds its own input (a MIDI tempo map with mido, a ProTracker module
written byte by byte and played by the real libopenmpt, a click track) and checks the times.
"""

from __future__ import annotations

import ctypes.util
import struct
from pathlib import Path

import numpy as np

from bench.beatreal import SR, check_grid, midi_quarters, render_module, rows_per_beat
from tests.conftest import missing


def test_midi_quarters_follow_a_tempo_change_inside_a_quarter(tmp_path: Path) -> None:
    import mido

    mid = mido.MidiFile(ticks_per_beat=480)
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    tr.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(120), time=0))
    tr.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(180), time=4 * 480 + 240))  # mid-quarter
    tr.append(mido.Message("note_on", note=60, velocity=64, time=8 * 480))
    path = tmp_path / "t.mid"
    mid.save(str(path))
    b = midi_quarters(path, 4.0)
    # 4 quarters at 0.5 s, then half a quarter at 120 (0.25 s) + half at 180 (1/6 s), then 1/3 s each
    want = [0, 0.5, 1.0, 1.5, 2.0, 2.0 + 0.25 + 1 / 6, 2.0 + 0.25 + 1 / 6 + 1 / 3]
    assert np.allclose(b[: len(want)], want, atol=1e-9)


def _mod(path: Path, rows_with_hits: range) -> None:
    """A 4-channel ProTracker module: one pattern, a 20-ms noise burst at the given rows."""
    rng = np.random.default_rng(0)
    smp = (rng.uniform(-100, 100, 880) * np.linspace(1, 0, 880)).astype(np.int8).tobytes()
    head = b"beat test".ljust(20, b"\0")
    head += b"burst".ljust(22, b"\0") + struct.pack(">HBBHH", len(smp) // 2, 0, 64, 0, 1)
    head += (b"\0" * 22 + struct.pack(">HBBHH", 0, 0, 0, 0, 1)) * 30
    head += bytes([1, 127]) + bytes(128) + b"M.K."
    pat = bytearray(64 * 4 * 4)
    for r in rows_with_hits:  # sample 1, period 214 (C-3), no effect, on channel 1
        pat[r * 16: r * 16 + 4] = bytes([0x00, 214, 0x10, 0x00])
    path.write_bytes(head + bytes(pat) + smp)


def test_module_rows_are_timed_from_libopenmpt(tmp_path: Path) -> None:
    if ctypes.util.find_library("openmpt") is None:
        missing("libopenmpt is not installed (Debian: libopenmpt0)")
    path = tmp_path / "t.mod"
    _mod(path, range(0, 64, 4))
    x, times, rows = render_module(path, 8.0)
    # speed 6, tempo 125 (the defaults): a row is 6 ticks of 2.5/125 s = 0.12 s
    assert [r for _, r in rows[:5]] == [0, 1, 2, 3, 4]
    assert np.allclose(np.diff(times[:60]), 0.12, atol=0.0016)
    assert rows_per_beat(path) == 4
    beats = np.array([t for t, (_, r) in zip(times, rows, strict=True) if r % 4 == 0])
    assert abs(60 / np.median(np.diff(beats)) - 125.0) < 0.5
    # the bursts sound on those rows: the audio's onsets sit on the grid
    shift, share = check_grid(x, beats[beats < 7.5])
    assert abs(shift) <= 0.015 and share > 0.95


def test_check_grid_sees_a_grid_half_a_beat_off() -> None:
    period, x = 0.4, np.zeros(int(12 * SR), np.float32)
    rng = np.random.default_rng(1)
    beats = np.arange(0.5, 11.5, period)
    for t in beats:
        i = int(t * SR)
        x[i: i + 441] += rng.uniform(-0.5, 0.5, 441) * np.linspace(1, 0, 441)
    shift, share = check_grid(x, beats)
    assert abs(shift) <= 0.015 and share > 0.95
    _, share_off = check_grid(x, beats + period / 2)
    assert share_off < 0.5


def test_the_scores_call_beats_half_a_beat_off_wrong_in_cmlt_and_right_only_in_amlt() -> None:
    """bench_beatset.score's CMLt must be mir_eval's CMLt: beats on the off-beat are not correct
    at the metrical level asked (it read AMLc, which allows the off-beat, as CMLt)."""
    from types import SimpleNamespace

    from bench.bench_beatset import score

    ref = np.arange(1.0, 41.0, 0.48)
    off = [(t, SimpleNamespace(t=t, bpm=125.0)) for t in ref + 0.24]
    res = score(ref, off, 125.0, None)
    assert res["f"] == 0.0 and res["cmlt"] == 0.0 and res["amlt"] > 0.9
    on = [(t, SimpleNamespace(t=t, bpm=125.0)) for t in ref]
    assert score(ref, on, 125.0, None)["cmlt"] > 0.95
