"""A fast song-change (hard cut) detector on the live audio, for the estimator (issue #25).

Why: after a hard cut the emotion model's 6-s window still holds the last song for up to 6 s, so
the values follow the new song late. If the cut is known within ~1.5 s, the model can hear only
the new song (the audio since the cut, repeated to fill its window), the teacher can forget the
old one and the smoother can jump. The section detector (4-s kernel) speaks ~4 s after a cut:
too late for that.

How: every hop, two 50-ms frames of the newest audio become log band energies (16 bands, 60 Hz
to 8 kHz, dB). A cut is a point where the spectrum's distribution changes at once and stays
changed: the frames of the last ``after_s`` are compared with those of the ``before_s`` before
them, band by band (mean difference over the pooled spread, squared, averaged over the bands:
a symmetric divergence of diagonal Gaussians), and the change must also be abrupt: the
statistic at the split must exceed the same statistic ``shift_s`` earlier and later (a
crossfade or a crescendo moves slowly, so its divergence has no sharp peak in time). A
detection needs the divergence over ``threshold``; after one, nothing fires for
``refractory_s`` (a cut changes the song, not a song every second).

Cost: two 1024-point real FFTs and a few hundred multiply-adds per hop (docs/benchmarks.md,
bench/bench_songcut.py measures it per hop).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CutConfig:
    """The detector's settings (chosen on synthesised 4Q cuts, artist-grouped folds: bench_songcut)."""

    threshold: float = 6.0  #: divergence (mean squared z over the bands) that says "another song"
    after_s: float = 0.4  #: the new song's frames compared (the detection comes this long after a cut)
    before_s: float = 6.0  #: the old song's frames compared
    shift_s: float = 0.2  #: the divergence must peak within +-shift_s (the detection waits this long too)
    frame_s: float = 0.05  #: analysis frame
    refractory_s: float = 2.0  #: no second detection this soon after one
    floor_db: float = 3.0  #: added to each band's spread (dB): a near-constant band does not count alone
    quiet_db: float = -70.0  #: frames quieter than this (dBFS RMS) in the new part: no detection

    def __post_init__(self) -> None:
        for k in ("threshold", "after_s", "before_s", "shift_s", "frame_s", "refractory_s", "floor_db"):
            if not getattr(self, k) > 0:
                raise ValueError(f"CutConfig.{k} must be > 0, got {getattr(self, k)!r}")


def band_matrix(n_fft: int, rate: int, bands: int = 16, lo: float = 60.0, hi: float = 8000.0) -> np.ndarray:
    """``[bands, n_fft // 2 + 1]``: 0/1 rows summing FFT power into log-spaced bands."""
    f = np.fft.rfftfreq(n_fft, 1.0 / rate)
    edges = np.geomspace(lo, min(hi, rate / 2), bands + 1)
    m = np.zeros((bands, len(f)), np.float32)
    for i in range(bands):
        sel = (f >= edges[i]) & (f < edges[i + 1])
        if not sel.any():  # a band narrower than a bin: its nearest bin
            d = np.abs(f - 0.5 * (edges[i] + edges[i + 1]))
            sel = d == d.min()
        m[i, sel] = 1.0
    return m


class CutDetector:
    """Feed it each hop's new samples (``update``); it says when a hard cut has just happened and
    where (``cut_at``: the stream sample where the new song began)."""

    def __init__(self, rate: int, config: CutConfig | None = None) -> None:
        self.config = c = config or CutConfig()
        self.rate = int(rate)
        self.frame = max(64, int(round(c.frame_s * rate)))
        self.n_fft = 1 << (self.frame - 1).bit_length()
        self.window = np.hanning(self.frame).astype(np.float32)
        self.bands = band_matrix(self.n_fft, rate)
        self.n_after = max(2, int(round(c.after_s / c.frame_s)))
        self.n_before = max(4, int(round(c.before_s / c.frame_s)))
        self.shift = max(1, int(round(c.shift_s / c.frame_s)))
        self.detections = 0
        self.reset()

    def reset(self) -> None:
        """A new source (or music again after a break): forget the frames heard."""
        n, nb = self.n_before + self.n_after, self.bands.shape[0]
        self._ring = np.zeros((n, nb))  # the last n frames' band levels (dB), oldest overwritten
        self._i = 0
        self._frames = 0
        # running sums (and sums of squares) of the "before" and "after" frames: O(bands) a frame
        self._sum_a, self._sq_a = np.zeros(nb), np.zeros(nb)
        self._sum_b, self._sq_b = np.zeros(nb), np.zeros(nb)
        self._loud: deque[float] = deque(maxlen=self.n_after)
        self._carry = np.zeros(0, np.float32)
        self._n = 0  # samples consumed
        self._stats: deque[float] = deque(maxlen=2 * self.shift + 1)
        self._since = np.inf  # samples since the last detection (or reset: none)
        self.cut_at: int | None = None
        self.score = 0.0
        self.last_peak = 0.0  #: the divergence at the last detection

    def update(self, x: np.ndarray) -> bool:
        """The newest samples (any length); True when a cut was detected in them."""
        x = np.asarray(x, np.float32).reshape(-1)
        if len(self._carry):
            x = np.concatenate([self._carry, x])
        k = len(x) // self.frame
        self._carry = x[k * self.frame :].copy()
        if k == 0:
            return False
        f = x[: k * self.frame].reshape(k, self.frame)  # this hop's frames, one FFT call for all
        p = np.abs(np.fft.rfft(f * self.window, self.n_fft, axis=1)) ** 2
        levels = 10.0 * np.log10(p @ self.bands.T + 1e-10).astype(np.float64)
        loud = 10.0 * np.log10(np.mean(f * f, axis=1) + 1e-12)
        hit = False
        for e, ld in zip(levels, loud.tolist(), strict=True):
            hit |= self._frame(e, ld)
        return hit

    def samples_since_cut(self) -> int | None:
        """Samples fed since the last detected cut (None: none since the reset)."""
        return None if self.cut_at is None else self._n + len(self._carry) - self.cut_at

    def _frame(self, e: np.ndarray, loud: float) -> bool:
        self._n += self.frame
        self._since += self.frame
        self._loud.append(loud)
        n, na = self.n_before + self.n_after, self.n_after
        if self._frames >= n:  # the oldest frame leaves "before"
            old = self._ring[self._i]
            self._sum_a -= old
            self._sq_a -= old * old
        if self._frames >= na:  # the frame n_after back moves from "after" to "before"
            mid = self._ring[(self._i - na) % n]
            self._sum_b -= mid
            self._sq_b -= mid * mid
            self._sum_a += mid
            self._sq_a += mid * mid
        self._sum_b += e
        self._sq_b += e * e
        self._ring[self._i] = e
        self._i = (self._i + 1) % n
        self._frames += 1
        if self._frames < n:
            return False
        # the split n_after frames back: its divergence joins the last few, and the split
        # ``shift`` frames earlier is judged a peak (or not) once the later ones are known
        self._stats.append(self._divergence())
        if len(self._stats) < self._stats.maxlen:
            return False
        s = list(self._stats)
        mid_s = s[self.shift]
        self.score = s[-1]
        c = self.config
        if (mid_s < c.threshold or mid_s < max(s) or self._since < c.refractory_s * self.rate
                or min(self._loud) < c.quiet_db):
            return False
        # the cut lies at the peak's split: n_after + shift frames back
        self.cut_at = self._n - (self.n_after + self.shift) * self.frame
        self._since = 0.0
        self.last_peak = mid_s
        self.detections += 1
        return True

    def _divergence(self) -> float:
        """Mean over bands of the squared difference of the means over the pooled variance (plus
        the floor) between the ``n_after`` newest frames and the ``n_before`` before them."""
        na, nb = self.n_before, self.n_after
        ma, mb = self._sum_a / na, self._sum_b / nb
        va = np.maximum(self._sq_a / na - ma * ma, 0.0)
        vb = np.maximum(self._sq_b / nb - mb * mb, 0.0)
        var = 0.5 * (va + vb) + self.config.floor_db ** 2
        return float(np.mean((ma - mb) ** 2 / var))
