"""A preallocated single-producer, single-consumer ring buffer of audio frames.

The producer is the PortAudio callback (or the file source thread standing in for it): ``write``
only copies into memory allocated up front, takes no lock and never allocates, so it is safe on
the audio thread. The consumer (the pipeline thread) reads the frames written since its last read.
When the consumer falls behind by more than the capacity, the oldest unread frames are lost (the
buffer always keeps the newest audio) and counted in ``frames_lost``.

Positions are absolute frame counts (Python ints, assigned atomically under the GIL); the producer
publishes ``_written`` only after the copy is complete.

The consumer can sleep until a given frame count is written (``wait_for``): the write that reaches
it puts a token on a ``queue.SimpleQueue`` (C code, never blocks, holds no lock the consumer could
keep), so the consumer wakes when the audio is there instead of guessing from the wall clock.
Audio servers deliver in bursts (PulseAudio: several blocks every ~20 ms), which a wall-clock
guess misses by up to a burst.
"""

from __future__ import annotations

import queue

import numpy as np


class RingBuffer:
    """Fixed-capacity ring of ``[capacity, channels]`` float32 frames."""

    def __init__(self, capacity: int, channels: int = 1) -> None:
        if capacity < 1 or channels < 1:
            raise ValueError("capacity and channels must be >= 1")
        self.capacity = int(capacity)
        self.channels = int(channels)
        self._buf = np.zeros((self.capacity, self.channels), dtype=np.float32)
        self._written = 0  # total frames ever written (producer-owned)
        self._read = 0  # total frames consumed or skipped (consumer-owned)
        self.frames_lost = 0  # frames overwritten before the consumer read them
        self._wake_at = -1  # frames_written at which write() wakes the consumer; -1: nobody waits
        self._tokens: queue.SimpleQueue[None] = queue.SimpleQueue()

    @property
    def frames_written(self) -> int:
        return self._written

    def available(self) -> int:
        """Frames written and not yet read (capped at the capacity)."""
        return min(self._written - self._read, self.capacity)

    def write(self, block: np.ndarray) -> None:
        """Copy ``block`` (``[frames, channels]`` or ``[frames]`` when mono) into the ring.

        Real-time safe: no allocation, no lock, no logging. A block longer than the capacity
        keeps only its newest ``capacity`` frames.
        """
        n = block.shape[0]
        if n == 0:
            return
        src = block if block.ndim == 2 else block.reshape(n, 1)
        if n > self.capacity:
            src = src[n - self.capacity :]
            skipped = n - self.capacity
        else:
            skipped = 0
        m = src.shape[0]
        start = (self._written + skipped) % self.capacity
        first = min(m, self.capacity - start)
        self._buf[start : start + first] = src[:first]
        if first < m:
            self._buf[: m - first] = src[first:]
        self._written += n
        if 0 <= self._wake_at <= self._written:
            self._wake_at = -1
            self._tokens.put(None)

    def wait_for(self, frames_written: int, timeout: float) -> bool:
        """Sleep until ``frames_written`` frames have been written in all, ``wake()`` is called or
        ``timeout`` seconds pass; True when the frames are there. One consumer only. It may return
        early once after a write raced with the previous wait (a leftover token): callers loop."""
        self._wake_at = frames_written  # set before the check: a write after it sees the target
        if self._written < frames_written:
            try:
                self._tokens.get(timeout=max(0.0, timeout))
            except queue.Empty:
                pass
        self._wake_at = -1
        return self._written >= frames_written

    def wake(self) -> None:
        """End a ``wait_for`` now (stop, a source swap); from any thread."""
        self._tokens.put(None)

    def read_new(self, max_frames: int | None = None) -> np.ndarray:
        """Return a copy of the frames written since the last read, oldest first.

        If more than ``capacity`` frames arrived, the oldest are counted as lost and skipped.
        ``max_frames`` limits how many are returned; the rest stay for the next read.
        """
        written = self._written
        pending = written - self._read
        if pending > self.capacity:
            self.frames_lost += pending - self.capacity
            self._read = written - self.capacity
            pending = self.capacity
        if max_frames is not None:
            pending = min(pending, max_frames)
        out = self._copy(self._read, pending)
        # If the producer lapped us during the copy, the start of ``out`` may be newer audio than
        # its position says: count those frames as lost rather than pretend they are intact.
        overrun = self._written - self.capacity - self._read
        if overrun > 0:
            self.frames_lost += min(overrun, pending)
        self._read += pending
        return out

    def latest(self, frames: int) -> np.ndarray:
        """A copy of the newest ``frames`` frames (zeros before the first write); does not consume."""
        if frames > self.capacity:
            raise ValueError(f"asked for {frames} frames from a ring of {self.capacity}")
        written = self._written
        return self._copy(written - frames, frames)

    def _copy(self, pos: int, n: int) -> np.ndarray:
        if n <= 0:
            return np.zeros((n, self.channels), dtype=np.float32)
        lo = max(pos, self._written - self.capacity, 0)  # anything older is gone (or never was)
        skip = lo - pos
        n_valid = n - skip
        if n_valid <= 0:
            return np.zeros((n, self.channels), dtype=np.float32)
        # only the part before the first write is zeroed: the model's window (96,000 frames) is
        # copied every hop, and zeroing it first doubled the cost (issue #28)
        out = np.empty((n, self.channels), dtype=np.float32)
        out[:skip] = 0.0
        start = lo % self.capacity
        first = min(n_valid, self.capacity - start)
        out[skip : skip + first] = self._buf[start : start + first]
        if first < n_valid:
            out[skip + first :] = self._buf[: n_valid - first]
        return out

    def clear(self) -> None:
        """Forget everything (used when a stream is re-opened). Not safe while a producer runs."""
        self._buf.fill(0.0)
        self._written = 0
        self._read = 0
        self._wake_at = -1
