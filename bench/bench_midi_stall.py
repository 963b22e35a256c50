"""Does the MIDI output hold up the rest of mer-live? OSC gaps and skipped hops with MIDI on JACK.

    python -m bench.bench_midi_stall [--runs 2] [--seconds 16] [--base CHECKOUT] [--no-record]

Why: the MIDI output checks every 5 s that its port still exists. Through RtMidi's own listing
that opened a JACK client while holding the GIL, and every thread of mer-live (the pipeline, OSC,
the clock) stopped for 100-200 ms each time: hops were skipped and OSC paused (found when CI's
clock test failed, 2026-12-07). This measures what a lighting desk or a visuals program sees.

Each run: a private ``jackd -d dummy`` (as tests/jack.py), a 126-BPM groove (tests/grooves.py) as
a file, ``mer-live --input FILE --headless --midi virtual --osc`` to a UDP receiver here, the
loudness test model and no music gate (the groove plays throughout). Printed per run: the hops
the pipeline skipped (its stop line), the largest and the 99th-percentile gap between consecutive
``/mer/level`` messages (sent on every hop, 0.1 s apart when nothing stalls) and how many gaps
exceed 150 ms. ``--base``: another checkout's mer-live (``python -m mer_live`` run in it), runs
alternating with this one's.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from bench.common import ROOT, md_table, record, run_cli

SR = 44100


def one_run(checkout: Path, wav: Path, model: Path, cfg: Path, seconds: float) -> list:
    """One mer-live run against its own jackd; [hops skipped, max gap ms, p99 gap ms, gaps > 150 ms]."""
    from tests.net import Wire

    name = f"mer-bench-{os.getpid()}-{time.monotonic_ns() % 100000}"
    env = {**os.environ, "JACK_DEFAULT_SERVER": name, "JACK_NO_AUDIO_RESERVATION": "1",
           "JACK_NO_START_SERVER": "1", "PYTHONUNBUFFERED": "1"}
    jackd = subprocess.Popen(["jackd", "-n", name, "-d", "dummy", "-r", "48000", "-p", "128"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    wire = Wire()
    try:
        time.sleep(1.5)  # the server up (tests/jack.py waits for a port; a fixed pause does here)
        r = subprocess.run([sys.executable, "-m", "mer_live", "--config", str(cfg), "--input", str(wav),
                            "--headless", "--model", str(model), "--no-music-gate", "--no-sections",
                            "--midi", "virtual", "--osc", f"127.0.0.1:{wire.port}", "-v"],
                           cwd=checkout, env=env,
                           capture_output=True, text=True, timeout=seconds + 60)
        time.sleep(0.3)
    finally:
        wire.close()
        jackd.send_signal(signal.SIGTERM)
        try:
            jackd.wait(5)
        except subprocess.TimeoutExpired:
            jackd.kill()
    if r.returncode != 0:
        raise SystemExit(f"mer-live failed in {checkout}: {r.stderr[-800:]}")
    skipped = re.search(r"(\d+) skipped", r.stderr)
    t = np.array(wire.times("/mer/level"))
    gaps = np.diff(t[(t > t[0] + 1.0)]) * 1000.0  # from 1 s in: past the start-up
    return [int(skipped.group(1)) if skipped else -1, round(float(gaps.max()), 0),
            round(float(np.percentile(gaps, 99)), 0), int(np.sum(gaps > 150.0))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=16.0)
    ap.add_argument("--base", type=Path, default=None, help="another checkout to run alternately")
    ap.add_argument("--no-record", action="store_true", help="print only; docs/benchmarks.md untouched")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from tests.grooves import groove
    from tests.modelkit import make_loudness_model

    tmp = Path(tempfile.mkdtemp(prefix="mer-bench-midi-"))
    x, _beats = groove(126.0, args.seconds, SR, seed=4)
    wav = tmp / "groove.wav"
    sf.write(wav, x, SR)
    model = make_loudness_model(tmp / "loudness.onnx")
    cfg = tmp / "show.toml"
    cfg.write_text('[midi]\napi = "jack"\n')
    sides = [("this checkout", ROOT)] + ([(f"base {args.base}", args.base)] if args.base else [])
    rows = []
    for k in range(args.runs):
        for label, checkout in sides:
            row = [label, k + 1, *one_run(checkout, wav, model, cfg, args.seconds)]
            print(row, flush=True)
            rows.append(row)
    body = md_table(["mer-live", "run", "hops skipped", "largest OSC gap (ms)", "p99 gap (ms)",
                     "gaps > 150 ms"], rows)
    if args.no_record:
        print(body)
    else:
        record("bench_midi_stall: OSC gaps and skipped hops with MIDI out on JACK", body,
               notes=[f"a {args.seconds:g}-s 126-BPM groove, the loudness test model, --no-music-gate "
                      "--no-sections --midi virtual, a private jackd on its dummy driver (2.7-ms periods)"])
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
