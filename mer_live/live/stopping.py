"""Stopping within a deadline, whatever a part's library raises or blocks on.

Why: a part (an output, the pipeline, the terminal printer) stops through its library, and a
library can raise anything (a ``KeyError`` from a wrong universe, a ``ValueError``) or block (a hung
socket, an audio server that went away). If the library's own thread is not a daemon thread, the
interpreter then waits for it forever after ``main`` returned: a ``mer-live`` that does not quit on
SIGTERM between songs, and keeps its socket and audio device.

So every part stops the same way, and a new output gets it by being in ``LiveApp(outputs=...)``:

- ``started_threads(part.start)`` notes the Python threads a part started (its library's too);
- ``stop_parts`` runs each part's ``stop()`` in its own daemon thread, all at once, and waits at
  most a deadline in all; an exception is a one-line warning naming the part; a stop that did not
  return, or a non-daemon thread of the part still alive at the deadline, is *abandoned*;
- ``exit_anyway(rc)``, armed when something was abandoned, exits the process with ``rc``
  (``os._exit``) at interpreter shutdown, before the interpreter would wait for those threads
  or run exit handlers that may hang on what was abandoned (PortAudio's terminate).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mer_live.common.logs import one_line

log = logging.getLogger(__name__)


@dataclass
class Part:
    """Something to stop: its name for the user, its ``stop``, and the threads it started."""

    name: str
    stop: Callable[[], Any]
    threads: tuple[threading.Thread, ...] = ()


def part_name(obj: Any) -> str:
    """How a warning names ``obj``: its ``part_name`` (e.g. "lighting (sacn to 10.0.0.7)") or its type."""
    return str(getattr(obj, "part_name", "") or type(obj).__name__)


def started_threads(start: Callable[[], Any]) -> tuple[threading.Thread, ...]:
    """Call ``start()`` and return the Python threads that appeared meanwhile (a library's own too)."""
    before = set(threading.enumerate())
    start()
    return tuple(t for t in threading.enumerate() if t not in before)


def describe(e: BaseException) -> str:
    """``KeyError: 5``: the type says what went wrong where the message alone is a bare value."""
    return f"{type(e).__name__}: {one_line(e)}"


def stop_parts(parts: Sequence[Part], deadline_s: float) -> list[str]:
    """Stop all ``parts`` at once, each in a daemon thread, waiting at most ``deadline_s`` in all.

    Returns what was abandoned, one short phrase each ("lighting (sacn to 127.0.0.1): its stop
    did not return"). A stop that raised is warned about here (naming the part) and counts as
    stopped unless a non-daemon thread of the part is still alive at the deadline.
    """
    end = time.monotonic() + deadline_s
    runs: list[tuple[Part, threading.Thread, list[BaseException]]] = []
    for p in parts:
        err: list[BaseException] = []

        def run(p: Part = p, err: list[BaseException] = err) -> None:
            try:
                p.stop()
            except BaseException as e:  # noqa: BLE001 - whatever a library raises, the others still stop
                err.append(e)

        t = threading.Thread(target=run, name=f"mer-stop {p.name}", daemon=True)
        t.start()
        runs.append((p, t, err))
    abandoned: list[str] = []
    for p, t, err in runs:
        t.join(max(0.0, end - time.monotonic()))
        returned = not t.is_alive()
        if returned and err:
            log.warning("stopping %s failed: %s", p.name, describe(err[0]))
        left = [th for th in p.threads if not th.daemon and th is not threading.current_thread()]
        for th in left:
            th.join(max(0.0, end - time.monotonic()))
        stuck = [th.name for th in left if th.is_alive()]
        why = [] if returned else ["its stop did not return"]
        if stuck:
            why.append(f"its thread {', '.join(map(repr, stuck))} still runs")
        if why:
            abandoned.append(f"{p.name}: {' and '.join(why)}")
    return abandoned


def stray_threads(abandoned: Sequence[str], wait_s: float = 0.1) -> list[str]:
    """Non-daemon threads no part owned that are still alive after ``wait_s`` (the interpreter
    would wait for them), as phrases for ``abandon_line``; those ``abandoned`` names already, left out."""
    said = " ".join(abandoned)
    me, main = threading.current_thread(), threading.main_thread()
    left = [t for t in threading.enumerate()
            if not t.daemon and t not in (me, main) and repr(t.name) not in said]
    end = time.monotonic() + wait_s
    for t in left:
        t.join(max(0.0, end - time.monotonic()))
    return [f"thread {t.name!r} still runs" for t in left if t.is_alive()]


def abandon_line(abandoned: Iterable[str], deadline_s: float) -> str:
    """The one warning line that says what did not stop (README, "When things go wrong")."""
    return (f"abandoned what did not stop within {deadline_s:g} s ({'; '.join(abandoned)}); "
            "exiting anyway")


class _ExitGuard:
    """At interpreter shutdown, ``os._exit(rc)`` instead of waiting for what was abandoned."""

    def __init__(self) -> None:
        self.rc: int | None = None
        self.registered = False
        self.lock = threading.Lock()

    def arm(self, rc: int) -> None:
        with self.lock:
            self.rc = rc
            if self.registered:
                return
            register = getattr(threading, "_register_atexit", None)  # CPython >= 3.9: runs before
            if register is None:  # the interpreter joins non-daemon threads
                return
            try:
                register(self._at_shutdown)
                self.registered = True
            except RuntimeError:  # already shutting down
                pass

    def _at_shutdown(self) -> None:
        rc = self.rc
        if rc is None:
            return
        for f in (sys.stdout, sys.stderr):
            try:
                f.flush()
            except Exception:  # noqa: BLE001 - a closed stream must not stop the exit
                pass
        for h in logging.getLogger().handlers:
            try:
                h.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(rc)


_guard = _ExitGuard()


def exit_anyway(rc: int) -> None:
    """Arm the exit at interpreter shutdown with ``rc``: what was abandoned is not waited for."""
    _guard.arm(rc)


def disarm() -> None:
    """Undo ``exit_anyway`` (the shutdown then waits for threads as usual)."""
    _guard.rc = None
