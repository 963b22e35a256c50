"""BeatTracker on self-made grooves fed in realistic blocks (real aubio), and its pure parts:
tempo folding and smoothing, the beat clock, the phase, the config's one-line errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mer_live.analysers.beat import (
    BeatClock,
    BeatConfig,
    BeatTracker,
    Periodicity,
    RhythmGate,
    TempoSmoother,
    ThreeTwo,
    beat_phase,
    fold_bpm,
    hop_for,
)
from mer_live.common.validate import ShowConfigError
from tests.grooves import groove


def feed(bt: BeatTracker, x: np.ndarray, sr: int, seed: int = 0, t0: float = 0.0, wall0: float = 1000.0):
    """Feed ``x`` in blocks of random length 5-50 ms, as a device would deliver them."""
    rng = np.random.default_rng(seed)
    events, i = [], 0
    while i < len(x):
        n = int(rng.integers(int(0.005 * sr), int(0.05 * sr) + 1))
        b = x[i:i + n]
        i += len(b)
        t_end = t0 + (i - 1) / sr
        events += bt.process(b, t_end, wall0 + t_end)
    return events


@pytest.mark.parametrize("bpm, sr, kw", [(128.0, 48000, {}), (97.0, 44100, {"swing": 0.25, "fills": True})])
def test_groove_gives_its_tempo_and_one_beat_per_beat(bpm: float, sr: int, kw: dict) -> None:
    x, truth = groove(bpm, 30.0, sr, seed=3, **kw)
    bt = BeatTracker()
    bt.reset(sr)
    events = feed(bt, x, sr)
    st = bt.state()
    assert st.bpm == pytest.approx(bpm, rel=0.02)
    beats = [e for e in events if e.kind == "beat"]
    assert [e.count for e in beats] == list(range(1, len(beats) + 1)) == list(range(1, st.beats + 1))
    # after a 10-s lock-in, one published beat per true beat (+-10 %), each near a true beat
    late = np.array([e.t for e in beats if e.t >= 10.0])
    n_true = np.sum((truth >= 10.0) & (truth <= 30.0 - 0.1))
    assert abs(len(late) - n_true) <= 0.1 * n_true, (len(late), n_true)
    err = np.array([np.min(np.abs(truth - t)) for t in late])
    assert np.median(err) < 0.03 and np.mean(err < 0.07) > 0.9
    assert all(e.bpm == pytest.approx(bpm, rel=0.02) for e in beats if e.t >= 10.0)
    onsets = [e for e in events if e.kind == "onset"]
    assert len(onsets) >= n_true and st.onsets == len(onsets)  # hats, kicks, snares: more onsets than beats
    # the phase is ~0 at a beat and ~0.5 half-way to the next
    period = 60.0 / st.bpm
    assert st.phase(st.last_beat_wall) == pytest.approx(0.0, abs=1e-9)
    assert st.phase(st.last_beat_wall + period / 2) == pytest.approx(0.5, abs=1e-6)


def test_silence_brings_no_beats_and_the_tempo_holds() -> None:
    sr = 48000
    x, _ = groove(120.0, 20.0, sr, seed=4)
    y = np.concatenate([x, np.zeros(8 * sr, dtype=np.float32)])
    bt = BeatTracker()
    bt.reset(sr)
    events = feed(bt, y, sr)
    beats = [e.t for e in events if e.kind == "beat"]
    onsets = [e.t for e in events if e.kind == "onset"]
    assert beats and max(beats) < 20.0 + 4 * 0.5 + 0.1  # the flywheel stops within 4 beats
    assert not [t for t in onsets if t > 20.5]
    assert bt.state().bpm == pytest.approx(120.0, rel=0.02)  # held through the dropout


def test_reset_starts_over_and_stream_time_is_honoured() -> None:
    sr = 44100
    x, truth = groove(110.0, 16.0, sr, seed=5)
    bt = BeatTracker()
    bt.reset(sr)
    feed(bt, x, sr)
    assert bt.state().beats > 0
    bt.reset(sr)
    assert bt.state().beats == 0 and bt.state().bpm == 0.0
    ev = feed(bt, x, sr, t0=500.0)  # a source that started long ago: times follow t_end
    late = [e.t - 500.0 for e in ev if e.kind == "beat" and e.t > 508.0]
    assert late and np.median([np.min(np.abs(truth - t)) for t in late]) < 0.03


def test_disabled_tracker_does_nothing() -> None:
    bt = BeatTracker(BeatConfig(enabled=False))
    bt.reset(48000)
    assert bt.process(np.ones(4800, dtype=np.float32), 0.1, 0.0) == []


def test_fold_bpm() -> None:
    assert fold_bpm(240.0, 70, 180) == 120.0
    assert fold_bpm(45.0, 70, 180) == 90.0
    assert fold_bpm(80.0, 70, 180) == 80.0  # in range: kept
    assert fold_bpm(80.0, 70, 180, near=150.0) == 160.0  # the octave nearest the current tempo
    assert fold_bpm(180.0, 70, 180) == 180.0  # the top is in range
    assert fold_bpm(float("nan"), 70, 180) == 0.0


def beats_at(period: float, t0: float, n: int) -> list[float]:
    return [t0 + k * period for k in range(n)]


def test_smoother_ignores_octave_flips_and_holds_through_dropouts() -> None:
    sm = TempoSmoother(BeatConfig())
    for t in beats_at(0.5, 0.0, 16):
        sm.add_beat(t)
    assert sm.bpm == pytest.approx(120.0)
    for t in beats_at(1.0, 8.0, 10):  # the tracker falls to half time for 10 s
        sm.add_beat(t)
    assert sm.bpm == pytest.approx(120.0)
    for t in beats_at(0.5, 26.0, 8):  # a 8-s dropout (no beats), then the same tempo
        sm.add_beat(t)
    assert sm.bpm == pytest.approx(120.0)


def test_smoother_switches_to_a_new_tempo_that_persists() -> None:
    c = BeatConfig(switch_s=5.0)
    sm = TempoSmoother(c)
    for t in beats_at(0.5, 0.0, 16):
        sm.add_beat(t)
    seen = []
    for t in beats_at(60 / 100, 8.0, 30):  # a new song at 100 BPM, no pause
        seen.append((t, sm.add_beat(t)))
    assert all(b == pytest.approx(120.0) for t, b in seen if t < 8.0 + 5.0)  # not before switch_s
    assert seen[-1][1] == pytest.approx(100.0, rel=0.01)
    sm2 = TempoSmoother(c)  # after forget_s of nothing, the next tempo is taken at once
    for t in beats_at(0.5, 0.0, 16):
        sm2.add_beat(t)
    for t in beats_at(60 / 100, 30.0, 5):
        sm2.add_beat(t)
    assert sm2.bpm == pytest.approx(100.0, rel=0.01)


def test_beat_clock_fills_half_time_and_drops_double_time() -> None:
    clock = BeatClock()
    out = []
    aubio = set(round(t, 3) for t in beats_at(1.0, 0.0, 10))  # aubio at half of 120 BPM
    for k in range(1000):  # 10 ms hops over 10 s
        t = k * 0.01
        a = t if round(t, 3) in aubio else None
        out += clock.step(t, a, 120.0)
    assert len(out) == pytest.approx(19, abs=1) and np.allclose(np.diff(out), 0.5, atol=0.011)
    clock = BeatClock()
    out = []
    aubio = set(round(t, 3) for t in beats_at(0.25, 0.0, 40))  # aubio at double time
    for k in range(1000):
        t = k * 0.01
        out += clock.step(t, t if round(t, 3) in aubio else None, 120.0)
    assert len(out) == pytest.approx(20, abs=1) and np.allclose(np.diff(out), 0.5, atol=0.011)


def test_beat_phase() -> None:
    assert beat_phase(10.25, 10.0, 120.0) == pytest.approx(0.5)
    assert beat_phase(11.125, 10.0, 120.0) == pytest.approx(0.25)  # extrapolated past later beats
    assert beat_phase(10.2, 10.0, 0.0) == 0.0 and beat_phase(10.2, math.nan, 120.0) == 0.0


def test_hop_follows_the_rate() -> None:
    assert hop_for(48000, BeatConfig()) == (1024, 512)
    assert hop_for(44100, BeatConfig()) == (1024, 512)
    assert hop_for(96000, BeatConfig()) == (2048, 1024)
    assert hop_for(48000, BeatConfig(hop=256, window=2048)) == (2048, 256)


@pytest.mark.parametrize("table, key", [
    ({"method": "magic"}, "method"),
    ({"hop": 500}, "hop"),
    ({"hop": 1024, "window": 512}, "window"),
    ({"bpm_min": 100, "bpm_max": 150}, "bpm_max"),
    ({"bpm_min": "slow"}, "bpm_min"),
    ({"tempo": 120}, "unknown key 'tempo'"),
    ({"enabled": 1}, "enabled"),
    ({"rhythm_on": 0.3, "rhythm_off": 0.5}, "rhythm_off"),
    ({"rhythm_on": 1.5}, "rhythm_on"),
])
def test_config_errors_are_one_line_naming_the_key(table: dict, key: str) -> None:
    with pytest.raises(ShowConfigError) as e:
        BeatConfig.from_dict(table)
    assert "\n" not in str(e.value) and key in str(e.value) and str(e.value).startswith("[beat]")
    assert BeatConfig.from_dict({"bpm_min": 60, "bpm_max": 160}).bpm_max == 160.0


# -- the rhythm gate and the 3:2 correction (pure parts, on onset envelopes made here) ---------

FPS = 44100 / 512


def envelope(seconds: float, hits: list[tuple[float, float]], jitter: float = 0.0,
             seed: int = 0) -> np.ndarray:
    """An onset envelope: ``hits`` = (time s, strength), each a 3-frame decaying bump."""
    rng = np.random.default_rng(seed)
    e = np.full(int(seconds * FPS), 0.01)
    for t, a in hits:
        i = int(round((t + rng.normal(0, jitter)) * FPS))
        for k, d in enumerate((1.0, 0.4, 0.15)):
            if 0 <= i + k < len(e):
                e[i + k] += a * d
    return e


def straight(bpm: float, seconds: float) -> list[tuple[float, float]]:
    """Eighth notes, the beats accented (kick/snare + hat), the off-beats a hat."""
    p = 60.0 / bpm
    return [(k * p / 2, 1.0 if k % 2 == 0 else 0.35) for k in range(int(seconds / p * 2))]


def scores(per: Periodicity, env: np.ndarray, low: np.ndarray | None = None
           ) -> list[tuple[float, float, int]]:
    out = []
    for i, v in enumerate(env):
        if per.push(float(v), True, float(low[i]) if low is not None else float(v)):
            out.append((i / FPS, per.score, per.lag))
    return out


def test_periodicity_hears_a_groove_and_not_random_onsets() -> None:
    groove_scores = scores(Periodicity(FPS), envelope(6.0, straight(128.0, 6.0)))
    assert min(s for t, s, _ in groove_scores if t >= 1.5) > BeatConfig().rhythm_on
    rng = np.random.default_rng(1)
    speechy = [(float(t), float(rng.uniform(0.2, 1.0))) for t in np.cumsum(rng.exponential(0.18, 40))]
    noise_scores = scores(Periodicity(FPS), envelope(6.0, speechy))
    assert max(s for t, s, _ in noise_scores if t >= 1.5) < BeatConfig().rhythm_off + 0.1


def test_rhythm_gate_opens_on_a_steady_period_only_and_closes_after_the_hold() -> None:
    c = BeatConfig(rhythm_on=0.6, rhythm_off=0.4, rhythm_hold_s=2.0)
    g = RhythmGate(c)
    assert not any(g.update(t * 0.1, 0.9, [40, 57, 33, 71][t % 4], True) for t in range(50))  # wandering
    g = RhythmGate(c)
    opened = [t * 0.1 for t in range(50) if g.update(t * 0.1, 0.9, 40, True)]
    assert opened and opened[0] == pytest.approx(0.5, abs=0.11)
    assert g.update(5.0, 0.5, 40, True)  # between off and on: stays open
    assert g.update(5.1, 0.2, 40, True) and g.update(6.9, 0.2, 40, True)  # low, but within the hold
    assert not g.update(7.2, 0.2, 40, True)
    g = RhythmGate(c)  # a weaker comb (0.55: between off and on) opens only after 1 s at one period
    opened = [t * 0.1 for t in range(30) if g.update(t * 0.1, 0.55, 40, True)]
    assert opened and opened[0] == pytest.approx(1.0, abs=0.11)
    g = RhythmGate(c)
    for t in range(10):
        g.update(t * 0.1, 0.9, 40, True)
    assert g.open and g.update(1.0, 0.9, 40, False) and not g.update(2.05, 0.9, 40, False)  # silence


def test_three_two_undoes_a_two_thirds_lock_and_keeps_the_right_tempo_and_a_shuffle() -> None:
    env = envelope(8.0, straight(176.0, 8.0))
    for aubio_bpm, want in ((176.0 * 2 / 3, 1.5), (176.0, 1.0)):
        per, tt = Periodicity(FPS), ThreeTwo(BeatConfig())
        for v in env:
            if per.push(float(v)):
                tt.update(aubio_bpm, per)
        assert tt.ratio == want, aubio_bpm
    p = 60.0 / 110.0  # a shuffle: triplets with the middle one missing, the beat accented
    shuffle = [(k * p + d, a) for k in range(int(8.0 / p)) for d, a in ((0.0, 1.0), (2 * p / 3, 0.4))]
    per, tt = Periodicity(FPS), ThreeTwo(BeatConfig())
    for v in envelope(8.0, shuffle):
        if per.push(float(v)):
            tt.update(110.0, per)
    assert tt.ratio == 1.0


def test_tracker_rhythm_flag_follows_a_groove_and_not_silence() -> None:
    sr = 44100
    x, _ = groove(174.0, 10.0, sr, seed=6)
    bt = BeatTracker()
    bt.reset(sr)
    y = np.concatenate([x, np.zeros(3 * sr, np.float32)])
    flags = []
    i = 0
    while i < len(y):
        b = y[i:i + 441]
        i += len(b)
        bt.process(b, (i - 1) / sr, 0.0)
        flags.append((i / sr, bt.rhythm))
    opened = [t for t, f in flags if f]
    assert opened and opened[0] < 2.0  # within 2 s of the groove's start
    assert all(f for t, f in flags if 3.0 <= t <= 10.0)
    assert not any(f for t, f in flags if t >= 12.0)  # 1.5 s of silence closes it
    assert bt.state().bpm == pytest.approx(174.0, rel=0.02)


def test_three_two_halves_a_lock_on_the_eighths_only_when_nothing_lies_between_them() -> None:
    """aubio calls a 95-BPM rock groove 190 (its eighth hats): nothing at half its period in the
    hats nor in the low band (kick and snare on the beats) -> a beat of two. The same envelope
    read at the right tempo, a low band with sixteenths (double kick), or a half below
    ``bpm_min`` keep aubio's tempo."""
    hits = straight(95.0, 8.0)
    env = envelope(8.0, hits)
    low_beats = envelope(8.0, [(t, a) for t, a in hits if a == 1.0])
    low_16ths = envelope(8.0, [(k * 60.0 / 95.0 / 4, 1.0) for k in range(int(8.0 * 95.0 / 60.0 * 4))])
    for aubio_bpm, low, cfg, want in ((190.0, low_beats, BeatConfig(), 0.5),
                                      (95.0, low_beats, BeatConfig(), 1.0),
                                      (190.0, low_16ths, BeatConfig(), 1.0),
                                      (190.0, low_beats, BeatConfig(bpm_min=100.0, bpm_max=210.0), 1.0)):
        per, tt = Periodicity(FPS), ThreeTwo(cfg)
        for v, lo in zip(env, low, strict=True):
            if per.push(float(v), True, float(lo)):
                tt.update(aubio_bpm, per)
        assert tt.ratio == want, (aubio_bpm, cfg.bpm_min)


@pytest.mark.parametrize("bpm", [85.0, 95.0])
def test_a_slow_straight_groove_gets_its_own_tempo_not_its_eighths(bpm: float) -> None:
    """aubio alone calls these 170/190 (issue #31's octaves); the published beat is one per beat."""
    sr = 44100
    x, truth = groove(bpm, 20.0, sr, seed=3)
    bt = BeatTracker()
    bt.reset(sr)
    beats = [e for e in feed(bt, x, sr) if e.kind == "beat"]
    assert bt.state().bpm == pytest.approx(bpm, rel=0.02)
    late = np.array([e.t for e in beats if e.t >= 8.0])
    n_true = int(np.sum((truth >= 8.0) & (truth <= 20.0 - 0.1)))
    assert abs(len(late) - n_true) <= 1, (len(late), n_true)
    err = np.array([np.min(np.abs(truth - t)) for t in late])
    assert np.mean(err < 0.07) > 0.9


def test_the_beat_holds_through_an_aubio_dropout_in_a_steady_groove_and_stops_in_silence() -> None:
    """aubio gives no beat from 6.3 s to 16.1 s of this 110-BPM groove (seed 3); the rhythm gate
    stays open at its period, so the flywheel goes on; silence after it still stops the beats."""
    sr = 44100
    x, truth = groove(110.0, 20.0, sr, seed=3)
    bt = BeatTracker()
    bt.reset(sr)
    beats = [e for e in feed(bt, np.concatenate([x, np.zeros(4 * sr, np.float32)]), sr) if e.kind == "beat"]
    mid = np.array([e.t for e in beats if 5.0 <= e.t <= 19.9])
    n_true = int(np.sum((truth >= 5.0) & (truth <= 19.9)))
    assert abs(len(mid) - n_true) <= 1, (len(mid), n_true)
    assert all(np.min(np.abs(truth - t)) < 0.05 for t in mid)
    assert not [e.t for e in beats if e.t >= 22.5]  # after 4 beats of silence (as before)


def test_low_band_energy_is_the_fft_s() -> None:
    """The per-hop low-band energy (< 250 Hz, the phase cue) from the few DFT rows the tracker keeps
    equals that of a whole FFT of the hop, at 44.1 and 48 kHz."""
    rng = np.random.default_rng(3)
    for sr in (44100, 48000):
        bt = BeatTracker()
        bt.reset(sr)
        for _ in range(20):
            chunk = (rng.standard_normal(bt.hop) * rng.uniform(1e-4, 1)).astype(np.float32)
            spec = np.fft.rfft(chunk.astype(np.float64), bt.hop)[: bt._low_bins]
            v = bt._low_dft @ chunk
            np.testing.assert_allclose(float(np.dot(v, v)), float(np.vdot(spec, spec).real), rtol=1e-9)


def test_three_two_undoes_the_lock_when_the_eighths_are_blurred_and_only_at_a_fast_result() -> None:
    """Recorded rock at 180 BPM: the beats stand out, the off-beat eighths are weak (distorted
    guitars blur them), so aubio's 120 correlates at a third of its period far less than a drum
    kit's straight eighths do. The looser test still finds the beat of two pulses; a 72-BPM
    shuffle read at its own tempo (a result of 108, under ``fast_bpm``) is left alone."""
    p = 60.0 / 180.0
    hits = [(k * p, 1.0) for k in range(int(8.0 / p))] + [(k * p + p / 2, 0.2) for k in range(int(8.0 / p))]
    env = envelope(8.0, hits, jitter=0.008, seed=2)
    for kw, want in (({}, 1.5), ({"loose": 9.0}, 1.0)):  # loose 9: the looser test off (the old rule)
        per, tt = Periodicity(FPS), ThreeTwo(BeatConfig(), **kw)
        for v in env:
            if per.push(float(v)):
                tt.update(120.0, per)
        assert tt.ratio == want, kw
    q = 60.0 / 72.0
    shuffle = [(k * q + d, a) for k in range(int(8.0 / q)) for d, a in ((0.0, 1.0), (2 * q / 3, 0.4))]
    per, tt = Periodicity(FPS), ThreeTwo(BeatConfig())
    for v in envelope(8.0, shuffle, jitter=0.008, seed=2):
        if per.push(float(v)):
            tt.update(72.0, per)
    assert tt.ratio == 1.0
