"""Run INSIDE a private network namespace (tests/outputs/test_link.py starts it with ``unshare -n``): a Link
peer (the same binding as mer-live's) and ``mer-live --link`` on one audio file, the peer's view of
the session sampled every 10 ms, /mer/beat received over OSC. Writes one JSON file for the test.

Never run this on the machine's own interfaces: Link multicasts on every interface it sees. It
refuses to run when any interface other than ``lo`` is present.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def only_loopback() -> bool:
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def main(argv: list[str]) -> int:
    audio, out_json, peer_bpm, seconds = argv[0], argv[1], float(argv[2]), float(argv[3])
    extra = argv[4:]
    if not only_loopback():
        print("link_session: refusing to run outside a private namespace with only lo", file=sys.stderr)
        return 3
    import link

    sys.path.insert(0, str(ROOT))
    from tests.net import Wire

    peer = link.Link(peer_bpm)
    peer.enabled = True
    clock = peer.clock()
    wire = Wire()
    cmd = [sys.executable, "-m", "mer_live", "--input", audio, "--headless", "--link", "--no-sections",
           "--osc", f"127.0.0.1:{wire.port}", "--duration", str(seconds), "-vv", *extra]
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    samples = []
    try:
        while p.poll() is None:
            now = time.monotonic()
            micros = clock.micros()
            st = peer.captureAppSessionState()
            samples.append((now, micros / 1e6 - now, st.tempo(), st.beatAtTime(micros, 4.0), peer.numPeers()))
            time.sleep(0.01)
        err = p.stderr.read() if p.stderr else ""
    finally:
        if p.poll() is None:
            p.kill()
        wire.close()
        peer.enabled = False
    Path(out_json).write_text(json.dumps({
        "rc": p.returncode, "stderr": err, "samples": samples,
        "beats": [(t, a, list(args)) for t, a, args in wire.messages
                  if a in ("/mer/beat", "/mer/beat_in_bar", "/mer/bpm")],
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
