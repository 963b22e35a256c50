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
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from mer_live.common.logs import Throttled, one_line
from mer_live.live.records import Estimate, Event

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


class ThreadedSink:
    """A sink whose work runs on a thread of its own: the pipeline thread only stores and wakes.

    Why: an output's I/O (a UDP socket, a MIDI port, a Link session) may block or fail, and the
    pipeline thread must never wait for it. ``__call__`` keeps the newest estimate, ``event``
    queues the events of ``event_kinds`` (None: all); the subclass's ``_run`` loop reads them,
    waiting on ``_wake`` and leaving when ``_stop`` is set. ``_start_thread`` and ``_stop_thread``
    are the two ends of that thread's life.
    """

    event_kinds: tuple[str, ...] | None = None

    def __init__(self, max_events: int = 512) -> None:
        self._latest: Estimate | None = None
        self._events: deque[Event] = deque(maxlen=max_events)
        self._wake = threading.Event()  #: set by a new estimate, an event or stop
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, estimate: Estimate) -> None:
        self._latest = estimate
        self._wake.set()

    def event(self, ev: Event) -> None:
        if self.event_kinds is None or ev.kind in self.event_kinds:
            self._events.append(ev)
            self._wake.set()

    def _run(self) -> None:  # pragma: no cover - every subclass has its own
        raise NotImplementedError

    def _start_thread(self, name: str) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _stop_thread(self, timeout: float) -> threading.Thread | None:
        """Ask the thread to leave and wait up to ``timeout``; the thread (check ``is_alive``)."""
        self._stop.set()
        self._wake.set()
        th, self._thread = self._thread, None
        if th is not None:
            th.join(timeout)
        return th
