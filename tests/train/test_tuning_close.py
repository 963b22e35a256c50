"""The presence model's harder tunings (train/tuning_close.py): every solo instrument, one pitch
where a solo phrase moves, and held out together with that instrument's solo (issue #25)."""

from __future__ import annotations

import numpy as np

from tests.conftest import need_tool
from train import showmusic
from train import tuning_close as tc
from train.negatives import TUNING_PROGRAMS
from train.presence.data import Item, tie_tuning_folds

SR = 16000


def db(x: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-20)


def pitches(x: np.ndarray) -> int:
    """How many semitones are the strongest peak (60 Hz..2 kHz) in at least 5 % of the loud
    0.1-s frames: one held or repeated note gives 1..3 (its harmonics), a melody more."""
    n, hop = 2048, 1600
    fr = np.stack([x[i : i + n] * np.hanning(n) for i in range(0, len(x) - n, hop)])
    s = np.abs(np.fft.rfft(fr, axis=1))
    f = np.fft.rfftfreq(n, 1 / SR)
    e = (s**2).sum(1)
    band = (f > 60) & (f < 2000)
    peak = f[band][s[:, band].argmax(1)][e > 0.05 * e.max()]
    _, c = np.unique(np.round(69 + 12 * np.log2(peak / 440)).astype(int), return_counts=True)
    return int((c >= 0.05 * c.sum()).sum())


def test_close_tunings_are_deterministic_and_staged() -> None:
    need_tool("fluidsynth")
    a = tc.close_tuning("trombone", 6.0, SR, 50_001)
    assert np.array_equal(a, tc.close_tuning("trombone", 6.0, SR, 50_001))
    assert a.shape == (6 * SR,) and a.dtype == np.float32
    assert -41 < db(a) < -11  # negatives.tuning's levels


def test_close_tuning_stays_on_one_pitch_where_the_solo_moves() -> None:
    need_tool("fluidsynth")
    for inst in ("violin", "flute"):
        solo = pitches(showmusic.solo(inst, 12.0, SR, 1))
        for seed in (50_000, 50_001, 50_002):  # held, plucks, strings
            close = pitches(tc.close_tuning(inst, 12.0, SR, seed))
            assert close <= 3 < solo, (inst, tc.MODES[seed % 4], close, solo)


def test_items_cover_every_solo_instrument_in_every_mode() -> None:
    need_tool("fluidsynth")
    names = list(tc.instruments())
    assert names == list(showmusic.SOLO)
    got = [(g, n) for g, n, _ in _first_items(tc.items(4, SR, 0, seconds=1.0), 8)]
    assert [g for g, _ in got] == [f"tuning-close:{names[0]}"] * 4 + [f"tuning-close:{names[1]}"] * 4
    modes = {tc.MODES[int(n.split("-")[2]) % 4] for _, n in got}
    assert modes == set(tc.MODES)


def _first_items(it, n):
    out = []
    for x in it:
        out.append(x)
        if len(out) == n:
            break
    return out


def test_tuning_program_is_what_negatives_tuning_plays() -> None:
    progs = {tc.tuning_program(s) for s in range(600, 700)}
    assert progs <= set(TUNING_PROGRAMS) and len(progs) > 10


def test_an_instrument_is_held_out_as_music_and_as_tuning_together() -> None:
    z = np.zeros(10, np.float32)
    trombone_seed = next(s for s in range(600, 2000) if tc.tuning_program(s) == 57)
    other_seed = next(s for s in range(600, 2000) if tc.tuning_program(s) == 27)  # no solo instrument
    items = [
        Item("solo", "solo:trombone", "solo-1-trombone", 1, z, fold=2),
        Item("solo", "solo:flute", "solo-2-flute", 1, z, fold=0),
        Item("tuning-close", "tuning-close:trombone", "tuning-close-50000-trombone", 0, z),
        Item("tuning-close", "tuning-close:flute", "tuning-close-50100-flute", 0, z),
        Item("tuning", f"tuning:{trombone_seed}", f"tuning-{trombone_seed}", 0, z, fold=4),
        Item("tuning", f"tuning:{other_seed}", f"tuning-{other_seed}", 0, z, fold=3),
        Item("tuning-close", "tuning-close:harp", "tuning-close-50200-harp", 0, z),  # no harp solo here
    ]
    assert tie_tuning_folds(items) == 3
    assert [i.fold for i in items[2:6]] == [2, 0, 2, 3]
    assert 0 <= items[6].fold < 5  # still gets a held-out fold of its own


def test_music_floors_count_from_the_same_moment_whatever_the_window() -> None:
    """A 3-s window's first probability is at 3 s: its music is counted from 4 s into the item,
    like a 2-s window's (20 hops after its first), so a model that hears the start late pays."""
    from mer_live.inference.presence import GateConfig
    from train.presence.gate import kind_metrics
    from train.presence.score import Scored

    late = np.r_[np.zeros(15), np.ones(256)].astype(np.float16)  # music heard from 4.5 s
    s3 = Scored("solo", "a", 1, 0, late, np.zeros(271, bool), "solo:x", window_s=3.0)
    s2 = Scored("solo", "a", 1, 0, np.r_[np.zeros(25), np.ones(256)].astype(np.float16),
                np.zeros(281, bool), "solo:x")  # the same sound through a 2-s window
    g = GateConfig(0.5, 0.35, 0.3, 0.8)
    m3 = kind_metrics([s3], g)["solo"]["missed_music_after_gate"]
    m2 = kind_metrics([s2], g)["solo"]["missed_music_after_gate"]
    assert m3 > 0 and abs(m3 * (271 - 10) - m2 * (281 - 20)) < 1e-6  # the same hops missed


def test_tradeoff_plot_from_results(tmp_path) -> None:
    import json
    import subprocess
    import sys
    from pathlib import Path

    rows = [{"gate": {}, "on_s_median": 1.5, "off_s_p90": 2.5 + i, "false_by_kind": {"tuning": 0.05 * i},
             "missed_by_kind": {"solo": 0.3 - 0.1 * i}} for i in range(3)]
    res = tmp_path / "r.json"
    res.write_text(json.dumps({"name": "x", "cv": {"gate_grid": rows}}))
    out = tmp_path / "t.png"
    root = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, "-m", "train.presence", "--tradeoff", str(res), "--out", str(out)],
                       cwd=root, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size > 5000 and "wrote" in r.stdout
