"""Noise suppression for a room microphone: take the crowd and the venue's hum off the music.

Issue #19's measurements (docs/room.md) show that of everything a room does to the music, the
noise bed (crowd babble, HVAC, hum at 5-20 dB below the music) costs the model most: it reads
noise as tension, so the valence of everything falls. This module estimates the noise's power
spectrum by minimum statistics (Martin 2001: the minimum of the smoothed power of each frequency
bin over the last seconds, which music, with its notes coming and going, rises above and a
steady noise bed does not) and applies a Wiener gain with a decision-directed a-priori SNR
(Ephraim & Malah 1984), floored so that no bin is cut by more than ``floor_db``.

``NoiseSuppressor.process(chunk)`` is streaming and chunk-independent (a fixed STFT grid: 512-point
frames every 256 samples at 16 kHz, square-root Hann windows that overlap-add to one), delaying
the signal by ``delay`` samples (one frame); ``suppress_offline(x, sr)`` is the same over a whole
array, delay-compensated. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DenoiseConfig:
    """Settings; ``validate()`` at the edge."""

    frame: int = 512  #: STFT frame (power of two); hop is half of it
    smooth: float = 0.85  #: recursive smoothing of each bin's power (per hop)
    window_s: float = 3.0  #: minimum-statistics search window, seconds
    sub_windows: int = 6  #: the search window is tracked as this many sub-window minima
    bias: float = 2.5  #: minimum -> mean noise power (the minimum of a fluctuating power is low)
    over: float = 1.0  #: over-subtraction factor on the noise estimate
    dd: float = 0.96  #: decision-directed weight of the previous frame's clean estimate
    floor_db: float = -12.0  #: the smallest gain, dB

    def validate(self) -> DenoiseConfig:
        if self.frame < 64 or self.frame & (self.frame - 1):
            raise ValueError(f"denoise: frame must be a power of two >= 64, got {self.frame}")
        if not 0 <= self.smooth < 1 or not 0 <= self.dd < 1:
            raise ValueError("denoise: smooth and dd must be in [0, 1)")
        if not 0.2 <= self.window_s <= 30 or not 2 <= self.sub_windows <= 32:
            raise ValueError("denoise: window_s must be in [0.2, 30] and sub_windows in 2..32")
        if not 1 <= self.bias <= 10 or not 0.1 <= self.over <= 5:
            raise ValueError("denoise: bias must be in [1, 10] and over in [0.1, 5]")
        if not -60 <= self.floor_db <= 0:
            raise ValueError("denoise: floor_db must be in [-60, 0]")
        return self


class NoiseSuppressor:
    """Streaming minimum-statistics Wiener suppressor (see the module docstring)."""

    def __init__(self, sr: int, cfg: DenoiseConfig | None = None) -> None:
        self.cfg = (cfg or DenoiseConfig()).validate()
        self.sr = int(sr)
        n = self.cfg.frame
        self.hop = n // 2
        self.win = np.sqrt(np.hanning(n + 1)[:-1])  # periodic: sqrt-Hann pairs sum to one at 50 %
        bins = n // 2 + 1
        frames = max(2, int(round(self.cfg.window_s * self.sr / self.hop)))
        self.sub_len = max(1, frames // self.cfg.sub_windows)
        self.floor = 10 ** (self.cfg.floor_db / 20)
        self._in = np.zeros(n)  # the last frame's input samples
        self._out_tail = np.zeros(self.hop)  # overlap-add carry
        self._pending = np.zeros(0)  # input since the last hop boundary
        self._smoothed = np.zeros(bins)
        self._sub_min = np.full(bins, np.inf)
        self._mins: list[np.ndarray] = []  # minima of completed sub-windows (at most sub_windows)
        self._in_sub = 0
        self._prev_clean = np.zeros(bins)
        self.noise = np.zeros(bins)  #: the current noise power estimate per bin
        self.frames = 0

    @property
    def delay(self) -> int:
        """Output lags input by this many samples."""
        return self.cfg.frame - self.hop

    def _frame(self, frame: np.ndarray) -> np.ndarray:
        c = self.cfg
        spec = np.fft.rfft(frame * self.win)
        p = spec.real**2 + spec.imag**2
        if self.frames == 0:
            self._smoothed = p.copy()
        else:
            self._smoothed = c.smooth * self._smoothed + (1 - c.smooth) * p
        self._sub_min = np.minimum(self._sub_min, self._smoothed)
        self._in_sub += 1
        if self._in_sub >= self.sub_len:
            self._mins.append(self._sub_min)
            if len(self._mins) > c.sub_windows:
                self._mins.pop(0)
            self._sub_min = np.full_like(self._smoothed, np.inf)
            self._in_sub = 0
        m = np.minimum.reduce([*self._mins, self._sub_min]) if self._mins else self._sub_min
        self.noise = c.bias * m
        self.frames += 1
        nz = np.maximum(c.over * self.noise, 1e-20)
        post = p / nz
        prio = c.dd * self._prev_clean / nz + (1 - c.dd) * np.maximum(post - 1, 0)
        g = np.maximum(prio / (1 + prio), self.floor)
        self._prev_clean = (g**2) * p
        return np.fft.irfft(spec * g, c.frame) * self.win

    def process(self, x: np.ndarray) -> np.ndarray:
        """Suppress noise in the next chunk (any size). Returns the output samples completed so far
        (whole hops: up to ``hop - 1`` samples wait for the next chunk); output sample k is input
        sample k - ``delay``."""
        x = np.asarray(x, np.float64).reshape(-1)
        out = []
        pos = 0
        while pos < len(x):
            take = min(self.hop - len(self._pending), len(x) - pos)
            self._pending = np.concatenate([self._pending, x[pos : pos + take]])
            pos += take
            if len(self._pending) == self.hop:
                self._in = np.concatenate([self._in[self.hop :], self._pending])
                self._pending = np.zeros(0)
                y = self._frame(self._in)
                out.append(self._out_tail + y[: self.hop])
                self._out_tail = y[self.hop :]
        y = np.concatenate(out) if out else np.zeros(0)
        return y.astype(np.float32)


def suppress_offline(x: np.ndarray, sr: int, cfg: DenoiseConfig | None = None) -> np.ndarray:
    """``x`` through a fresh ``NoiseSuppressor``, flushed and delay-compensated: same length,
    aligned with the input."""
    ns = NoiseSuppressor(sr, cfg)
    xx = np.asarray(x, np.float64).reshape(-1)
    pad = ns.delay + ns.hop
    y = ns.process(np.concatenate([xx, np.zeros(pad)]))
    y = y[ns.delay : ns.delay + len(xx)]
    if len(y) < len(xx):
        y = np.concatenate([y, np.zeros(len(xx) - len(y), np.float32)])
    return y.astype(np.float32)
