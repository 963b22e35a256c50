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

import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from mer_live.estimate import Event
from mer_live.showconfig import check as _check
from mer_live.showconfig import config_from_dict, pow2

#: aubio's onset detection functions (the tempo tracker runs on one of them too).
AUBIO_METHODS = ("default", "energy", "hfc", "complex", "phase", "wphase", "specdiff", "kl", "mkl",
                 "specflux")


@dataclass(frozen=True)
class BeatConfig:
    """``[beat]``: aubio's tempo tracker and onset detector, and how the tempo is smoothed."""

    enabled: bool = True
    method: str = "default"  #: aubio's onset function for the beat tracker ("default": specflux)
    onset_method: str = "hfc"  #: aubio's onset function for /mer/onset
    window: int = 0  #: FFT size in samples at the device rate (power of 2; 0: 2 x hop)
    hop: int = 0  #: samples between analyses (power of 2; 0: ~11 ms, 512 at 44.1/48 kHz)
    bpm_min: float = 70.0  #: the published tempo is folded by octaves into [bpm_min, bpm_max]
    bpm_max: float = 180.0
    silence_db: float = -60.0  #: no beats or onsets below this level (dBFS)
    onset_threshold: float = 0.3  #: aubio's peak-picking threshold (higher: fewer onsets)
    onset_min_ioi_s: float = 0.05  #: at most one onset per this many seconds
    smooth_s: float = 2.0  #: time constant of the tempo smoothing
    switch_s: float = 5.0  #: a different tempo must persist this long to replace the current one
    forget_s: float = 10.0  #: after this long without beats the next tempo is taken at once

    def __post_init__(self) -> None:
        s = "beat"
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
            t_a = None
            if self._tempo(chunk)[0]:
                t_a = t_chunk - (self._fed - self._tempo.get_last()) / sr
                bpm = self._smoother.add_beat(t_a)
            for t_b in self._clock.step(t_chunk, t_a, bpm):
                beats += 1
                last_t, last_wall = t_b, wall - (t_end - t_b)
                events.append(Event("beat", beats, t_b, wall, bpm=bpm,
                                    strength=1.0 if t_b == t_a else 0.0))
            if self._onset(chunk)[0]:
                t_o = t_chunk - (self._fed - self._onset.get_last()) / sr
                onsets += 1
                events.append(Event("onset", onsets, t_o, wall,
                                    strength=float(self._onset.get_descriptor())))
        self._buf = buf[i:].copy()
        if events:
            with self._lock:
                self._state = BeatState(bpm, beats, onsets, last_t, last_wall,
                                        float(self._tempo.get_confidence()))
        return events
