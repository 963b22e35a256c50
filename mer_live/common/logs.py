"""Warnings that suit a show: one line each, and at most one per interval for a repeating fault."""

from __future__ import annotations

import logging
import time
from typing import Any


def one_line(e: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__


class Throttled:
    """Log a warning at most once per ``interval`` seconds per key (a failing sink at 10 Hz
    would otherwise flood the terminal); the next warning says how many were held back."""

    def __init__(self, logger: logging.Logger, interval: float = 5.0) -> None:
        self.log = logger
        self.interval = interval
        self._last: dict[Any, float] = {}
        self.suppressed: dict[Any, int] = {}

    def warn(self, key: Any, msg: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -1e9) >= self.interval:
            n = self.suppressed.pop(key, 0)
            self.log.warning(msg + (f" (+{n} more)" if n else ""), *args)
            self._last[key] = now
        else:
            self.suppressed[key] = self.suppressed.get(key, 0) + 1
