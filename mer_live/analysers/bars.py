"""Bars: which beat of the bar each beat is, and a bar counter, for effects that change on beat 1.

Why counted, not estimated: the beat tracker (aubio) gives beats but no downbeats, and a cheap
downbeat guess from where the low-frequency onsets fall is wrong often enough on real music that a
lighting cue on "beat 1" would land on beat 3 half the time. So bars are **counted**: the first
beat of a song is beat 1, and every ``beats_per_bar`` beats later a new bar starts. A song starts
after a gap in the beats (``restart_s`` without one), after the music gate has said "no music",
or when the source changes. When the count is off (the song started on an upbeat), an operator
resets it: an OSC message to a localhost-only UDP port (``[bars] reset_port``, off by default)
makes the beat nearest to it beat 1.

``Bars`` sits in the analyser list right after the ``BeatTracker`` and reads its ``state()``:
each new beat gives a ``beat_in_bar`` event (count = the beat's place in its bar, 1..N) and, on
beat 1, a ``bar`` event (count = the bar's number in the song, from 1). It is also a sink: while
the estimate's ``music`` is false no beat is counted (the pipeline sends none then either), so
the first beat that goes out in a song is beat 1. ``start``/``stop`` run the reset listener.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from mer_live.common.validate import check, config_from_dict
from mer_live.live.records import Estimate, Event, beats_go_out
from mer_live.registry import AnalyserSpec, register_analyser

log = logging.getLogger(__name__)

#: OSC addresses the reset port accepts (with or without the OSC prefix in front)
RESET_ADDRESSES = ("/bar/reset", "/reset_bar", "/downbeat")


@dataclass(frozen=True)
class BarsConfig:
    """``[bars]``: beats per bar, when a new song starts counting from 1, the reset port."""

    enabled: bool = True
    beats_per_bar: int = 4  #: N of /mer/beat_in_bar 1..N
    restart_s: float = 2.0  #: no beat for this long: the next beat is beat 1 of bar 1 (a new song)
    #: UDP port on 127.0.0.1 for OSC ``/mer/bar/reset`` (the beat nearest it becomes beat 1);
    #: 0: off. Bound to the loopback only: nothing on the network can move the count.
    reset_port: int = 0

    def __post_init__(self) -> None:
        s = "bars"
        check(1 <= self.beats_per_bar <= 32, s, "beats_per_bar", "an integer in 1..32", self.beats_per_bar)
        check(0.3 <= self.restart_s <= 60.0, s, "restart_s", "seconds in 0.3..60", self.restart_s)
        check(self.reset_port == 0 or 1024 <= self.reset_port <= 65535, s, "reset_port",
              "0 (off) or a port in 1024..65535", self.reset_port)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> BarsConfig:
        return config_from_dict(cls, data, "bars")


class BarCounter:
    """Pure logic: beat times in, (bar, beat_in_bar) out; restarts after gaps, on reset requests."""

    def __init__(self, beats_per_bar: int = 4, restart_s: float = 2.0) -> None:
        self.n = beats_per_bar
        self.restart_s = restart_s
        self.bar = 0
        self.pos = 0  #: place of the last beat in its bar (0: no beat yet in this song)
        self.last_t = -math.inf
        self._restart = True

    def restart(self) -> None:
        """The next beat is beat 1 of bar 1 (a new song)."""
        self._restart = True

    def relabel_last_as_one(self) -> None:
        """The last beat was beat 1 (a late reset): the next beat is beat 2 of the same bar."""
        if self.pos:
            self.pos = 1

    def beat(self, t: float) -> tuple[int, int]:
        """Count a beat at stream time ``t``; returns (bar in the song from 1, beat in bar 1..N)."""
        if self._restart or t - self.last_t > self.restart_s:
            self.bar, self.pos, self._restart = 0, 0, False
        self.last_t = t
        self.pos = self.pos % self.n + 1
        if self.pos == 1:
            self.bar += 1
        return self.bar, self.pos


class Bars:
    """Analyser after the beat tracker (``reset``/``process``), sink (``__call__``), ``start``/``stop``."""

    def __init__(self, tracker: Any, config: BarsConfig | None = None) -> None:
        self.tracker = tracker
        self.config = config or BarsConfig()
        self.counter = BarCounter(self.config.beats_per_bar, self.config.restart_s)
        self._seen = 0  #: the tracker's beat count already turned into positions
        self._reset_wall: float | None = None  #: set by the listener thread, taken by process()
        self._music = False
        self._silent = False
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.resets = 0

    # -- analyser (pipeline thread) -----------------------------------------------------------
    @property
    def rhythm(self) -> bool:
        """The beat tracker's rhythm gate: bars go out wherever its beats do (the pipeline reads it)."""
        return bool(self.tracker.state().rhythm)

    def reset(self, samplerate: int) -> None:
        """A new source: counting starts again (the tracker is reset before us, its count is 0)."""
        self._seen = 0
        self.counter.restart()

    def process(self, mono: np.ndarray, t_end: float, wall: float) -> list[Event]:
        st = self.tracker.state()
        out: list[Event] = []
        req, self._reset_wall = self._reset_wall, None
        new = st.beats - self._seen
        if new < 0:  # the tracker was reset under us
            self._seen, new = 0, st.beats
        if not beats_go_out(self._music, st.rhythm, self._silent):  # the pipeline sends no beats now
            self.counter.restart()
            self._seen = st.beats
            return out
        if req is not None and new == 0:
            period = 60.0 / st.bpm if st.bpm > 0 else 0.5
            if math.isfinite(st.last_beat_wall) and 0 <= req - st.last_beat_wall <= period / 2:
                self.counter.relabel_last_as_one()  # the reset came just after a beat: that was 1
            else:
                self.counter.restart()
        elif req is not None:
            self.counter.restart()
        for k in range(new):
            # the tracker says only where its newest beat was; earlier ones in the same block are a
            # period apart (the flywheel), which is all the counter needs to see no gap
            period = 60.0 / st.bpm if st.bpm > 0 else 0.0
            t = st.last_beat_t - (new - 1 - k) * period
            bar, pos = self.counter.beat(t)
            w = st.last_beat_wall - (new - 1 - k) * period
            out.append(Event("beat_in_bar", pos, t, w, bpm=st.bpm))
            if pos == 1:
                out.append(Event("bar", bar, t, w, bpm=st.bpm))
        self._seen = st.beats
        return out

    # -- sink -----------------------------------------------------------------------------------
    def __call__(self, estimate: Estimate) -> None:
        """Keep the music and silence flags: while beats do not go out (``beats_go_out``: no music
        and no rhythm, or silence) the counting restarts, so the next beat heard is beat 1."""
        self._music = estimate.hears_music
        self._silent = bool(estimate.silent)

    # -- the reset listener ---------------------------------------------------------------------
    def request_reset(self, wall: float) -> None:
        """Make the beat nearest to ``wall`` (time.monotonic()) beat 1 (any thread)."""
        self._reset_wall = wall
        self.resets += 1

    def start(self) -> None:
        """Open the reset port (127.0.0.1 only) if configured; a taken port is a one-line OSError."""
        port = self.config.reset_port
        if not port or self._thread is not None:
            return
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as e:
            s.close()
            why = e.strerror or e
            raise OSError(f"[bars] reset_port {port}: cannot listen on 127.0.0.1: {why}") from None
        s.settimeout(0.1)
        self._sock = s
        self._stop.clear()
        self._thread = threading.Thread(target=self._listen, name="mer-bars-reset", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        import time

        from pythonosc.osc_packet import OscPacket

        sock = self._sock
        assert sock is not None
        try:
            while not self._stop.is_set():
                try:
                    data = sock.recv(4096)
                except (TimeoutError, OSError):
                    continue
                now = time.monotonic()
                try:
                    msgs = OscPacket(data).messages
                except Exception:
                    log.warning("[bars] reset port: not an OSC message (%d bytes), ignored", len(data))
                    continue
                if any(m.message.address.endswith(RESET_ADDRESSES) for m in msgs):
                    self.request_reset(now)
        finally:
            sock.close()

    def stop(self) -> None:
        """Close the reset port; returns within about 0.2 s (the socket's timeout)."""
        self._stop.set()
        th, self._thread = self._thread, None
        if th is not None:
            th.join(0.5)
        self._sock = None


# ---- registration: [bars], right after the beat tracker it reads; the events it publishes ---------

register_analyser(AnalyserSpec(
    name="bars", order=120, run_order=20, config=BarsConfig,
    build=lambda c, built: Bars(built["beat"], c) if c.enabled and "beat" in built else None,
    event_kinds=("bar", "beat_in_bar"), rhythm_kinds=("beat_in_bar", "bar"),
))
