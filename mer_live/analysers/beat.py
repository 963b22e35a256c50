"""Beats, tempo and onsets for lights and visuals: a block analyser over the live input.

Why here and not in a second tool: people who run mer-live drive chases from the beat and the
palette from the emotion; one process that listens once gives both on one clock.

``BeatTracker`` is fed by the pipeline thread with consecutive float32 mono blocks at the device
rate (after gain and DC blocker, before resampling). It runs aubio's beat tracker and onset
detector (aubio, LedFx's maintained build ``aubio-ledfx``) hop by hop and returns ``Event``s the
moment aubio reports them: ``beat`` (a running counter, with the tempo at that beat) and
``onset``. The tempo it publishes (``state().bpm``) is not aubio's raw period, which flips
between octaves (60 / 120 / 240) and wanders through breaks, but ``TempoSmoother``'s: the median
of the recent inter-beat intervals, folded into ``[bpm_min, bpm_max]`` next to the current tempo,
smoothed in log-tempo, held through dropouts, and switched to a new tempo only after it has
persisted for ``switch_s`` (a new song). ``BeatState.phase(wall)`` gives the beat phase 0..1 at
any instant from the last beat and the period, for chases between beats.

Cost: two 1024-point FFTs every ~11 ms at 48 kHz, ~1-2 % of one core (bench/bench_show_cost.py).
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from mer_live.common.validate import check as _check
from mer_live.common.validate import config_from_dict, pow2
from mer_live.live.records import Event
from mer_live.registry import AnalyserSpec, Flag, register_analyser

#: aubio's onset detection functions (the tempo tracker runs on one of them too).
AUBIO_METHODS = ("default", "energy", "hfc", "complex", "phase", "wphase", "specdiff", "kl", "mkl",
                 "specflux")


BEAT_TRACKERS = ("aubio", "beatnet", "hybrid")


@dataclass(frozen=True)
class BeatConfig:
    """``[beat]``: aubio's tempo tracker and onset detector, and how the tempo is smoothed."""

    enabled: bool = True
    method: str = "default"  #: aubio's onset function for the beat tracker ("default": specflux)
    onset_method: str = "hfc"  #: aubio's onset function for /mer/onset
    window: int = 0  #: FFT size in samples at the device rate (power of 2; 0: 2 x hop)
    hop: int = 0  #: samples between analyses (power of 2; 0: ~11 ms, 512 at 44.1/48 kHz)
    bpm_min: float = 70.0  #: the published tempo is folded by octaves into [bpm_min, bpm_max]
    bpm_max: float = 210.0  #: punk, metal, drum & bass and hardcore live at 160-200 BPM
    silence_db: float = -60.0  #: no beats or onsets below this level (dBFS)
    onset_threshold: float = 0.3  #: aubio's peak-picking threshold (higher: fewer onsets)
    onset_min_ioi_s: float = 0.05  #: at most one onset per this many seconds
    smooth_s: float = 2.0  #: time constant of the tempo smoothing
    switch_s: float = 5.0  #: a different tempo must persist this long to replace the current one
    forget_s: float = 10.0  #: after this long without beats the next tempo is taken at once
    #: the rhythm gate (``RhythmGate``): beats go out without the music gate while the onset
    #: envelope is this periodic (0..1; 0: always, 1: never)
    rhythm_on: float = 0.6
    rhythm_off: float = 0.4  #: ... and stop going out after ``rhythm_hold_s`` below this
    rhythm_hold_s: float = 2.0
    #: whose beats: "hybrid" (both run; aubio's beats while the onsets are clearly periodic, BeatNet's
    #: elsewhere: ``beatnet.HybridTracker``), "aubio" (its tracker, ``ThreeTwo`` and ``BeatClock``:
    #: the lightest) or "beatnet" (BeatNet's CRNN and particle filter, ``mer_live.analysers.beatnet``);
    #: aubio always gives the onsets and the rhythm gate
    tracker: str = "hybrid"
    beatnet_model: int = 2  #: the shipped BeatNet weights: 2 (Ballroom held out; better here) or 1 (GTZAN)
    beatnet_path: str = ""  #: another BeatNet ONNX export instead of the shipped one
    beatnet_seed: int = 0  #: the particle filter's seed (the same audio gives the same beats)

    def __post_init__(self) -> None:
        s = "beat"
        _check(self.tracker in BEAT_TRACKERS, s, "tracker", f"one of {', '.join(BEAT_TRACKERS)}",
               self.tracker)
        _check(self.beatnet_model in (1, 2), s, "beatnet_model", "1 or 2", self.beatnet_model)
        _check(self.method in AUBIO_METHODS, s, "method", f"one of {', '.join(AUBIO_METHODS)}", self.method)
        _check(self.onset_method in AUBIO_METHODS, s, "onset_method", f"one of {', '.join(AUBIO_METHODS)}",
               self.onset_method)
        _check(self.hop == 0 or (pow2(self.hop) and 32 <= self.hop <= 8192), s, "hop",
               "0 or a power of 2 in 32..8192", self.hop)
        _check(self.window == 0 or (pow2(self.window) and 64 <= self.window <= 16384), s, "window",
               "0 or a power of 2 in 64..16384", self.window)
        _check(self.window == 0 or self.hop == 0 or self.window >= self.hop, s, "window",
               f">= hop ({self.hop})", self.window)
        _check(20.0 <= self.bpm_min <= 200.0, s, "bpm_min", "a tempo in 20..200", self.bpm_min)
        _check(self.bpm_max >= 2 * self.bpm_min and self.bpm_max <= 400, s, "bpm_max",
               f"at least 2 x bpm_min ({2 * self.bpm_min:g}) and at most 400 (a full octave to fold into)",
               self.bpm_max)
        _check(-120.0 <= self.silence_db <= 0.0, s, "silence_db", "a level in -120..0 dBFS", self.silence_db)
        _check(0.0 < self.onset_threshold <= 10.0, s, "onset_threshold", "a number in (0, 10]",
               self.onset_threshold)
        _check(0.0 <= self.onset_min_ioi_s <= 1.0, s, "onset_min_ioi_s", "seconds in 0..1",
               self.onset_min_ioi_s)
        _check(0.0 <= self.smooth_s <= 60.0, s, "smooth_s", "seconds in 0..60", self.smooth_s)
        _check(0.0 <= self.switch_s <= 60.0, s, "switch_s", "seconds in 0..60", self.switch_s)
        _check(1.0 <= self.forget_s <= 600.0, s, "forget_s", "seconds in 1..600", self.forget_s)
        _check(0.0 <= self.rhythm_on <= 1.0, s, "rhythm_on", "a number in 0..1", self.rhythm_on)
        _check(0.0 <= self.rhythm_off <= self.rhythm_on, s, "rhythm_off", f"a number in 0..rhythm_on "
               f"({self.rhythm_on:g})", self.rhythm_off)
        _check(0.0 <= self.rhythm_hold_s <= 60.0, s, "rhythm_hold_s", "seconds in 0..60", self.rhythm_hold_s)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> BeatConfig:
        return config_from_dict(cls, data, "beat")


def hop_for(samplerate: int, config: BeatConfig) -> tuple[int, int]:
    """(window, hop) in samples at ``samplerate``: the configured ones, or ~11 ms and twice that."""
    hop = config.hop or 1 << max(5, round(math.log2(samplerate * 512 / 46000)))
    window = config.window or 2 * hop
    return window, hop


def fold_bpm(bpm: float, lo: float, hi: float, near: float | None = None) -> float:
    """``bpm`` moved by octaves into [lo, hi]; of several candidates, the one nearest ``near``
    (log scale), or ``bpm`` itself when it already lies in range and no ``near`` is given."""
    if not (bpm > 0 and math.isfinite(bpm)):
        return 0.0
    cands = [bpm * 2.0**k for k in range(-4, 5) if lo * 0.999 <= bpm * 2.0**k <= hi * 1.001]
    if not cands:
        return min(max(bpm, lo), hi)
    if near is None or near <= 0:
        return bpm if bpm in cands else cands[0]
    return min(cands, key=lambda c: abs(math.log(c / near)))


class TempoSmoother:
    """A stable published tempo from beat times (pure logic, no audio: tested on its own).

    Each beat adds an inter-beat interval; the candidate tempo is 60 / median of the last 8
    intervals. Near the current tempo (within ``tol`` after octave folding) it is blended in
    log-tempo with time constant ``smooth_s``; a different tempo replaces the current one only
    when candidates agree on it for ``switch_s``; after ``forget_s`` without beats the next
    candidate is taken at once. Intervals longer than 2 s (a break) are not intervals.
    """

    def __init__(self, config: BeatConfig, tol: float = 0.06) -> None:
        self.config = config
        self.tol = tol
        self.bpm = 0.0
        self._ibis: deque[float] = deque(maxlen=8)
        self._last_t: float | None = None
        self._pending: float = 0.0  #: the rival tempo, and since when it has been seen
        self._pending_since: float = 0.0
        self._fresh = True  #: no tempo yet, or forgotten after a long gap: take the next one at once

    def add_beat(self, t: float) -> float:
        """Feed one beat (stream time, s); returns the published tempo (0 until known)."""
        c = self.config
        last, self._last_t = self._last_t, t
        if last is None:
            return self.bpm
        gap = t - last
        if gap > c.forget_s:
            self._ibis.clear()
            self._pending = 0.0
            self._fresh = True
        if not (0.2 <= gap <= 2.0):  # 300 BPM .. 30 BPM
            return self.bpm
        self._ibis.append(gap)
        if len(self._ibis) < 3:
            return self.bpm
        raw = 60.0 / float(np.median(self._ibis))
        if self._fresh:
            self.bpm = fold_bpm(raw, c.bpm_min, c.bpm_max)
            self._fresh = False
            return self.bpm
        cand = fold_bpm(raw, c.bpm_min, c.bpm_max, near=self.bpm)
        if abs(math.log(cand / self.bpm)) <= math.log1p(self.tol):
            a = 1.0 - math.exp(-gap / c.smooth_s) if c.smooth_s > 0 else 1.0
            self.bpm = math.exp((1 - a) * math.log(self.bpm) + a * math.log(cand))
            self._pending = 0.0
            return self.bpm
        # a rival tempo: adopt it once it has held for switch_s
        if self._pending > 0 and abs(math.log(cand / self._pending)) <= math.log1p(self.tol):
            if t - self._pending_since >= c.switch_s:
                self.bpm = fold_bpm(raw, c.bpm_min, c.bpm_max)
                self._pending = 0.0
        else:
            self._pending, self._pending_since = cand, t
        return self.bpm


class BeatClock:
    """Published beats at the published tempo, phase-locked to aubio's beats (pure logic).

    Why: aubio's tracker now and then runs at half or double the tempo for a while (its beats
    every other beat, or between beats), and drops out in breaks. Lights want one flash per beat
    of the tempo people hear. The clock keeps a grid (last published beat + period) and, each
    hop, publishes the grid's next beat when the stream reaches it ("flywheel"); an aubio beat
    near a grid point re-anchors the grid there (published at once when it comes early); aubio
    beats off the grid (half-way) are ignored unless four come in a row, which moves the grid.
    The flywheel stops ``hold_beats`` periods after aubio's last beat, so silence brings no beats.
    """

    def __init__(self, hold_beats: float = 4.0, snap: float = 0.25) -> None:
        self.hold_beats = hold_beats
        self.snap = snap
        self.grid_t = math.nan  #: stream time of the last published beat
        self.last_aubio = -math.inf
        self._off = 0  #: aubio beats in a row off the grid

    def step(self, t_now: float, aubio_beat: float | None, bpm: float) -> list[float]:
        """Advance to stream time ``t_now``; return the stream times of beats to publish now."""
        out: list[float] = []
        if aubio_beat is not None:
            self.last_aubio = aubio_beat
            if bpm <= 0 or math.isnan(self.grid_t):
                out.append(aubio_beat)
                self.grid_t = aubio_beat
                self._off = 0
            else:
                period = 60.0 / bpm
                e = (aubio_beat - self.grid_t) / period
                n = round(e)
                if abs(e - n) <= self.snap:
                    self._off = 0
                    if n >= 1:
                        out.append(aubio_beat)
                    if n >= 0:
                        self.grid_t = aubio_beat
                else:
                    self._off += 1
                    if self._off >= 4:  # the grid is off phase: move it to aubio's beats
                        self._off = 0
                        out.append(aubio_beat)
                        self.grid_t = aubio_beat
        if bpm > 0 and not math.isnan(self.grid_t):
            period = 60.0 / bpm
            hold = self.hold_beats * period
            while t_now >= self.grid_t + period and self.grid_t + period - self.last_aubio <= hold:
                self.grid_t += period
                out.append(self.grid_t)
        return out


def _pearson_acf(o: np.ndarray) -> np.ndarray:
    """Pearson correlation of ``o`` with itself at lags 0..len/2, over the overlapping parts
    (an FFT for the products, cumulative sums for the norms)."""
    m = len(o)
    u = o - o.mean()
    nfft = 1 << int(math.ceil(math.log2(2 * m)))
    f = np.fft.rfft(u, nfft)
    num = np.fft.irfft(f * np.conj(f), nfft)[: m // 2 + 1]
    c2 = np.concatenate([[0.0], np.cumsum(u * u)])
    lags = np.arange(m // 2 + 1)
    den = np.sqrt((c2[m - lags] - c2[0]) * (c2[m] - c2[lags]))
    return np.where(den > 1e-12, num / np.maximum(den, 1e-12), 0.0)


class Periodicity:
    """How periodic the recent onset envelope is, and how well a tempo explains it (pure numpy).

    Why: the beat must go out on a drum intro or a TR-808 groove that the music-presence model
    does not call music, but not on speech or applause, whose onsets aubio also turns into
    "beats" (its tracker always predicts a next beat). A groove repeats: its onset envelope
    (aubio's HFC onset function, log-compressed, minus its 0.25-s moving average, half-wave
    rectified) correlates with itself one, two, three and four beats later; speech and applause
    do not. ``score`` is the best comb over tempi 60-215 BPM of the Pearson correlations at
    lags k x period (k = 1..4, the lags that fit in half the history), over the last ``window_s``.
    ``r_at(lag)`` is that correlation at any lag (``ThreeTwo`` reads how aubio's period divides).
    ``phase(bpm)`` is where in the period the envelope peaks (to pick the on-beat anchors).

    Cost: every ``every`` hops one FFT autocorrelation of <= 4 s of envelope (~400 frames):
    ~0.1 ms, i.e. well under 1 % of a core at a 10-ms hop.
    """

    def __init__(self, fps: float, window_s: float = 4.0, lo_bpm: float = 60.0, hi_bpm: float = 215.0,
                 every: int = 8, low_mix: float = 1.0) -> None:
        self.fps = float(fps)
        self.low_mix = low_mix
        self.n = max(16, int(round(window_s * fps)))
        self.lo_bpm, self.hi_bpm = lo_bpm, hi_bpm
        self.every = every
        self._ring = np.zeros(self.n)  #: the onset envelope, a ring (``_at``: the next slot)
        self._ring_low = np.zeros(self.n)  #: the low band's onsets (kick, snare body, bass), a ring
        self._at = 0
        self._env = self._low = np.zeros(0)  #: both in time order, as of the last update
        self._count = 0  #: frames of envelope since the sound last started (<= n used)
        self._frames = 0
        self._quiet = 0
        self.lag = 0  #: the comb's best lag (frames)
        self.score = 0.0
        self._r = np.zeros(0)

    def push(self, value: float, audible: bool = True, low: float = 0.0) -> bool:
        """Add one hop's onset-function value; True when the scores were just recomputed. Only
        the envelope since the sound last started counts (a silent lead-in would dilute a groove's
        first seconds): ``audible`` false for 0.5 s starts the history over."""
        self._ring[self._at] = max(0.0, float(value)) if math.isfinite(value) else 0.0
        self._ring_low[self._at] = max(0.0, float(low)) if math.isfinite(low) else 0.0
        self._at = (self._at + 1) % self.n
        self._count += 1
        self._quiet = 0 if audible else self._quiet + 1
        if self._quiet >= 0.5 * self.fps:
            self._count = 0
        self._frames += 1
        if self._frames % self.every:
            return False
        self._update()
        return True

    def _update(self) -> None:
        self._env, self._low = np.roll(self._ring, -self._at), np.roll(self._ring_low, -self._at)
        m = min(self._count, self.n)
        x = self._env[-m:]
        mean = float(np.mean(x))
        if m < int(0.75 * self.fps) or mean <= 1e-12:
            self.score, self._r = 0.0, np.zeros(0)
            return
        o = np.log1p(x / mean)
        w = max(1, int(0.25 * self.fps))
        c = np.cumsum(np.concatenate([np.zeros(w // 2 + 1), o, np.full(w - w // 2, o[-1])]))
        o = np.maximum(0.0, o - (c[w:w + m] - c[:m]) / w)  # minus its centred moving average
        self._r = _pearson_acf(o)
        if self.low_mix <= 0:
            self.score = self._comb(self._r)
        else:  # plus the low band's onsets: the kick of a TR-808 carries little HFC
            lo = self._low[-m:]
            mixed = o / (float(np.std(o)) + 1e-9) + self.low_mix * lo / (float(np.std(lo)) + 1e-9)
            self.score = self._comb(_pearson_acf(mixed))

    def _comb(self, r: np.ndarray) -> float:
        """The best mean of ``r`` at 1-4 x lag (those <= its last lag) over lags of 60-215 BPM;
        sets ``lag``."""
        fps = self.fps
        top = len(r) - 1
        lo = max(1, int(math.floor(60 * fps / self.hi_bpm)))
        hi = min(top, int(math.ceil(60 * fps / self.lo_bpm)))
        self.lag = 0
        if hi < lo:
            return 0.0
        lags = np.arange(lo, hi + 1)
        idx = lags[None, :] * np.arange(1, 5)[:, None]
        ok = idx <= top
        vals = np.where(ok, r[np.minimum(idx, top)], 0.0).sum(axis=0) / ok.sum(axis=0)
        i = int(np.argmax(vals))
        if vals[i] <= 0:
            return 0.0
        self.lag = int(lags[i])
        return float(vals[i])

    def r_at(self, lag: float) -> float:
        """The envelope's correlation with itself ``lag`` frames later (interpolated; nan: no history)."""
        r = self._r
        if lag < 1 or lag >= len(r) - 1:
            return math.nan
        i = int(lag)
        return float((1 - (lag - i)) * r[i] + (lag - i) * r[i + 1])

    def phase(self, bpm: float, t_last: float) -> float:
        """The time (s, on the stream clock of ``t_last``: the time of the newest frame) of the
        low band's peak phase for period 60/bpm (kick and snare sit on the beat, hats between),
        reduced to the period before ``t_last``; nan without history."""
        m = min(self._count, self.n)
        if bpm <= 0 or m < 2:
            return math.nan
        o = np.roll(self._ring_low, -self._at)[-m:]  # up to the newest frame (t_last)
        p = 60.0 * self.fps / bpm
        nb = 16
        idx = np.floor((np.arange(m) % p) / p * nb).astype(int) % nb
        h = np.bincount(idx, weights=o, minlength=nb) / np.maximum(1, np.bincount(idx, minlength=nb))
        h = (np.roll(h, 1) + 2 * h + np.roll(h, -1)) / 4
        ph = (int(np.argmax(h)) + 0.5) / nb * p  # frames after the window's first frame
        period = p / self.fps
        t = t_last - (m - 1) / self.fps + ph / self.fps
        return t + math.floor((t_last - t) / period) * period


#: log2 of the period ratios that count as one steady pulse (octaves and 3:2: one groove's comb
#: may peak at the beat, the bar's half or the dotted beat from one update to the next)
_RELATED = (-1.0, -math.log2(1.5), 0.0, math.log2(1.5), 1.0)


class RhythmGate:
    """Rhythm by itself: opens once the onset envelope has been periodic at one steady period
    (the comb's best lag the same, or an octave or 3:2 away, to 7 %): ``Periodicity.score`` >=
    ``rhythm_on`` for ``steady_s``, or >= half-way between ``rhythm_off`` and ``rhythm_on`` for
    ``long_s`` (a busy groove whose comb is weaker but whose period never wavers); closes after
    ``rhythm_hold_s`` below ``rhythm_off``, and after 1 s of silence. Pure logic over the scores.

    Why the steady period: speech is bursty, and one phrase's syllables can look periodic for a
    moment (espeak-ng's voices are machine-regular), but the period they suggest wanders from one
    update to the next; a groove holds it from its first second.
    """

    def __init__(self, config: BeatConfig, steady_s: float = 0.5, long_s: float = 1.0) -> None:
        self.config = config
        self.steady_s = steady_s
        self.long_s = long_s
        self._strong_since: float | None = None
        self.open = False
        self._low_since: float | None = None
        self._quiet_since: float | None = None
        self._steady_since: float | None = None
        self._lag = 0

    def update(self, t: float, score: float, lag: int, audible: bool) -> bool:
        c = self.config
        if not audible:
            self._quiet_since = t if self._quiet_since is None else self._quiet_since
            if t - self._quiet_since >= 1.0:
                self.open = False
        else:
            self._quiet_since = None
        if score >= (c.rhythm_on + c.rhythm_off) / 2 and lag > 0 and audible:
            same = self._lag > 0 and min(abs(math.log2(lag / self._lag) - k) for k in _RELATED) <= 0.1
            if not same or self._steady_since is None:
                self._steady_since, self._lag, self._strong_since = t, lag, None
            if score >= c.rhythm_on:
                self._strong_since = t if self._strong_since is None else self._strong_since
            else:
                self._strong_since = None
            if (self._strong_since is not None and t - self._strong_since >= self.steady_s
                    or t - self._steady_since >= self.long_s):
                self.open = True
        else:
            self._steady_since, self._lag, self._strong_since = None, 0, None
        if self.open and score < c.rhythm_off:
            self._low_since = t if self._low_since is None else self._low_since
            if t - self._low_since >= c.rhythm_hold_s:
                self.open = False
        else:
            self._low_since = None
        return self.open


class ThreeTwo:
    """Undoes aubio's 3:2 lock (it settles on exactly 2/3 of 170-200 BPM).

    Why a pulse test and not a tempo score: on a groove with straight eighths every lag that is
    a multiple of an eighth correlates, so 1 and 1.5 beats score alike. What differs is how
    aubio's period ``P`` divides: locked on 2/3 of the tempo, ``P`` holds three eighths, so the
    onset envelope correlates at ``P/3`` and ``2P/3`` and anti-correlates at ``P/2`` (an off-grid
    sixteenth-and-a-half); on the right tempo it correlates at ``P/2`` (the eighth). A shuffle
    (triplets with the middle one missing) correlates only half as much at ``P/3`` and stays.
    The ratio changes after ``need`` agreeing updates in a row (~0.5 s). A 6/8 groove counted in
    dotted quarters would be counted in quarters (documented in docs/show.md). On recorded rock
    the distorted guitars blur the eighths (``P/3`` only 0.15-0.45): a looser test (``loose``)
    takes that too, but only for a result >= ``fast_bpm`` (a 72-BPM shuffle passes it as well).

    Octaves (ratio 0.5): aubio calls many straight grooves at 60-100 BPM at their eighths. Then
    nothing lies between its beats: the envelope does not correlate at ``P/2`` and anti-correlates
    at ``P/3`` and ``2P/3``, and the low band (kick, snare, bass) does not correlate at ``P/2`` nor
    ``P/4``; on the right tempo the hats, a double kick or the bass fill ``P/2``, and a fast
    shuffle's swung eighth ``2P/3``. Halving needs twice the votes (~1 s) and a half within
    ``bpm_min``; a groove of quarter notes alone at >= 2 x ``bpm_min`` would be halved too.
    """

    def __init__(self, config: BeatConfig, grouped: float = 0.55, need: int = 5, loose: float = 0.35,
                 fast_bpm: float = 155.0) -> None:
        self.config = config
        self.grouped = grouped
        self.loose = loose  #: the looser test (recorded songs) needs P/3 >= loose / 2, 2P/3 >= loose ...
        self.fast_bpm = fast_bpm  #: ... and a result at or above this tempo
        self.need = need
        self.ratio = 1.0
        self._rival = 1.0
        self._votes = 0

    def update(self, bpm: float, per: Periodicity) -> float:
        """Feed aubio's tempo ``bpm`` after ``per`` was recomputed; returns the ratio to apply."""
        c = self.config
        if bpm <= 0:
            return self.ratio
        p = 60.0 * per.fps / bpm
        third, half, two_thirds = per.r_at(p / 3), per.r_at(p / 2), per.r_at(2 * p / 3)
        if not all(math.isfinite(v) for v in (third, half, two_thirds)):
            return self.ratio
        want = self.ratio
        if min(third, two_thirds) >= self.grouped and half < 0.1 and bpm * 1.5 <= c.bpm_max * 1.001:
            want = 1.5  # aubio's period holds three straight pulses: the beat is two of them
        elif (two_thirds >= self.loose and third >= self.loose / 2 and half <= -0.05
              and self.fast_bpm <= bpm * 1.5 <= c.bpm_max * 1.001):
            # recorded rock and metal at 160-210 BPM: distorted guitars blur the eighths, so P/3
            # correlates less than on a drum kit alone (0.15-0.45), but two of aubio's three pulses
            # (the beat) still stand out and P/2 still anti-correlates (issue #31's real-music set)
            want = 1.5
        elif half >= 0.3:
            want = 1.0  # aubio's period splits in two: it is the beat
        elif (half < 0.0 and max(third, two_thirds) < -0.03 and bpm * 0.5 >= c.bpm_min * 0.999
              and all(v < 0.05 for v in (_low_r(per, p / 2), _low_r(per, p / 4)))):  # nan: no
            # nothing between aubio's beats, in the hats (HFC) nor in kick and bass (low band): aubio
            # is on the fastest pulse of the groove, its eighths; a beat of two (issue #31's octaves)
            want = 0.5
        if not c.bpm_min * 0.999 <= bpm * self.ratio <= c.bpm_max * 1.001:
            self.ratio, self._votes = 1.0, 0  # aubio moved (e.g. to the half itself): out of range
            return self.ratio
        if want == self.ratio:
            self._votes = 0
        elif want == self._rival:
            self._votes += 1
            if self._votes >= self.need * (2 if want == 0.5 else 1):  # halving: ~1 s of agreement
                self.ratio, self._votes = want, 0
        else:
            self._rival, self._votes = want, 1
        return self.ratio


def beat_phase(wall: float, last_beat_wall: float, bpm: float) -> float:
    """Beat phase in [0, 1) at time ``wall`` (0 on the beat), from the last beat and the tempo;
    0.0 when no tempo is known. Extrapolated: between detected beats it keeps counting."""
    if bpm <= 0 or not math.isfinite(last_beat_wall):
        return 0.0
    return ((wall - last_beat_wall) * bpm / 60.0) % 1.0


@dataclass(frozen=True)
class BeatState:
    """What the tracker knows now (replaced as a whole, so any thread may read it)."""

    bpm: float = 0.0  #: smoothed tempo (0: not known yet)
    beats: int = 0  #: beats since reset
    onsets: int = 0  #: onsets since reset
    last_beat_t: float = math.nan  #: stream time of the last beat
    last_beat_wall: float = math.nan  #: time.monotonic() at which the last beat sounded
    confidence: float = 0.0  #: aubio's confidence in its current period
    rhythm: bool = False  #: the rhythm gate is open (a steady beat by itself: ``RhythmGate``)
    periodicity: float = 0.0  #: ``Periodicity.score`` now (0..1)

    def phase(self, wall: float) -> float:
        """Beat phase 0..1 at ``wall`` (time.monotonic())."""
        return beat_phase(wall, self.last_beat_wall, self.bpm)


class BeatTracker:
    """Block analyser: ``reset(sr)``, ``process(mono, t_end, wall) -> [Event]``, ``state()``."""

    def __init__(self, config: BeatConfig | None = None) -> None:
        self.config = config or BeatConfig()
        self._state = BeatState()
        self._lock = threading.Lock()
        self.samplerate = 0
        self.rhythm = False

    def reset(self, samplerate: int) -> None:
        """Start over at ``samplerate`` (a new source or device): counters go back to 0."""
        import aubio

        if samplerate <= 0:
            raise ValueError(f"samplerate must be > 0, got {samplerate}")
        c = self.config
        self.samplerate = int(samplerate)
        self.window, self.hop = hop_for(self.samplerate, c)
        self._tempo = aubio.tempo(c.method, self.window, self.hop, self.samplerate)
        self._tempo.set_silence(c.silence_db)
        self._onset = aubio.onset(c.onset_method, self.window, self.hop, self.samplerate)
        self._onset.set_silence(c.silence_db)
        self._onset.set_threshold(c.onset_threshold)
        self._onset.set_minioi_s(c.onset_min_ioi_s)
        self._smoother = TempoSmoother(c)
        self._clock = BeatClock()
        self._per = Periodicity(self.samplerate / self.hop)
        self._gate = RhythmGate(c)
        self._three = ThreeTwo(c)
        self._raw_bpm = 0.0  #: the tempo of aubio's beats (TempoSmoother), before the 3:2 correction
        self._ratio_was = 1.0  #: ThreeTwo's ratio at the last hop (a change re-phases the clock)
        self._audible_t = -math.inf  #: stream time of the last hop above silence_db
        self._silence_pow = 10.0 ** (c.silence_db / 10.0)
        self._nfft = self.hop  #: a small DFT per hop for the low band (< 250 Hz) the phase is read from
        self._low_bins = max(2, int(250.0 * self._nfft / self.samplerate) + 1)
        # only those few bins are needed: their cosine and sine rows, not a whole FFT per hop
        kn = np.outer(np.arange(self._low_bins), np.arange(self.hop)) * (2 * np.pi / self._nfft)
        self._low_dft = np.concatenate([np.cos(kn), np.sin(kn)])
        self._low_prev = 0.0
        self.rhythm = False  #: the rhythm gate is open (read by the pipeline after each block)
        self._buf = np.zeros(0, dtype=np.float32)
        self._fed = 0  #: samples given to aubio so far
        with self._lock:
            self._state = BeatState()

    def state(self) -> BeatState:
        return self._state

    def process(self, mono: np.ndarray, t_end: float, wall: float) -> list[Event]:
        """Analyse one block (``t_end``: stream time of its last sample; ``wall``: now)."""
        if not self.config.enabled or self.samplerate <= 0:
            return []
        x = np.asarray(mono, dtype=np.float32).reshape(-1)
        buf = np.concatenate([self._buf, x]) if self._buf.size else x
        n, hop, sr = len(buf), self.hop, self.samplerate
        events: list[Event] = []
        st = self._state
        beats, onsets = st.beats, st.onsets
        last_t, last_wall, bpm = st.last_beat_t, st.last_beat_wall, st.bpm
        i = 0
        while i + hop <= n:
            chunk = buf[i:i + hop]
            if not chunk.flags.c_contiguous:
                chunk = np.ascontiguousarray(chunk)
            i += hop
            self._fed += hop
            t_chunk = t_end - (n - i) / sr  # stream time of the sample just after the chunk
            if float(np.dot(chunk, chunk)) > self._silence_pow * hop:
                self._audible_t = t_chunk
            t_a = None
            if self._tempo(chunk)[0]:
                t_a = t_chunk - (self._fed - self._tempo.get_last()) / sr
                self._raw_bpm = self._smoother.add_beat(t_a)
            onset = bool(self._onset(chunk)[0])
            v = self._low_dft @ chunk  # re and im of the low bins
            low = math.log(1e-10 + float(np.dot(v, v)))
            low_onset, self._low_prev = low - self._low_prev, low
            audible = t_chunk - self._audible_t < 0.05
            if self._per.push(float(self._onset.get_descriptor()), audible, low_onset):
                self.rhythm = self._gate.update(t_chunk, self._per.score, self._per.lag,
                                                t_chunk - self._audible_t < 0.5)
                self._three.update(self._raw_bpm, self._per)
            ratio = self._three.ratio
            bpm = self._raw_bpm * ratio
            if ratio != self._ratio_was:
                self._ratio_was = ratio
                ph = self._per.phase(bpm, t_chunk) if ratio != 1.0 and bpm > 0 else math.nan
                if math.isfinite(ph) and math.isfinite(self._clock.grid_t):
                    # a new period: the grid's last beat may be an off-beat of it (aubio's eighth);
                    # restart it on the envelope's beat phase instead of waiting for four anchors
                    self._clock.grid_t = ph
            if t_a is not None and ratio != 1.0 and bpm > 0:
                # aubio beats every 1.5 (or 2/3) beats: only those on the envelope's beat phase anchor
                period = 60.0 / bpm
                e = (t_a - self._per.phase(bpm, t_chunk)) / period  # nan: no history (after silence)
                if math.isfinite(e) and not abs(e - round(e)) <= 0.2:
                    t_a = None
            # aubio now and then gives no beat for seconds inside a steady groove (10 s on a 110-BPM
            # test groove): while the rhythm gate is open at this period, the flywheel keeps going
            lag_p = 60.0 * self._per.fps / bpm if bpm > 0 else 0.0
            steady = (self.rhythm and lag_p > 0 and self._per.lag > 0
                      and min(abs(math.log2(self._per.lag / lag_p) - k) for k in _RELATED) <= 0.1)
            self._clock.hold_beats = 32.0 if steady else 4.0
            for t_b in self._clock.step(t_chunk, t_a, bpm):
                beats += 1
                last_t, last_wall = t_b, wall - (t_end - t_b)
                events.append(Event("beat", beats, t_b, wall, bpm=bpm,
                                    strength=1.0 if t_b == t_a else 0.0))
            if onset:
                t_o = t_chunk - (self._fed - self._onset.get_last()) / sr
                onsets += 1
                events.append(Event("onset", onsets, t_o, wall,
                                    strength=float(self._onset.get_descriptor())))
        self._buf = buf[i:].copy()
        if events or self.rhythm != st.rhythm:
            self._publish(BeatState(bpm, beats, onsets, last_t, last_wall,
                                    float(self._tempo.get_confidence()), self.rhythm, self._per.score))
        return events

    def _publish(self, state: BeatState) -> None:
        """Make ``state`` what ``state()`` returns (a subclass may keep it to itself: BeatNet's)."""
        with self._lock:
            self._state = state


def _low_r(per: Periodicity, lag: float) -> float:
    """The low band's onset envelope (kick, snare body, bass) correlated with itself ``lag`` frames
    later, over ``per``'s current history (nan without one). Computed only when asked: rare."""
    m = min(per._count, per.n)
    lo = per._low[-m:] if m > 16 else np.zeros(0)
    if len(lo) < 16 or not 1 <= lag < len(lo) // 2:
        return math.nan
    r = _pearson_acf(lo)
    i = int(lag)
    return float((1 - (lag - i)) * r[i] + (lag - i) * r[i + 1])


def make_tracker(config: BeatConfig) -> BeatTracker:
    """The ``[beat] tracker`` the config names. A BeatNet model that cannot be loaded stops the
    start with one line (exit 2) when BeatNet was asked for; for the default hybrid it is a
    one-line warning and aubio's beats alone (the show goes on)."""
    if config.tracker == "aubio":
        return BeatTracker(config)
    from mer_live.analysers.beatnet import BeatNetTracker, HybridTracker
    from mer_live.inference.model import ModelError
    from mer_live.registry import StartError

    try:
        return (HybridTracker if config.tracker == "hybrid" else BeatNetTracker)(config)
    except ModelError as e:
        if config.tracker == "hybrid":
            logging.getLogger(__name__).warning("%s: the beat goes on with aubio's tracker alone", e)
            return BeatTracker(config)
        raise StartError(str(e), 2) from None


# ---- registration: [beat], --no-beat, the events it publishes and the values they carry -----------

register_analyser(AnalyserSpec(
    name="beat", order=90, run_order=10, config=BeatConfig,
    build=lambda c, _built: make_tracker(c) if c.enabled else None,
    event_kinds=("beat", "onset"), rhythm_kinds=("beat", "onset"),
    values={"beat": lambda ev: {"bpm": ev.bpm, "beats": ev.count}},
    flags=(Flag(("--no-beat",),
                dict(action="store_const", const=True,
                     help="no beat, tempo or onset tracking (/mer/beat, /mer/bpm, /mer/onset)"),
                ("beat", "enabled"), lambda v: not v),
           Flag(("--beat-tracker",),
                dict(choices=BEAT_TRACKERS,
                     help="whose beats go out on /mer/beat: hybrid (default: aubio's on clearly "
                     "periodic drums, BeatNet's elsewhere), aubio's (the lightest) or BeatNet's "
                     "(its CRNN and particle filter, CC BY 4.0)"),
                ("beat", "tracker"))),
))
