#!/usr/bin/env python3
"""Print what mer-live sends over OSC: one line per send tick, with every message checked.

    python examples/osc_listener.py                 # listens on 127.0.0.1:9000
    python examples/osc_listener.py --port 9001 --range pm1

Needs only python-osc. Binds 127.0.0.1 unless ``--host`` says otherwise (``--host 0.0.0.0`` to
hear mer-live running on another machine). A message with an unknown address, wrong types or an
out-of-range value is printed as a one-line ``warning:`` and listening goes on; the same problem
on the same address is said once per ``--warn-interval`` seconds (10) with a count of the ones in
between, so a wrong ``--range`` (30 messages a second) gives one line, not thousands.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer

QUADRANTS = {0: "no music", 1: "happy/excited", 2: "tense/angry", 3: "sad/depressed", 4: "calm/relaxed"}

# address suffix -> (type of each argument, allowed range or None)
SCHEME: dict[str, tuple[tuple[type, ...], tuple[float, float] | None]] = {
    "/arousal": ((float,), None),  # range depends on --range
    "/valence": ((float,), None),
    "/av": ((float, float), None),
    "/arousal_raw": ((float,), None),
    "/valence_raw": ((float,), None),
    "/quadrant": ((int,), (0, 4)),  # 0: no music
    "/music": ((int,), (0, 1)),
    "/level": ((float,), (-120.0, 20.0)),
    "/level01": ((float,), (0.0, 1.0)),
    "/silent": ((int,), (0, 1)),
    "/clip": ((int,), (0, 1)),
    "/bpm": ((float,), (0.0, 1000.0)),
    "/beat_phase": ((float,), (0.0, 1.0)),
    "/input": ((int,), (0, 1)),
    "/heartbeat": ((int,), (0, 2**31 - 1)),
    "/beat": ((int,), (0, 2**31 - 1)),
    "/onset": ((int,), (0, 2**31 - 1)),
    "/section": ((int,), (0, 2**31 - 1)),
    "/drop": ((int,), (0, 2**31 - 1)),
}
AV_KEYS = {"/arousal", "/valence", "/av", "/arousal_raw", "/valence_raw"}


def check(suffix: str, args: tuple[Any, ...], av_range: tuple[float, float]) -> str | None:
    """Why a message breaks the scheme (docs/architecture.md), or None when it is fine."""
    if suffix not in SCHEME:
        return "unknown address"
    types, rng = SCHEME[suffix]
    if len(args) != len(types) or not all(type(a) is t for a, t in zip(args, types, strict=False)):
        want = "".join("f" if t is float else "i" for t in types)
        return f"expected arguments '{want}', got {args!r}"
    rng = av_range if suffix in AV_KEYS else rng
    for a in args:
        if isinstance(a, float) and not math.isfinite(a):
            return f"non-finite value {a!r}"
        if rng is not None and not rng[0] - 1e-6 <= a <= rng[1] + 1e-6:
            return f"value {a!r} outside {rng[0]}..{rng[1]}"
    return None


class Printer:
    """Collects one tick's messages and prints them when the tick's last message (/input) arrives."""

    def __init__(self, prefix: str, av_range: tuple[float, float], warn_interval: float = 10.0) -> None:
        self.prefix = prefix
        self.av_range = av_range
        self.warn_interval = warn_interval
        self.now: dict[str, tuple[Any, ...]] = {}
        self.heartbeat: int | None = None
        #: (address, kind of problem) -> [when last said, how many not said since]
        self._warned: dict[tuple[str, str], list[float]] = {}

    def warn(self, address: str, args: tuple[Any, ...], problem: str) -> None:
        """Say a problem at most once per ``warn_interval`` for its address and kind."""
        kind = problem.split(" ", 1)[0]  # "value", "expected", "non-finite", "unknown", "outside"
        now = time.monotonic()
        seen = self._warned.get((address, kind))
        if seen is not None and now - seen[0] < self.warn_interval:
            seen[1] += 1
            return
        more = f" ({int(seen[1])} more like it in the last {now - seen[0]:.0f} s)" if seen and seen[1] else ""
        self._warned[(address, kind)] = [now, 0]
        print(f"warning: {address} {list(args)}: {problem}{more}", flush=True)

    def handle(self, address: str, *args: Any) -> None:
        suffix = address[len(self.prefix):] if address.startswith(self.prefix + "/") else address
        problem = check(suffix, args, self.av_range) if suffix != address else "outside the prefix"
        if problem:
            self.warn(address, args, problem)
            return
        if suffix == "/heartbeat":
            self.heartbeat = args[0]
            if "/input" not in self.now:  # no estimates yet: show that mer-live is alive
                print(f"heartbeat {args[0]} (no estimate yet)", flush=True)
            return
        self.now[suffix] = args
        if suffix == "/input":
            print(self.line(), flush=True)

    def line(self) -> str:
        g = self.now
        a, v = g.get("/av", (math.nan, math.nan))
        q = g.get("/quadrant", (0,))[0]
        parts = [
            f"A {a:+.3f}  V {v:+.3f}",
            f"raw {g.get('/arousal_raw', (math.nan,))[0]:+.3f} {g.get('/valence_raw', (math.nan,))[0]:+.3f}",
            f"Q{q} {QUADRANTS.get(q, '?'):<13}",
            f"level {g.get('/level', (math.nan,))[0]:6.1f} dBFS",
            f"music {g.get('/music', ('?',))[0]} input {g['/input'][0]} silent {g.get('/silent', ('?',))[0]} "
            f"clip {g.get('/clip', ('?',))[0]}",
            f"hb {self.heartbeat if self.heartbeat is not None else '-'}",
        ]
        return "  ".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=9000, help="UDP port (default 9000)")
    ap.add_argument("--prefix", default="/mer", help="address prefix mer-live uses (default /mer)")
    ap.add_argument("--range", choices=("01", "pm1"), default="01", help="value range mer-live sends")
    ap.add_argument("--warn-interval", type=float, default=10.0, metavar="S",
                    help="say the same problem on one address at most once per S seconds (default 10)")
    args = ap.parse_args(argv)
    if not 1 <= args.port <= 65535:
        ap.error("--port must be in 1..65535")
    if not args.warn_interval >= 0:
        ap.error("--warn-interval must be >= 0")
    printer = Printer(args.prefix.rstrip("/"), (0.0, 1.0) if args.range == "01" else (-1.0, 1.0),
                      args.warn_interval)
    disp = Dispatcher()
    disp.set_default_handler(printer.handle)
    try:
        server = BlockingOSCUDPServer((args.host, args.port), disp)
    except OSError as e:
        print(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}", file=sys.stderr)
        return 1
    print(f"listening on {args.host}:{args.port} for {args.prefix}/... (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
