"""``mer-analyze``'s loop over many clips at its defaults (music gate + teacher): wall seconds, process
CPU seconds and the main thread's CPU seconds per clip, peak RSS; optionally beside another
checkout of the repository (the code before a change), runs interleaved, and checks that both give
the same records.

Why (issue #28): the loop decodes on threads while the main thread runs the models; where the work
sits decides what more cores can do. The main thread's CPU per clip is the part that cannot overlap
anything else, so it bounds the wall time on an idle machine even where a loaded host (the process
gets about one core) hides the overlap in the wall time.

    python -m bench.bench_analyze_loop [--clips 40] [--rounds 3] [--base DIR]

``--base DIR``: a checkout to compare, e.g. ``git archive main | tar -x -C /tmp/base`` (its own
mer_live and models are imported; the same clips, from this checkout's ../shared/data).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench.common import ROOT, fourq_clips, md_table, positive_int, record

_CHILD = r"""
import io, json, os, resource, sys, time
sys.path.insert(0, os.getcwd())
from mer_live.analyze import analyze_file, default_decoders, default_threads, load_model, load_presence, run
from mer_live.inference.fusion import Fusion
threads = default_threads(default_decoders())  # what the CLI picks
model = load_model(None, provider="cpu", threads=threads)
presence, fusion = load_presence(), Fusion.of(model, threads=threads)
paths = sys.argv[1:]
analyze_file(paths[0], model, presence=presence, fusion=fusion)  # warm-up
buf = io.StringIO()
r0, m0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.thread_time(), time.perf_counter()
failed = run(paths[1:], model, out=buf, presence=presence, fusion=fusion)
wall, main, r1 = time.perf_counter() - t0, time.thread_time() - m0, resource.getrusage(resource.RUSAGE_SELF)
assert failed == 0, buf.getvalue()
cpu = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]
n = len(paths) - 1
print(json.dumps({"wall": wall / n, "cpu": cpu / n, "main": main / n, "rss": int(hwm) / 1024,
                  "records": buf.getvalue()}))
"""


def run_tree(tree: Path, clips: list[Path]) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", _CHILD, *map(str, clips)], cwd=tree, env=env,
                         capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SystemExit(f"bench_analyze_loop: {tree}: {tail}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=positive_int, default=40)
    ap.add_argument("--rounds", type=positive_int, default=3)
    ap.add_argument("--base", type=Path, help="another checkout to run beside this one")
    args = ap.parse_args()
    clips = fourq_clips(args.clips + 1)  # the first one is the warm-up
    if len(clips) < 2:
        raise SystemExit("no 4Q clips under ../shared/data/4q/audio: nothing to run")
    trees = {"this checkout": ROOT}
    if args.base is not None:
        trees = {f"base ({args.base})": args.base.resolve(), **trees}
    runs: dict[str, list[dict]] = {k: [] for k in trees}
    for _ in range(args.rounds):
        for k, t in trees.items():
            runs[k].append(run_tree(t, clips))
    rows = []
    for k, rs in runs.items():
        med = {m: statistics.median(r[m] for r in rs) for m in ("wall", "cpu", "main")}
        rows.append([k, len(clips) - 1, args.rounds, f"{med['wall']:.4f}", f"{med['cpu']:.4f}",
                     f"{med['main']:.4f}", f"{max(r['rss'] for r in rs):.0f}"])
    notes = [f"{len(clips) - 1} 4Q MP3 clips (~30 s) after one warm-up clip; `analyze.run` at the CLI's "
             "defaults (decoding threads, onnxruntime threads, batch, music gate, teacher); medians over "
             "the rounds, the checkouts interleaved; CPU = utime + stime of the process; main thread = "
             "time.thread_time() of the thread that calls run()."]
    if args.base is not None:
        recs = {k: {r["records"] for r in rs} for k, rs in runs.items()}
        same = len(set().union(*recs.values())) == 1
        notes.append(f"records identical between the checkouts and the rounds: {same}")
    record("mer-analyze's loop: wall, CPU and main-thread CPU per clip (bench_analyze_loop)",
           md_table(["checkout", "clips", "rounds", "wall s/clip", "CPU s/clip", "main thread CPU s/clip",
                     "peak RSS MB"], rows), notes)


if __name__ == "__main__":
    main()
