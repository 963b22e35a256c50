"""When the input counts as silent: every hop of the last ``silence_s`` below ``silence_db``.

The live stream (``SilenceClock``, hop by hop), ``mer-analyze`` and training (``silent_flags``
over a whole array) use this one rule, so a quiet passage is silent in all three alike.
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT_SILENCE_DB = -60.0  #: RMS (dBFS) below which a hop counts as quiet
DEFAULT_SILENCE_S = 0.5  #: how long quiet before the input is "silent"
_FLOOR = 1e-6  #: RMS floor (-120 dBFS) so digital silence has a finite level


def hops_needed(silence_s: float, hop: int, rate: int) -> int:
    """Quiet hops in a row that make ``silence_s`` (at least one)."""
    return max(1, math.ceil(silence_s * rate / hop - 1e-9))


class SilenceClock:
    """The live rule, one hop at a time: silent once ``hops_needed`` quiet hops in a row."""

    def __init__(self, hop: int, rate: int, silence_db: float = DEFAULT_SILENCE_DB,
                 silence_s: float = DEFAULT_SILENCE_S) -> None:
        self.silence_db = silence_db
        self.need = hops_needed(silence_s, hop, rate)
        self.quiet = 0  #: quiet hops in a row so far

    def update(self, level_db: float) -> bool:
        """Count one hop of RMS ``level_db``; whether the input is silent now."""
        self.quiet = self.quiet + 1 if level_db < self.silence_db else 0
        return self.quiet >= self.need


def silent_flags(x: np.ndarray, ends: np.ndarray, rate: int, silence_db: float = DEFAULT_SILENCE_DB,
                 silence_s: float = DEFAULT_SILENCE_S, hop_s: float = 0.1) -> np.ndarray:
    """For each window end in ``ends`` (samples of mono ``x`` at ``rate``): would the live stream,
    with hops of ``hop_s``, call the input silent there?"""
    hop = max(1, int(round(hop_s * rate)))
    k = hops_needed(silence_s, hop, rate)
    out = np.zeros(len(ends), bool)
    for i, e in enumerate(np.asarray(ends, dtype=np.int64)):
        seg = x[max(0, e - k * hop) : e].astype(np.float64)
        if seg.size < k * hop:  # not yet quiet for long enough since the start
            continue
        hops_rms = np.sqrt(np.mean(seg.reshape(k, hop) ** 2, axis=1))
        out[i] = bool(np.all(20 * np.log10(np.maximum(hops_rms, _FLOOR)) < silence_db))
    return out
