"""Issue #25: after a hard cut between two songs of opposite quadrants the values follow the new
song within the floor, through the real product: ``mer-live --input FILE --headless`` (the shipped
default with its teacher and music gate) sends OSC over real UDP to a receiver here.

The file: 20 s of a 4Q clip the default reads in Q4 (low arousal, high valence), cut hard into 20 s
of one it reads in Q2 (high arousal, low valence) (a pair an earlier draw of bench/bench_show.py's
show cut between). "Settled": the quadrant of ``/mer/av`` equals the new song's steady quadrant
(what the same run sends from 15 s into it on, checked to hold there) for 3 s without a break
(bench_show compares with the song played alone instead; for a song that stays in one quadrant
the two agree). The issue's floor on the benchmark's hard cuts is a median of 4 s (worst 7 s);
this cut must settle within 4 s: it took 4.3 s before the song-change handling of
mer_live/live/estimator.py and fusion.py, 3.0 s after (one run each, here). Both clips are 4Q clips the
default was trained on: this tests how fast the values move, not whether they are right.

Two more pairs the default followed only slowly before the song-change detector
(mer_live/live/songcut.py: the model then hears only the new song, the teacher restarts, the
smoother jumps): through this test with ``--no-song-cut`` they settled 6.2 s (Q3 -> Q1) and
5.2 s (Q2 -> Q4) after the cut, and fail; with it they pass (unpaced through the Pipeline: 2.1 s
and 1.6 s; one run each, here)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import soundfile as sf
import soxr

from tests.net import Wire
from tests.test_cli_pulse import Live

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

#: (old song, new song, the quadrants the default reads them in): 4Q clips
PAIRS = [("MT0000746822", "MT0010736208", 4, 2),  # 4Q labels Q4 and Q2
         ("MT0004287283", "MT0004032071", 3, 1),  # labels Q3 and Q1
         ("MT0002399275", "MT0008167476", 2, 4)]  # labels Q2 and Q4
OLD_S, NEW_S = 20.0, 20.0
RATE = 22050
HOLD_S = 3.0
FLOOR_S = 4.0


def clip(root, song: str, seconds: float) -> np.ndarray:
    x, sr = sf.read(str(root / "4q" / "audio" / f"{song}.mp3"), dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    if sr != RATE:
        x = soxr.resample(x, sr, RATE)
    x = x[: int(seconds * RATE)]
    return (0.1 * x / (np.sqrt(np.mean(x**2)) + 1e-9)).clip(-1, 1).astype(np.float32)


def quadrant(a: float, v: float) -> int:
    return (1 if v >= 0.5 else 2) if a >= 0.5 else (4 if v >= 0.5 else 3)


def settle_after_cut(root, tmp_path, old: str, new: str, old_q_read: int, new_q_read: int,
                     *flags: str) -> float | None:
    """Play old -> new through ``mer-live --input FILE --headless`` (plus ``flags``) to a UDP
    receiver; the seconds after the cut until ``/mer/av`` holds the new song's quadrant for
    ``HOLD_S`` (None: never), after checking the premise (the two songs read as expected)."""
    if not all((root / "4q" / "audio" / f"{s}.mp3").is_file() for s in (old, new)):
        pytest.skip("4Q audio absent")
    show = tmp_path / "cut.wav"
    sf.write(show, np.concatenate([clip(root, old, OLD_S), clip(root, new, NEW_S)]), RATE)
    wire = Wire()
    live = Live("--input", str(show), "--headless", "--osc", f"127.0.0.1:{wire.port}", "--osc-rate", "20",
                *flags, extra_env={})
    try:
        live.wait_for(r"mer-live: input: ", timeout=60)
        deadline = time.monotonic() + OLD_S + NEW_S + 20
        while time.monotonic() < deadline and live.p.poll() is None:  # a file without --loop ends it
            time.sleep(0.2)
    finally:
        live.stop()
        wire.close()
    levels = wire.times("/mer/level")
    assert levels, f"no OSC arrived; stderr: {live.seen}"
    # paced playback: stream time = wall time since the first estimate (a hop, 0.1 s, into the file)
    t0 = levels[0] - 0.1
    av = [(t - t0, p[0], p[1]) for t, a, p in wire.messages if a == "/mer/av"]
    music = [(t - t0, p[0]) for t, a, p in wire.messages if a == "/mer/music"]
    assert av and av[-1][0] > OLD_S + NEW_S - 1.0, "the file did not play to its end"
    q = np.array([quadrant(a, v) for _t, a, v in av])
    t = np.array([x[0] for x in av])
    before = q[(t > OLD_S - 2.0) & (t < OLD_S)]
    steady = q[(t > OLD_S + 15.0) & (t < OLD_S + NEW_S)]
    old_q = np.bincount(before).argmax()
    new_q = np.bincount(steady).argmax()
    # the premise: the default reads the two songs in opposite quadrants, steadily
    assert (old_q, new_q) == (old_q_read, new_q_read), (
        f"the clips read Q{old_q} then Q{new_q}, not Q{old_q_read} then Q{new_q_read}")
    assert np.mean(steady == new_q) >= 0.9
    assert all(m == 1 for tm, m in music if OLD_S - 10 < tm < OLD_S + NEW_S - 0.5), "music dropped out"
    after = (t >= OLD_S) & (t < OLD_S + NEW_S)
    ta, ok = t[after], q[after] == new_q
    print("quadrants every 0.5 s after the cut: " + "".join(str(x) for x in q[after][::10]))
    return next((ta[i] - OLD_S for i in range(len(ta)) if ok[i:][ta[i:] < ta[i] + HOLD_S].all()
                 and ta[-1] >= ta[i] + HOLD_S), None)


@pytest.mark.parametrize("old,new,old_q_read,new_q_read", PAIRS)
def test_a_hard_cut_between_opposite_quadrants_settles_within_the_floor(
        shared_data, tmp_path, old: str, new: str, old_q_read: int, new_q_read: int) -> None:
    settled = settle_after_cut(shared_data, tmp_path, old, new, old_q_read, new_q_read)
    assert settled is not None and settled <= FLOOR_S, f"settled {settled} s after the cut (floor {FLOOR_S})"


def test_without_song_cut_the_values_follow_as_the_window_slides(shared_data, tmp_path) -> None:
    """``--no-song-cut`` really turns the jump off: the Q3 -> Q1 pair, which the detector brings
    under the floor, settles only as the 6-s window slides over the new song (6.2 s here before
    the detector; it must take longer than the floor and not longer than the window plus the hold)."""
    settled = settle_after_cut(shared_data, tmp_path, *PAIRS[1], "--no-song-cut")
    assert settled is not None and FLOOR_S < settled <= 6.0 + HOLD_S, f"settled {settled} s after the cut"


def test_the_teachers_memory_restarts_at_a_patch_of_another_quadrant() -> None:
    """The old song's patches must not hold the fused values after a cut: a finished patch that
    puts the music in another quadrant than the memory does replaces the memory; one that agrees,
    or differs by less than the margin, joins it."""
    from mer_live.assemble import load_model
    from mer_live.inference.fusion import DISAGREE_MARGIN, Fusion, TeacherThread, disagrees

    th = TeacherThread(Fusion.of(load_model(None, "cpu", 1)))
    old = np.array([1.5, 1.0])  # the teacher's logits: high arousal, high valence (Q1)
    th._land(3.0, old)
    th._land(9.0, old + 0.2)
    assert np.allclose(th.recent(9.0), old + 0.1)
    th._land(12.0, np.array([0.4, 0.3]))  # the same quadrant: joins
    assert th.restarts == 0 and len(th._done) == 3
    assert not disagrees(np.array([0.1, -0.2]), np.array([0.1, 0.2 * DISAGREE_MARGIN]))  # both near 0
    new = np.array([-1.0, -1.5])  # low arousal, low valence (Q3): another song
    assert disagrees(new, th.recent(12.0))
    th._land(15.0, new)
    assert th.restarts == 1
    assert np.allclose(th.recent(15.0), new), "the old song's patches still count"
    th._land(21.0, new + 0.1)
    assert np.allclose(th.recent(21.0), new + 0.05) and th.restarts == 1
