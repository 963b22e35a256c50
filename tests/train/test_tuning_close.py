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
