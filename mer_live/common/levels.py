"""Level measurement and input clean-up on blocks of audio: plain functions plus one stateful filter.

Everything here is float32/float64 numpy, allocation-light and free of logging, so the pipeline
thread can call it every hop. dBFS is relative to a full-scale sine peak of 1.0 (a full-scale
square wave reads 0 dBFS RMS); digital silence reads ``SILENCE_DB`` instead of ``-inf`` so values
stay finite on the wire (OSC) and in plots.
"""

from __future__ import annotations

import math

import numpy as np

#: The level reported for digital silence (and anything quieter), in dBFS.
SILENCE_DB = -120.0
_SILENCE_AMP = 10.0 ** (SILENCE_DB / 20.0)


def to_mono(block: np.ndarray, pick: tuple[int, ...] | None = None) -> np.ndarray:
    """Mix a ``[frames, channels]`` block down to ``[frames]`` float32.

    ``pick`` holds 1-based channel numbers (as printed on an audio interface); the picked channels
    are averaged. ``None`` averages all channels. A 1-D block is already mono and returned as is
    (``pick`` must then be ``None`` or ``(1,)``). Raises ValueError (one line) for a channel the
    block does not have, so a wrong ``--channels`` is caught when the stream opens.
    """
    x = np.asarray(block)
    if x.ndim == 1:
        if pick not in (None, (1,)):
            raise ValueError(f"channel(s) {list(pick or ())} requested but the input is mono")
        return x.astype(np.float32, copy=False)
    if x.ndim != 2:
        raise ValueError(f"expected audio [frames, channels], got shape {x.shape}")
    n_ch = x.shape[1]
    if pick is None:
        if n_ch == 1:
            return x[:, 0].astype(np.float32, copy=False)
        if n_ch == 2 and x.dtype == np.float32:  # stereo, every block live: 10x the strided mean,
            return (x[:, 0] + x[:, 1]) * np.float32(0.5)  # the same bits (a + b, halved exactly)
        return x.mean(axis=1, dtype=np.float32)
    if len(pick) == 0:
        raise ValueError("empty channel selection")
    bad = [c for c in pick if not 1 <= c <= n_ch]
    if bad:
        raise ValueError(f"channel(s) {bad} requested but the input has {n_ch} channel(s) (1..{n_ch})")
    idx = [c - 1 for c in pick]
    if len(idx) == 1:
        return x[:, idx[0]].astype(np.float32, copy=False)
    return x[:, idx].mean(axis=1, dtype=np.float32)


def sanitize(x: np.ndarray) -> tuple[np.ndarray, int]:
    """Replace NaN and +/-inf with 0; return ``(clean float32 copy, number of bad samples)``.

    A broken driver or a bad file can deliver non-finite samples; one NaN would poison the
    resampler's filter state and every model window after it, so they are zeroed at the door.
    """
    a = np.array(x, dtype=np.float32, copy=True)
    bad = ~np.isfinite(a)
    n_bad = int(bad.sum())
    if n_bad:
        a[bad] = 0.0
    return a, n_bad


def rms_db(x: np.ndarray) -> float:
    """RMS level in dBFS, floored at ``SILENCE_DB`` (also for an empty block)."""
    a = np.asarray(x, dtype=np.float64)
    if a.size == 0:
        return SILENCE_DB
    rms = math.sqrt(float(np.mean(a * a)))
    if not math.isfinite(rms):
        return 0.0 if math.isinf(rms) else SILENCE_DB
    return 20.0 * math.log10(max(rms, _SILENCE_AMP))


def peak_db(x: np.ndarray) -> float:
    """Peak absolute sample in dBFS, floored at ``SILENCE_DB`` (also for an empty block)."""
    a = np.asarray(x)
    if a.size == 0:
        return SILENCE_DB
    peak = float(np.max(np.abs(a)))
    if not math.isfinite(peak):
        return 0.0 if math.isinf(peak) else SILENCE_DB
    return 20.0 * math.log10(max(peak, _SILENCE_AMP))


def is_clipping(x: np.ndarray, threshold_db: float = -0.1) -> bool:
    """True when any sample reaches ``threshold_db`` dBFS (default -0.1, i.e. |x| >= 0.9886)."""
    return peak_db(x) >= threshold_db


def db_to_gain(db: float) -> float:
    """Linear amplitude factor for a gain in dB (0 dB -> 1.0, -6.02 dB -> 0.5)."""
    return 10.0 ** (db / 20.0)


class DCBlocker:
    """One-pole high-pass ``y[n] = x[n] - x[n-1] + r * y[n-1]`` that keeps its state across blocks.

    A DC offset (cheap interfaces, phantom-power thumps) would raise the RMS the model sees and
    the silence detector with it. The cut-off (default 10 Hz, -3 dB) is far below musical
    content. Blocks are filtered in vectorised segments (closed form of the recursion), so a
    block costs a few numpy calls instead of a Python loop per sample, and the output equals
    the sample-by-sample recursion to float64 rounding. Segments are as long as float64 allows
    (``r**-seg`` <= e**300, at most 16384 samples), so a whole file (``mer-analyze``) costs tens
    of numpy calls, not thousands.
    """

    _MAX_SEG = 16384  #: longest segment (memory: two float64 tables of this length)

    def __init__(self, samplerate: int, cutoff_hz: float = 10.0) -> None:
        if samplerate <= 0:
            raise ValueError("samplerate must be > 0")
        if not 0.0 < cutoff_hz < samplerate / 2:
            raise ValueError(f"DC blocker cut-off must be in (0, {samplerate / 2}) Hz, got {cutoff_hz}")
        self.samplerate = int(samplerate)
        self.cutoff_hz = float(cutoff_hz)
        self.r = math.exp(-2.0 * math.pi * cutoff_hz / samplerate)
        # r**-seg grows like e**(seg * w): keep it far from float64 overflow (e**709)
        w = 2.0 * math.pi * cutoff_hz / samplerate
        self._seg = int(max(16, min(self._MAX_SEG, 300.0 / w)))
        k = np.arange(self._seg, dtype=np.float64)
        self._pow = self.r**k  # r^n
        self._inv_pow = self.r ** (-k)  # r^-n
        self._work = np.empty(self._seg)  # float64 scratch for one segment
        self.reset()

    def reset(self) -> None:
        """Forget the filter state (a new stream starts)."""
        self._x_prev = 0.0
        self._y_prev = 0.0

    def process(self, x: np.ndarray) -> np.ndarray:
        """Filter a mono block; returns float32 of the same length. Input must be finite."""
        a = np.asarray(x).reshape(-1)
        out = np.empty(a.shape[0], dtype=np.float32)
        r = self.r
        work = self._work
        for s in range(0, a.shape[0], self._seg):
            seg = a[s : s + self._seg]
            n = seg.shape[0]
            d = work[:n]  # reused: no allocation (nor page faults) per segment
            d[0] = float(seg[0]) - self._x_prev
            np.subtract(seg[1:], seg[:-1], out=d[1:], dtype=np.float64)
            # y[n] = r^n * (r * y[-1] + sum_{k<=n} d[k] r^-k), computed in place
            d *= self._inv_pow[:n]
            np.cumsum(d, out=d)
            d += r * self._y_prev
            d *= self._pow[:n]
            out[s : s + n] = d
            self._x_prev = float(seg[-1])
            self._y_prev = float(d[-1])
        return out
