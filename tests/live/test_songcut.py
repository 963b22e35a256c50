"""The song-change detector (mer_live/live/songcut.py) on music made here: a hard cut from a pad
into a drum groove is found within a second, at the cut; a groove that plays on, a pad
whose chords change every second and a slow crossfade are not "cuts".

Its blind side, measured here and in bench/bench_songcut.py: a cut from a percussive song into a
soft one (this groove into this pad scores 4.6, under the threshold of 6): the drums' own swing
from frame to frame hides the change; the estimator then follows the new song at the model's
own pace, as before the detector."""

from __future__ import annotations

import numpy as np
import pytest

from mer_live.live.songcut import CutConfig, CutDetector
from tests.grooves import groove, pad

RATE = 16000
HOP = 1600


def at_db(x: np.ndarray, db: float = -20.0) -> np.ndarray:
    return (x * (10 ** (db / 20) / (np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-12))).astype(np.float32)


def feed(x: np.ndarray, det: CutDetector) -> list[tuple[float, float]]:
    """(detection time, where it says the cut was) in seconds, hop by hop as the estimator feeds it."""
    out = []
    for k in range(0, len(x) - HOP + 1, HOP):
        if det.update(x[k : k + HOP]):
            out.append(((k + HOP) / RATE, (k + HOP - det.samples_since_cut()) / RATE))
    return out


def song_a(seconds: float) -> np.ndarray:
    return at_db(pad(seconds, RATE, seed=3, chord_s=1.0))


def song_b(seconds: float) -> np.ndarray:
    """A drum groove with bass at 140 BPM, from its first hit (as a DJ cuts)."""
    x = groove(140.0, seconds + 1.0, RATE, seed=7)[0]
    start = int(np.argmax(np.abs(x) > 1e-3))
    return at_db(x[start : start + int(seconds * RATE)])


def test_a_hard_cut_is_found_within_a_second_at_the_cut() -> None:
    x = np.concatenate([song_a(12.0), song_b(10.0)])
    got = feed(x, CutDetector(RATE))
    assert len(got) == 1, f"expected one detection, got {got}"
    t, at = got[0]
    assert 12.0 <= t <= 13.0, f"detected at {t:.2f} s, the cut was at 12 s"
    assert abs(at - 12.0) <= 0.2, f"placed the cut at {at:.2f} s"


@pytest.mark.parametrize("make", [song_a, song_b])
def test_one_song_playing_on_is_no_cut(make) -> None:
    assert feed(make(40.0), CutDetector(RATE)) == []


def test_a_slow_crossfade_is_no_cut() -> None:
    a, b = song_a(16.0), song_b(16.0)
    n = 4 * RATE
    ramp = np.linspace(0, 1, n, dtype=np.float32)
    x = np.concatenate([a[:-n], a[-n:] * (1 - ramp) + b[:n] * ramp, b[n:]])
    assert feed(x, CutDetector(RATE)) == []


def test_after_a_reset_it_needs_its_history_again() -> None:
    det = CutDetector(RATE)
    feed(song_a(12.0), det)
    det.reset()
    assert feed(song_b(5.0), det) == []  # 5 s of the new song alone: nothing to compare with
    assert det.samples_since_cut() is None


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="threshold"):
        CutConfig(threshold=0.0)
