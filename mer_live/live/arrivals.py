"""When did a window's last sample arrive? The start of the pipeline's latency clock.

A source that logs its writes (``write_log``: a deque of ``(frames_written, monotonic)``, as
``FileSource`` keeps) answers exactly. For one that does not (the capture: its callback must not
log), the pipeline's own read times stand in: a frame was written no later than the read that
found it, so the latency measured from them is a lower bound and never an invented one.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import deque
from typing import Any


class Arrivals:
    """Maps a model-rate sample index of ``source`` to the monotonic time its frame was written."""

    def __init__(self, source: Any, src_rate: int, model_rate: int) -> None:
        self.source, self.src_rate, self.model_rate = source, int(src_rate), int(model_rate)
        self._own = getattr(source, "write_log", None) is None
        self._reads: deque[tuple[int, float]] = deque(maxlen=512)

    def before_read(self) -> None:
        """Note a read about to happen (only kept when the source logs no writes of its own)."""
        if self._own:
            self._reads.append((self.source.ring.frames_written, time.monotonic()))

    def written_at(self, end: int) -> float:
        """When the source frame holding model sample ``end - 1`` reached the ring (monotonic)."""
        need = int(math.floor((end - 1) * self.src_rate / self.model_rate)) + 1  # frames written
        entries = list(self._reads) if self._own else list(self.source.write_log)
        if not entries:
            return time.monotonic()
        i = bisect.bisect_left(entries, (need, -math.inf))
        if i < len(entries):
            return entries[i][1]
        frames, wall = entries[-1]  # newer than anything logged (cannot happen): extrapolate
        return wall + (need - frames) / self.src_rate
