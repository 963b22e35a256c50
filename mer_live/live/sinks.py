"""The pipeline's fan-out: every estimate to every sink, every event to the sinks that take events.

A sink is any callable taking an ``Estimate``; one with an ``event`` method also gets the
analysers' ``Event``s (beats, sections). A sink that raises is counted and logged (throttled,
one line) and the others still get the value: a vanished OSC host or a dashboard bug must not
stop the lights. Adding or removing a sink is thread-safe (the GUI does it while the pipeline
thread publishes): the lists are replaced, never changed in place, so a publish in progress
finishes on the list it started with.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from mer_live.common.logs import Throttled, one_line
from mer_live.live.estimate import Estimate, Event

log = logging.getLogger(__name__)

Sink = Callable[[Estimate], None]


class Sinks:
    """The sinks of one pipeline; ``errors`` counts the calls that raised."""

    def __init__(self, sinks: Iterable[Sink] = ()) -> None:
        self._lock = threading.Lock()
        self._sinks: list[Sink] = []
        self._event_sinks: list[Callable[[Event], None]] = []
        self._throttle = Throttled(log)
        self.errors = 0
        for s in sinks:
            self.add(s)

    def add(self, sink: Sink) -> None:
        """Add a sink: it sees the next estimate, and events if it has ``event``."""
        with self._lock:
            self._sinks = [*self._sinks, sink]
            on_event = getattr(sink, "event", None)
            if callable(on_event):
                self._event_sinks = [*self._event_sinks, on_event]

    def remove(self, sink: Sink) -> None:
        with self._lock:
            self._sinks = [s for s in self._sinks if s is not sink]
            on_event = getattr(sink, "event", None)
            self._event_sinks = [e for e in self._event_sinks if e != on_event]

    def publish(self, e: Estimate) -> None:
        self._each(self._sinks, e)

    def event(self, ev: Event) -> None:
        self._each(self._event_sinks, ev)

    def _each(self, sinks: list[Any], value: Any) -> None:
        for sink in sinks:
            try:
                sink(value)
            except Exception as ex:
                self.errors += 1
                name = getattr(sink, "__name__", type(sink).__name__)
                self._throttle.warn(("sink", id(sink)), "sink %s failed: %s", name, one_line(ex))
