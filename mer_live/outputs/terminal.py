"""Live values in the terminal for ``--headless`` and ``--demo`` runs (a sink, own thread).

The pipeline calls the printer once per hop; the call only stores the estimate, so a slow
terminal (or a paused ``less``) never stalls the audio path. A thread prints a few times a
second: on a TTY it rewrites one line in place, otherwise (logs, tests, pipes) it prints one
plain line per new estimate, so nothing depends on terminal control codes.
"""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from mer_live.live.records import Estimate, mood_label

BAR_WIDTH = 10


def bar(value: float, width: int = BAR_WIDTH) -> str:
    """A fixed-width bar for a value in [0, 1] (clamped: the wire may carry tiny overshoots)."""
    v = min(max(float(value), 0.0), 1.0)
    n = int(round(v * width))
    return "#" * n + "." * (width - n)


def format_line(e: Estimate, label: str = "") -> str:
    """One compact status line: time, the input kind (``label``: "line" / "room"), arousal/valence
    bars, quadrant, level, flags."""
    flags = []
    if not e.input_ok:
        flags.append("NO-INPUT")
    if e.silent:
        flags.append("SILENT")
    if e.clipping:
        flags.append("CLIP")
    if e.bad_samples:
        flags.append(f"BAD:{e.bad_samples}")
    if e.overflows:
        flags.append(f"XRUN:{e.overflows}")
    if e.hops_skipped:
        flags.append(f"SKIP:{e.hops_skipped}")
    kind = f"{label}  " if label else ""
    return (
        f"{e.t:8.1f}s  {kind}A [{bar(e.arousal)}] {e.arousal:.2f}  V [{bar(e.valence)}] {e.valence:.2f}  "
        f"{mood_label(e):<18}  {e.level_rms_db:6.1f} dB  {tempo(e)}{' '.join(flags)}"
    ).rstrip()



def tempo(e: Estimate) -> str:
    """``"128 BPM  "`` once the beat tracker knows a tempo, else nothing."""
    return f"{e.bpm:3.0f} BPM  " if e.bpm > 0 else ""


class TerminalPrinter:
    """Sink that prints the newest estimate ``rate_hz`` times a second on its own thread."""

    part_name = "terminal"  #: how stop warnings name it (``mer_live.live.stopping``)

    def __init__(self, stream: TextIO | None = None, rate_hz: float = 4.0, tty: bool | None = None,
                 label: str = "") -> None:
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be > 0, got {rate_hz!r}")
        self.label = label  #: the input kind ("line" / "room") shown on every line
        self.stream = stream if stream is not None else sys.stdout
        self.period = 1.0 / rate_hz
        if tty is None:
            isatty = getattr(self.stream, "isatty", None)
            tty = bool(isatty()) if callable(isatty) else False
        self.tty = tty
        self._latest: Estimate | None = None
        self._printed: Estimate | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lines = 0

    def __call__(self, estimate: Estimate) -> None:
        """Called on the pipeline thread: store only (one atomic assignment)."""
        self._latest = estimate

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mer-terminal", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Print the last value (so a short run shows its final state) and end the line."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=0.5)  # a daemon thread: one stuck on a paused terminal is left
            self._thread = None
        self._print_latest()
        if self.tty and self.lines:
            self._write("\n")

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self._print_latest()

    def _print_latest(self) -> None:
        e = self._latest
        if e is None or e is self._printed:
            return
        self._printed = e
        line = format_line(e, self.label)
        self._write(f"\r{line}\x1b[K" if self.tty else line + "\n")
        self.lines += 1

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # closed pipe or stream: the show goes on without it
            self._stop.set()
