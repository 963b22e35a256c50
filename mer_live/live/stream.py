"""One source's audio on its way to the model: clean-up, resampling, history and the hop clock.

``Stream.push(block)`` takes a block as the source delivered it (``[frames, channels]`` at the
device rate) and runs the live clean-up chain in the order ``framing.prepare_offline`` uses for
whole files::

    sanitize (NaN/inf -> 0) -> pick/downmix -> gain -> DC blocker -> soxr.ResampleStream ("HQ")

It returns the cleaned device-rate mono block (what block analysers such as the beat tracker
hear, before the resampler's ~20 ms of delay) and a ``Boundary`` for every hop boundary the block
completed. The hop clock is sample-driven: boundaries fall on multiples of ``hop`` model-rate
samples counted from the source's start, so a file pushed through unpaced gives the same windows
as ``framing.frame_windows``. Boundaries start at the first hop, before a full window has
arrived (``full=False``), so levels and silence are known from the first tenth of a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soxr

from mer_live.common.framing import RESAMPLE_QUALITY, CleanUp
from mer_live.common.levels import DCBlocker, db_to_gain, is_clipping, peak_db, rms_db, sanitize, to_mono
from mer_live.common.silence import SilenceClock
from mer_live.live.ringbuffer import RingBuffer


@dataclass
class Boundary:
    """A hop boundary: the model window ending there and the newest hop's levels."""

    end: int  #: model-rate sample index (since the source started) just past the window's last sample
    window: np.ndarray  #: the ``window`` samples ending at ``end`` (zeros before the source's start)
    full: bool  #: a whole window of audio lies behind ``end`` (else the model is not run)
    rms_db: float
    peak_db: float
    silent: bool  #: the input has been below the silence threshold for ``silence_s``
    clipping: bool  #: a sample reached the clip threshold since the previous boundary
    bad: int  #: NaN/inf samples replaced since the previous boundary


class Stream:
    """Clean-up, resampling and hop clock for one source; a new source gets a new Stream."""

    def __init__(self, src_rate: int, model_rate: int, window: int, hop: int, config: CleanUp,
                 silence_db: float, silence_s: float, clip_db: float) -> None:
        self.src_rate, self.model_rate = int(src_rate), int(model_rate)
        self.window, self.hop = int(window), int(hop)
        self.clip_db = clip_db
        self._silence = SilenceClock(self.hop, self.model_rate, silence_db, silence_s)
        self.pick = config.pick
        self._resampler = (
            soxr.ResampleStream(self.src_rate, self.model_rate, 1, dtype="float32", quality=RESAMPLE_QUALITY)
            if self.src_rate != self.model_rate
            else None
        )
        self._dc = DCBlocker(self.src_rate, config.dc_cutoff_hz) if config.dc_cutoff_hz > 0 else None
        self._gain = np.float32(db_to_gain(config.gain_db))
        self._history = RingBuffer(self.window + self.hop, 1)
        self.n_out = 0  #: model-rate samples produced since the source started
        self.src_read = 0  #: source frames consumed
        self.next_b = self.hop  #: the next boundary (model-rate samples)
        self.full_seen = False  #: a boundary with a full window has been produced
        self._clip = False
        self._bad = 0

    def push(self, block: np.ndarray) -> tuple[np.ndarray, list[Boundary]]:
        """Clean up one source block; returns (device-rate mono, the boundaries it completed)."""
        self.src_read += block.shape[0]
        x, n_bad = sanitize(block)
        self._bad += n_bad
        picked = x if self.pick is None else x[:, [c - 1 for c in self.pick]]
        if is_clipping(picked * self._gain if self._gain != 1 else picked, self.clip_db):
            self._clip = True
        mono = to_mono(picked, None)
        if self._gain != 1:
            mono = mono * self._gain
        if self._dc is not None:
            mono = self._dc.process(mono)
        y = self._resampler.resample_chunk(mono, last=False) if self._resampler else mono
        return mono, self._append(np.asarray(y, dtype=np.float32))

    def flush(self) -> list[Boundary]:
        """End of a non-looping source: the resampler's tail, and for a source shorter than one
        window a single zero-left-padded window ending on its last sample (as ``frame_windows``)."""
        out: list[Boundary] = []
        if self._resampler is not None:
            y = self._resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            out = self._append(np.asarray(y, dtype=np.float32))
        if not self.full_seen and self.n_out > 0:
            out.append(self._boundary(self.n_out, full=True))
        return out

    def _append(self, y: np.ndarray) -> list[Boundary]:
        out: list[Boundary] = []
        pos = 0
        while self.n_out + (y.shape[0] - pos) >= self.next_b:
            take = self.next_b - self.n_out
            self._history.write(y[pos : pos + take])
            pos += take
            self.n_out = self.next_b
            out.append(self._boundary(self.next_b, full=self.next_b >= self.window))
            self.next_b += self.hop
        if pos < y.shape[0]:
            self._history.write(y[pos:])
            self.n_out += y.shape[0] - pos
        return out

    def _boundary(self, b: int, full: bool) -> Boundary:
        """Levels and silence at boundary ``b``; takes the accumulated clip/bad flags."""
        newest = self._history.latest(min(self.hop, b))[:, 0]
        lvl = rms_db(newest)
        silent = self._silence.update(lvl)
        p = Boundary(end=b, window=self._history.latest(self.window)[:, 0], full=full, rms_db=lvl,
                     peak_db=peak_db(newest), silent=silent, clipping=self._clip, bad=self._bad)
        self._clip = False
        self._bad = 0
        self.full_seen = self.full_seen or full
        return p
