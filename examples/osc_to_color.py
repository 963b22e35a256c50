#!/usr/bin/env python3
"""Turn mer-live's arousal/valence into a lighting colour, print it, and optionally forward it.

    python examples/osc_to_color.py                               # listen on 127.0.0.1:9000
    python examples/osc_to_color.py --forward 192.168.1.50:7700   # also send /light/rgb iii

The mapping (``av_to_rgb``): valence picks the hue, from blue (sad, 240 deg) through cyan and
green to yellow (happy, 60 deg); arousal raises saturation and brightness, so calm music gives
dim pastel light and energetic music gives full, saturated colour. Output channels are 0..255,
like three DMX channels of an RGB fixture. Needs only python-osc.
"""

from __future__ import annotations

import argparse
import colorsys
import math
import sys

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer
from pythonosc.udp_client import SimpleUDPClient


def av_to_rgb(arousal: float, valence: float) -> tuple[int, int, int]:
    """Arousal and valence in [0, 1] (0.5 neutral) -> RGB 0..255."""
    a = min(max(arousal, 0.0), 1.0) if math.isfinite(arousal) else 0.5
    v = min(max(valence, 0.0), 1.0) if math.isfinite(valence) else 0.5
    hue_deg = 240.0 - 180.0 * v  # 240 blue (sad) -> 60 yellow (happy)
    sat = 0.35 + 0.65 * a
    val = 0.25 + 0.75 * a
    r, g, b = colorsys.hsv_to_rgb(hue_deg / 360.0, sat, val)
    return round(r * 255), round(g * 255), round(b * 255)


def parse_target(spec: str) -> tuple[str, int]:
    host, _, port = spec.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected host:port, got {spec!r}")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=9000, help="UDP port to listen on (default 9000)")
    ap.add_argument("--prefix", default="/mer", help="address prefix mer-live uses (default /mer)")
    ap.add_argument("--range", choices=("01", "pm1"), default="01", help="value range mer-live sends")
    ap.add_argument("--forward", type=parse_target, metavar="HOST:PORT",
                    help="send each colour on as OSC to this target")
    ap.add_argument("--address", default="/light/rgb", help="OSC address for --forward (default /light/rgb)")
    args = ap.parse_args(argv)
    client = SimpleUDPClient(*args.forward) if args.forward else None
    pm1 = args.range == "pm1"

    def on_av(address: str, *vals: object) -> None:
        if len(vals) != 2 or not all(isinstance(x, float) for x in vals):
            print(f"warning: {address} expects two floats, got {list(vals)}", flush=True)
            return
        a, v = (float(x) for x in vals)  # type: ignore[arg-type]
        if pm1:  # back from [-1, 1] to [0, 1]
            a, v = (a + 1.0) / 2.0, (v + 1.0) / 2.0
        r, g, b = av_to_rgb(a, v)
        print(f"A {a:.3f} V {v:.3f} -> RGB {r:3d} {g:3d} {b:3d}  #{r:02x}{g:02x}{b:02x}", flush=True)
        if client is not None:
            try:
                client.send_message(args.address, [r, g, b])
            except OSError as e:  # the light desk is down: keep listening
                print(f"warning: forward to {args.forward[0]}:{args.forward[1]} failed: {e}", flush=True)

    disp = Dispatcher()
    disp.map(args.prefix.rstrip("/") + "/av", on_av)
    try:
        server = BlockingOSCUDPServer((args.host, args.port), disp)
    except OSError as e:
        print(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}", file=sys.stderr)
        return 1
    where = f", forwarding {args.address} iii to {args.forward[0]}:{args.forward[1]}" if client else ""
    print(f"listening on {args.host}:{args.port} for {args.prefix}/av{where} (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
