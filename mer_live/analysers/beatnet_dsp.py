"""BeatNet's front end in numpy: madmom's LOG_SPECT as BeatNet configures it, offline and streamed.

Why here: the live runtime imports neither madmom nor torch. BeatNet (``bench/bench_beatnet.py``)
feeds its CRNN a log-filtered spectrogram and its positive first difference, computed by madmom
at 22050 Hz: 1411-sample Hann frames (64 ms) centred on every 441st sample (20 ms, 50 frames/s;
the first frame centred on sample 0, zeros outside the signal), a 1411-point FFT (705 bins), 24
triangular bands per octave between 30 Hz and 17 kHz (madmom's LogarithmicFilterbank: log-spaced
centres mapped to the nearest FFT bin, duplicates dropped, each filter's area 1), log10(1 + x),
and the difference to the previous frame, negative parts set to 0: 136 + 136 = 272 values a frame.
``LogSpect.process`` is that over a whole clip (the parity test against madmom); ``LogSpect.push``
is the same frames streamed: a frame leaves once the 705 samples after its centre have arrived
(32 ms of look-ahead, as in BeatNet's own online mode).
"""

from __future__ import annotations

import numpy as np

SR = 22050
HOP = 441  #: int(20 ms x 22050)
FRAME = 1411  #: int(64 ms x 22050)
N_BINS = FRAME >> 1  #: madmom keeps fft_size >> 1 bins (no Nyquist)


def log_filterbank(n_bins: int = N_BINS, sr: int = SR, bands_per_octave: int = 24, fmin: float = 30.0,
                   fmax: float = 17000.0, fref: float = 440.0) -> np.ndarray:
    """madmom's ``LogarithmicFilterbank(norm_filters=True, unique_filters=True)``: [n_bins, bands]."""
    bin_f = np.arange(n_bins) * (sr / (n_bins * 2.0))
    left = np.floor(np.log2(fmin / fref) * bands_per_octave)
    right = np.ceil(np.log2(fmax / fref) * bands_per_octave)
    f = fref * 2.0 ** (np.arange(left, right) / float(bands_per_octave))
    f = f[np.searchsorted(f, fmin):]
    f = f[:np.searchsorted(f, fmax, "right")]
    idx = np.clip(bin_f.searchsorted(f), 1, n_bins - 1)
    idx -= f - bin_f[idx - 1] < bin_f[idx] - f
    bins = np.unique(idx)
    cols = []
    for k in range(len(bins) - 2):
        start, center, stop = (int(b) for b in bins[k:k + 3])
        if stop - start < 2:
            center, stop = start, start + 1
        c, s = center - start, stop - start
        data = np.zeros(s)
        data[:c] = np.linspace(0, 1, c, endpoint=False)
        data[c:] = np.linspace(1, 0, s - c, endpoint=False)
        data /= np.sum(data)
        col = np.zeros(n_bins)
        hi = min(stop, n_bins)
        col[start:hi] = np.maximum(col[start:hi], data[:hi - start])
        cols.append(col)
    return np.stack(cols, axis=1)


class LogSpect:
    """The 272-value BeatNet frame: log-filtered magnitude spectrum and its positive difference."""

    def __init__(self) -> None:
        self.window = np.hanning(FRAME)
        self.fb = log_filterbank()
        self.n_bands = self.fb.shape[1]
        self.reset()

    def reset(self) -> None:
        """Start a new stream: the first frame is centred on its first sample (zeros before)."""
        self._buf = np.zeros(FRAME // 2, dtype=np.float64)  #: samples from the next frame's start
        self._prev: np.ndarray | None = None
        self.frames = 0  #: frames produced so far

    def _spec(self, frames: np.ndarray) -> np.ndarray:
        mag = np.abs(np.fft.rfft(frames * self.window, FRAME, axis=-1)[..., :N_BINS]).astype(np.float32)
        return np.log10(1.0 + mag.astype(np.float64) @ self.fb)

    def _stack(self, spec: np.ndarray, prev: np.ndarray | None) -> np.ndarray:
        before = np.concatenate([spec[:1] if prev is None else prev[None], spec[:-1]])
        diff = np.maximum(spec - before, 0.0)
        if prev is None:
            diff[0] = 0.0
        return np.hstack([spec, diff]).astype(np.float32)

    def process(self, y: np.ndarray) -> np.ndarray:
        """A whole clip (mono, 22050 Hz): [ceil(len / 441), 272], as madmom gives it."""
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        n = int(np.ceil(len(y) / HOP))
        pad = np.concatenate([np.zeros(FRAME // 2), y, np.zeros(FRAME)])
        idx = np.arange(n)[:, None] * HOP + np.arange(FRAME)[None, :]
        return self._stack(self._spec(pad[idx]), None)

    def push(self, y: np.ndarray) -> np.ndarray:
        """Stream: feed mono samples at 22050 Hz, get the frames completed by them: [k, 272]."""
        buf = np.concatenate([self._buf, np.asarray(y, dtype=np.float64).reshape(-1)])
        k = 0 if len(buf) < FRAME else (len(buf) - FRAME) // HOP + 1
        if k == 0:
            self._buf = buf
            return np.zeros((0, 2 * self.n_bands), np.float32)
        idx = np.arange(k)[:, None] * HOP + np.arange(FRAME)[None, :]
        spec = self._spec(buf[idx])
        out = self._stack(spec, self._prev)
        self._prev = spec[-1]
        self._buf = buf[k * HOP:]
        self.frames += k
        return out
