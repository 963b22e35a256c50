"""A subprocess whose output lines arrive on a queue, read on a thread: waits never hang."""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from collections.abc import Callable
from typing import TextIO


class LineProcess:
    """``p`` (a started Popen) and the lines of ``stream`` (its stdout or stderr) as they come."""

    def __init__(self, p: subprocess.Popen, stream: TextIO | None) -> None:
        self.p = p
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []  #: every line taken off the queue so far
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: TextIO | None) -> None:
        assert stream is not None
        for line in stream:
            self.lines.put(line.rstrip("\n"))

    def next_matching(self, pred: Callable[[str], bool], timeout: float) -> str | None:
        """The first new line for which ``pred`` holds, or None after ``timeout`` s (or once the
        process has ended and every line it wrote was read)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.05)
            except queue.Empty:
                if self.p.poll() is not None and self.lines.empty():
                    break
                continue
            self.seen.append(line)
            if pred(line):
                return line
        return None
