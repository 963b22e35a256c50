"""What the tempo outputs (MIDI clock, Ableton Link) need to know of the beat: when the last beat
sounded (on the ``time.monotonic()`` clock), its place in the bar, the tempo, and whether the beat is
steady enough to drive other machines.

Why a follower of its own: a beat ``Event`` carries its stream time ``t`` and the moment it was
*detected* (``wall``), which is later than the moment it sounded by the tracker's lag (up to a
window). Outputs that schedule a clock must put the beat where it sounded. Stream time and
monotonic time run at the same rate, so their offset is one number: the smallest ``wall - t`` over
the recent events (the event detected with the least lag) estimates it, without a change to the
tracker. Pure logic, fed from one thread (the output's own); tested with synthetic events.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from mer_live.live.records import Estimate, Event


@dataclass(frozen=True)
class Beat:
    """One beat as the outputs use it."""

    wall: float  #: time.monotonic() at which it sounded (estimated)
    count: int  #: the tracker's beat counter
    bpm: float  #: the published tempo at this beat
    pos: int = 0  #: place in the bar, 1..N (0: not known yet)
    #: the tracker's own beat (Event strength 1), not a flywheel beat between them
    tracked: bool = True
    t: float = math.nan  #: stream time


class BeatFollower:
    """Beats and music state, from the pipeline's events and estimates (one thread feeds it)."""

    def __init__(self, steady_beats: int = 4, tolerance: float = 0.04) -> None:
        self.steady_beats = steady_beats
        self.tolerance = tolerance
        self._offsets: deque[float] = deque(maxlen=64)
        self.onsets: deque[float] = deque(maxlen=64)  #: stream times of recent onsets
        self.onset_s = 0.07
        self.beats: deque[Beat] = deque(maxlen=16)
        self.music = False
        self.bar = 0  #: the bar number of the last beat 1
        self.beats_per_bar = 4

    @property
    def offset(self) -> float:
        """time.monotonic() minus stream time (the least lag seen recently)."""
        return min(self._offsets) if self._offsets else 0.0

    @property
    def last(self) -> Beat | None:
        return self.beats[-1] if self.beats else None

    def estimate(self, e: Estimate) -> None:
        self.music = bool(e.music)
        if not e.music:
            self.beats.clear()

    def event(self, ev: Event) -> Beat | None:
        """Take one event; returns the new ``Beat`` for a beat (or a beat's place), else None."""
        if math.isfinite(ev.t) and math.isfinite(ev.wall):
            self._offsets.append(ev.wall - ev.t)
        if ev.kind == "beat":  # kept before a tempo is known too: their intervals count for steady()
            tracked = not (ev.strength < 0.5)  # NaN (not said) counts as tracked
            b = Beat(ev.t + self.offset, ev.count, max(0.0, ev.bpm), 0, tracked, ev.t)
            self.beats.append(b)
            return b
        if ev.kind == "beat_in_bar" and self.beats:
            b = self.beats[-1]
            b = Beat(b.wall, b.count, b.bpm, int(ev.count), b.tracked, b.t)
            self.beats[-1] = b
            self.beats_per_bar = max(self.beats_per_bar if b.pos > 1 else 1, b.pos)
            return b
        if ev.kind == "bar":
            self.bar = int(ev.count)
        if ev.kind == "onset":
            self.onsets.append(ev.t)
        return None

    def heard(self, b: Beat) -> bool:
        """The tracker's own beat with an onset within ``onset_s`` of it: a beat in the audio.

        Why the onset: aubio's tracker also beats on a sustained chord or on noise (measured: 16-19
        beats in 10 s at a steady ~113-133 BPM, with no onset near any of them), while on a groove
        every beat has one."""
        return b.tracked and any(abs(o - b.t) <= self.onset_s for o in self.onsets)

    def period(self) -> float:
        b = self.last
        return 60.0 / b.bpm if b is not None and b.bpm > 0 else 0.0

    def alive(self, now: float, hold_beats: float = 2.0) -> bool:
        """Music plays and a beat came within ``hold_beats`` periods (plus 0.1 s for the lag)."""
        b = self.last
        return self.music and b is not None and b.bpm > 0 and now - b.wall <= hold_beats * 60.0 / b.bpm + 0.1

    def steady(self, now: float) -> bool:
        """Music, a recent beat with a tempo, the last ``steady_beats`` intervals (beats before
        the tempo was known count too) within ``tolerance`` of the published tempo's period, and
        all but one of those beats heard (``heard``: not the flywheel, which is regular by
        construction, and with an onset): the beat is worth driving other machines with."""
        if not self.alive(now, 1.5) or len(self.beats) < self.steady_beats + 1:
            return False
        recent = list(self.beats)[-(self.steady_beats + 1):]
        if sum(self.heard(b) for b in recent) < self.steady_beats:  # the flywheel is regular anyway
            return False
        period = 60.0 / recent[-1].bpm
        gaps = [b.wall - a.wall for a, b in zip(recent, recent[1:], strict=False)]
        return all(abs(g / period - 1.0) <= self.tolerance * 3 for g in gaps) and \
            abs(sum(gaps) / len(gaps) / period - 1.0) <= self.tolerance
