"""Section changes and drops: a block analyser that tells when the music changes character.

Why: a lighting designer changes the look when the song changes, the chorus comes in or the
drop hits; emotion values drift too slowly to mark that instant. ``SectionDetector`` is fed the
same blocks as the beat tracker (mono float32, device rate) and keeps its own cheap features:
every ``frame_s`` (0.25 s) a 24-band log-mel spectrum (dB), the frame's loudness and its bass
(< 150 Hz) energy, from non-overlapping ~46 ms FFTs.

``section``: spectral novelty by Foote's checkerboard kernel over the distance matrix of the
last 2 x ``kernel_s`` of frames: the Gaussian-tapered mean distance between past and future
frames (the kernel's off-diagonal quadrants) divided by the mean distance within each half (its
diagonal quadrants), minus 1. A steady groove scores ~0 however busy it is (its frames differ
as much within a half as across), a change of timbre, harmony or loudness scores high. A peak
of at least ``threshold``, at least ``min_spacing_s`` after the last section, is an event, time
stamped at the change (the kernel's centre); it is known ``kernel_s`` + a frame later. A future
half that is mostly silence is not a section (the music stopped: the pipeline's music flag says
that); music starting after silence is one (a new song).

``drop``: after ``drop_build_s`` of music (a build, not silence: not a song's start) whose bass
was 10 dB or more under its whole (a breakdown), the bass jumps: each frame of the half second
after the cut is ``drop_db`` over the build's bass, and the bass is a main part of the sound
again (within 10 dB of the whole). Loudness alone is not used: a build's risers are often as
loud as the drop. At most one per ``drop_spacing_s``; with ``drop_min_arousal`` > 0 only while
the last arousal seen by ``observe(estimate)`` (a sink-side hook; data flows one way) is at least
that. Known 0.5-0.75 s after the drop.

Cost: one FFT per ~46 ms (a frame's FFTs in one call when its audio is complete) and a 32 x 32
distance matrix four times a second, well under 1 % of a core (bench/bench_show_cost.py).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from mer_live.common.validate import check, config_from_dict
from mer_live.live.records import Estimate, Event
from mer_live.registry import AnalyserSpec, Flag, register_analyser


@dataclass(frozen=True)
class SectionConfig:
    """``[sections]``: novelty (section changes) and drop detection."""

    enabled: bool = True
    bands: int = 24  #: mel bands of the feature
    frame_s: float = 0.25  #: seconds between feature frames
    kernel_s: float = 4.0  #: half-width of the checkerboard kernel: context each side, and the delay
    threshold: float = 0.6  #: novelty peak needed for a section (0: steady; see module doc)
    min_spacing_s: float = 8.0  #: at most one section per this many seconds
    silence_db: float = -60.0  #: frames quieter than this (dBFS) count as silence
    drops: bool = True
    drop_db: float = 12.0  #: bass jump (dB) over the build needed for a drop
    drop_build_s: float = 4.0  #: music needed before a drop
    drop_spacing_s: float = 15.0
    drop_min_arousal: float = 0.0  #: > 0: drops only while the observed arousal is at least this

    def __post_init__(self) -> None:
        s = "sections"
        check(8 <= self.bands <= 64, s, "bands", "an integer in 8..64", self.bands)
        check(0.05 <= self.frame_s <= 2.0, s, "frame_s", "seconds in 0.05..2", self.frame_s)
        check(4 * self.frame_s <= self.kernel_s <= 30.0, s, "kernel_s",
              f"seconds in {4 * self.frame_s:g}..30 (4 frames at least)", self.kernel_s)
        check(0.0 < self.threshold <= 100.0, s, "threshold", "a number in (0, 100]", self.threshold)
        check(0.0 <= self.min_spacing_s <= 600.0, s, "min_spacing_s", "seconds in 0..600", self.min_spacing_s)
        check(-120.0 <= self.silence_db <= 0.0, s, "silence_db", "a level in -120..0 dBFS", self.silence_db)
        check(0.0 < self.drop_db <= 60.0, s, "drop_db", "dB in (0, 60]", self.drop_db)
        check(0.0 <= self.drop_build_s <= 120.0, s, "drop_build_s", "seconds in 0..120", self.drop_build_s)
        check(0.0 <= self.drop_spacing_s <= 600.0, s, "drop_spacing_s", "seconds in 0..600",
              self.drop_spacing_s)
        check(0.0 <= self.drop_min_arousal <= 1.0, s, "drop_min_arousal", "a number in 0..1",
              self.drop_min_arousal)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SectionConfig:
        return config_from_dict(cls, data, "sections")


def mel_matrix(sr: int, n_fft: int, bands: int, fmin: float = 40.0, fmax: float = 16000.0) -> np.ndarray:
    """Triangular mel filters [bands, n_fft // 2 + 1] (HTK mel scale), each summing to 1."""
    fmax = min(fmax, sr / 2.0)

    def mel(f: np.ndarray | float) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    edges_hz = 700.0 * (10 ** (np.linspace(mel(fmin), mel(fmax), bands + 2) / 2595.0) - 1.0)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    m = np.zeros((bands, len(freqs)), dtype=np.float64)
    for b in range(bands):
        lo, mid, hi = edges_hz[b:b + 3]
        up = (freqs - lo) / max(mid - lo, 1e-9)
        down = (hi - freqs) / max(hi - mid, 1e-9)
        m[b] = np.clip(np.minimum(up, down), 0.0, None)
        if m[b].sum() == 0:  # narrower than a bin at low frequencies: take the nearest bin
            m[b, int(np.argmin(np.abs(freqs - mid)))] = 1.0
        m[b] /= m[b].sum()
    return m.astype(np.float32)


def checkerboard_novelty(feats: np.ndarray, taper: np.ndarray) -> float:
    """Normalised Foote novelty at the centre of ``feats`` [2L, d]: tapered mean distance across
    the centre over the mean distance within each half, minus 1 (0 for a steady signal)."""
    d = np.sqrt(np.maximum(((feats[:, None, :] - feats[None, :, :]) ** 2).mean(axis=2), 0.0))
    half = len(feats) // 2
    w = taper[:, None] * taper[None, :]
    cross = (w[:half, half:] * d[:half, half:]).sum() / w[:half, half:].sum()
    within_w = w[:half, :half].sum() + w[half:, half:].sum()
    within = ((w[:half, :half] * d[:half, :half]).sum()
              + (w[half:, half:] * d[half:, half:]).sum()) / within_w
    return float(cross / max(within, 0.5) - 1.0)  # 0.5 dB floor: silence vs silence is not a change


@dataclass(frozen=True)
class SectionState:
    sections: int = 0
    drops: int = 0
    novelty: float = 0.0  #: the latest novelty value
    last_section_t: float = math.nan
    last_drop_t: float = math.nan


class SectionDetector:
    """Block analyser: ``reset(sr)``, ``process(mono, t_end, wall) -> [Event]``, ``state()``,
    and ``observe(estimate)`` for the optional arousal gate on drops."""

    def __init__(self, config: SectionConfig | None = None) -> None:
        self.config = config or SectionConfig()
        self._state = SectionState()
        self._lock = threading.Lock()
        self._arousal = math.nan
        self.samplerate = 0

    def reset(self, samplerate: int) -> None:
        if samplerate <= 0:
            raise ValueError(f"samplerate must be > 0, got {samplerate}")
        c = self.config
        self.samplerate = sr = int(samplerate)
        self.n_fft = 1 << max(8, round(math.log2(sr * 0.046)))
        self._window = np.hanning(self.n_fft).astype(np.float32)
        self._wnorm = float((self._window**2).sum()) * self.n_fft / 2.0  # full-scale sine -> ~0 dB
        self._mel = mel_matrix(sr, self.n_fft, c.bands)
        freqs = np.fft.rfftfreq(self.n_fft, 1.0 / sr)
        self._bass = (freqs >= 30.0) & (freqs < 150.0)
        self.frame_ffts = max(1, round(c.frame_s * sr / self.n_fft))
        self.frame_dt = self.frame_ffts * self.n_fft / sr
        self.half = max(2, round(c.kernel_s / self.frame_dt))
        k = np.arange(2 * self.half) - self.half + 0.5
        self._taper = np.exp(-0.5 * (k / (0.5 * self.half)) ** 2)  # Gaussian taper, sigma = half/2
        #: the current frame's audio (frame_ffts FFTs, back to back): its FFTs run together when it
        #: is full, four times a second, instead of one numpy chain per FFT (issue #28)
        self._fbuf = np.zeros(self.frame_ffts * self.n_fft, dtype=np.float32)
        self._fpos = 0
        self._acc_mel = np.zeros(c.bands, dtype=np.float64)
        self._acc_pow = 0.0
        self._acc_bass = 0.0
        self._acc_n = 0
        n_hist = 2 * self.half
        self._feats: deque[np.ndarray] = deque(maxlen=n_hist)
        self._times: deque[float] = deque(maxlen=n_hist)  #: stream time of each frame's end
        self._silent: deque[bool] = deque(maxlen=n_hist)
        self._nov: deque[float] = deque(maxlen=3)
        hist = int(math.ceil((c.drop_build_s + 4.0) / self.frame_dt)) + 4
        self._loud: deque[float] = deque(maxlen=hist)
        self._bass_db: deque[float] = deque(maxlen=hist)
        self._ftimes: deque[float] = deque(maxlen=hist)
        self._last_section_t = -math.inf
        self._last_drop_t = -math.inf
        with self._lock:
            self._state = SectionState()

    def state(self) -> SectionState:
        return self._state

    def observe(self, estimate: Estimate) -> None:
        """Sink-side hook: remember the latest smoothed arousal (for ``drop_min_arousal``)."""
        self._arousal = estimate.arousal if estimate.music else math.nan

    def process(self, mono: np.ndarray, t_end: float, wall: float) -> list[Event]:
        if not self.config.enabled or self.samplerate <= 0:
            return []
        x = np.asarray(mono, dtype=np.float32).reshape(-1)
        fb, size, m, sr = self._fbuf, len(self._fbuf), len(x), self.samplerate
        pos, j = self._fpos, 0
        events: list[Event] = []
        while j < m:
            take = min(size - pos, m - j)
            fb[pos:pos + take] = x[j:j + take]
            pos += take
            j += take
            if pos == size:
                p = np.abs(np.fft.rfft(fb.reshape(self.frame_ffts, self.n_fft) * self._window, axis=1)) ** 2
                p /= self._wnorm
                self._acc_mel += (p @ self._mel.T).sum(axis=0, dtype=np.float64)
                for tot, bass in zip(p.sum(axis=1).tolist(), p[:, self._bass].sum(axis=1).tolist(),
                                     strict=True):
                    self._acc_pow += tot
                    self._acc_bass += bass
                self._acc_n = self.frame_ffts
                events += self._frame(t_end - (m - j) / sr, wall)
                pos = 0
        self._fpos = pos
        return events

    def _frame(self, t: float, wall: float) -> list[Event]:
        c = self.config
        k = self._acc_n
        mel_db = 10.0 * np.log10(self._acc_mel / k + 1e-10)
        loud = 10.0 * math.log10(self._acc_pow / k + 1e-12)
        bass = 10.0 * math.log10(self._acc_bass / k + 1e-12)
        self._acc_mel[:] = 0.0
        self._acc_pow = self._acc_bass = 0.0
        self._acc_n = 0
        silent = loud < c.silence_db
        self._feats.append(np.maximum(mel_db, c.silence_db - 40.0).astype(np.float32))
        self._times.append(t)
        self._silent.append(silent)
        self._loud.append(loud)
        self._bass_db.append(bass)
        self._ftimes.append(t)
        events: list[Event] = []
        st = self._state
        sections, drops, nov = st.sections, st.drops, st.novelty
        if len(self._feats) == 2 * self.half:
            nov = checkerboard_novelty(np.stack(self._feats), self._taper)
            self._nov.append(nov)
            if len(self._nov) == 3:
                a, b, cc = self._nov
                # the peak was one frame ago: its centre is frame half-1 of the window one frame back
                t_change = self._times[self.half - 2]
                future_silent = sum(list(self._silent)[self.half - 1:]) > (self.half + 1) / 2
                if (b >= c.threshold and b >= a and b > cc and not future_silent
                        and t_change - self._last_section_t >= c.min_spacing_s):
                    self._last_section_t = t_change
                    sections += 1
                    events.append(Event("section", sections, t_change, wall, strength=b))
        if c.drops:
            ev = self._drop(wall)
            if ev is not None:
                drops = ev.count
                events.append(ev)
        with self._lock:
            self._state = SectionState(sections, drops, nov,
                                       self._last_section_t if sections else math.nan,
                                       self._last_drop_t if drops else math.nan)
        return events

    def _drop(self, wall: float) -> Event | None:
        c = self.config
        after_n = max(1, round(0.5 / self.frame_dt))  # the half second after the cut
        build_n = max(2, round(c.drop_build_s / self.frame_dt))  # the build before it
        if len(self._loud) < after_n + 1 + build_n:
            return None
        loud = np.array(self._loud)
        bass = np.array(self._bass_db)

        def mean_db(v: np.ndarray) -> float:
            return 10.0 * math.log10(float(np.mean(10.0 ** (v / 10.0))) + 1e-12)

        # one frame between the build and the after: the one the cut falls into
        a_loud, a_bass = mean_db(loud[-after_n:]), mean_db(bass[-after_n:])
        build = loud[-after_n - 1 - build_n:-after_n - 1]
        b_loud, b_bass = mean_db(build), mean_db(bass[-after_n - 1 - build_n:-after_n - 1])
        t_drop = self._ftimes[-after_n - 1] - self.frame_dt / 2  # the middle of the frame of the cut
        # the build had no bass to speak of (10 dB under its whole), every frame after the cut is
        # drop_db louder in the bass than the build, and the bass is a main part of the sound again
        if not (b_bass <= b_loud - 10.0 and a_bass - b_bass >= c.drop_db
                and float(np.min(bass[-after_n:])) - b_bass >= c.drop_db and a_bass >= a_loud - 10.0):
            return None
        if np.mean(build < c.silence_db) > 0.1:  # silence before: a song starting, not a drop
            return None
        if c.drop_min_arousal > 0 and not (self._arousal >= c.drop_min_arousal):
            return None
        if t_drop - self._last_drop_t < c.drop_spacing_s:
            return None
        self._last_drop_t = t_drop
        return Event("drop", self._state.drops + 1, t_drop, wall, strength=a_bass - b_bass)


# ---- registration: [sections], --no-sections, the events it publishes ----------------------------

register_analyser(AnalyserSpec(
    name="sections", order=100, run_order=30, config=SectionConfig,
    build=lambda c, _built: SectionDetector(c) if c.enabled else None,
    event_kinds=("section", "drop"),
    flags=(Flag(("--no-sections",),
                dict(action="store_const", const=True,
                     help="no section-change or drop detection (/mer/section, /mer/drop)"),
                ("sections", "enabled"), lambda v: not v),),
))
