"""What the show modules cost: CPU per second of audio for the block analysers, per-call time on
the pipeline thread, and the lighting and record sinks' own threads.

    python -m bench.bench_show_cost [--seconds 60]

Block analysers (BeatTracker, SectionDetector) are fed a synthetic groove at 48 kHz in 10 ms
blocks and at 44.1 kHz in 5 ms blocks (more calls), in this thread; CPU is ``time.thread_time``
over the run, as % of one core at real time, and per-call wall time (median, p99, max).
Sinks: LightingOutput (sACN, 30 fps, to 127.0.0.1; nothing need listen) and Recorder (CSV, 10
estimates a second) run for ``--seconds / 4`` of wall time; their cost is the process CPU over
that time minus an idle baseline of the same length.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import md_table, positive_float, proc_cpu_seconds, record, run_cli
from mer_live.analysers.beat import BeatTracker
from mer_live.analysers.sections import SectionDetector
from mer_live.live.records import Estimate
from mer_live.outputs.lighting import LightingConfig, LightingOutput
from mer_live.outputs.record import Recorder
from tests.grooves import groove


def analyser_cost(make, x: np.ndarray, sr: int, block_s: float) -> tuple[float, np.ndarray]:
    a = make()
    a.reset(sr)
    blk = int(round(block_s * sr))
    calls = []
    c0 = time.thread_time()
    for i in range(0, len(x) - blk + 1, blk):
        t = time.perf_counter()
        a.process(x[i:i + blk], (i + blk - 1) / sr, t)
        calls.append(time.perf_counter() - t)
    cpu = time.thread_time() - c0
    return 100.0 * cpu / (len(x) / sr), np.array(calls) * 1000.0


def estimate(i: int) -> Estimate:
    return Estimate(t=i * 0.1, wall=time.monotonic(), arousal_raw=0.6, valence_raw=0.4, arousal=0.6,
                    valence=0.4, level_rms_db=-20.0, level_peak_db=-6.0, silent=False, clipping=False,
                    input_ok=True, bad_samples=0, model_ms=1.0, latency_ms=2.0, overflows=0, hops_skipped=0,
                    bpm=120.0, beats=i // 5)


def sink_cost(seconds: float, start, feed, stop) -> float:
    """% of one core used by a sink's thread(s) over ``seconds`` of wall time, baseline removed."""
    c0, t0 = proc_cpu_seconds(), time.monotonic()
    k = 0
    while time.monotonic() - t0 < seconds:  # the baseline: this loop alone
        time.sleep(0.1)
        k += 1
    base = proc_cpu_seconds() - c0
    start()
    c0, t0 = proc_cpu_seconds(), time.monotonic()
    k = 0
    while time.monotonic() - t0 < seconds:
        feed(k)
        time.sleep(0.1)
        k += 1
    used = proc_cpu_seconds() - c0
    stop()
    return 100.0 * max(0.0, used - base) / seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=positive_float, default=60.0, help="seconds of audio per analyser run")
    args = ap.parse_args(argv)
    rows = []
    for sr, block_ms in ((48000, 10.0), (44100, 5.0)):
        x, _ = groove(126.0, args.seconds, sr, seed=1, fills=True)
        for name, make in (("BeatTracker", BeatTracker), ("SectionDetector", SectionDetector)):
            pct, ms = analyser_cost(make, x, sr, block_ms / 1000.0)
            rows.append([name, f"{sr} Hz, {block_ms:g} ms blocks", f"{pct:.2f} %", f"{np.median(ms):.3f}",
                         f"{np.percentile(ms, 99):.3f}", f"{ms.max():.2f}"])
    body = md_table(["analyser", "input", "CPU (% of one core)", "call median ms", "p99 ms", "max ms"], rows)
    wall = args.seconds / 4
    light = LightingOutput(LightingConfig.from_dict({
        "enabled": True, "protocol": "sacn", "host": "127.0.0.1", "universe": 7, "fps": 30,
        "fixtures": [{"name": f"f{i}", "address": 1 + 4 * i, "kind": "rgbw"} for i in range(32)]}))
    lp = sink_cost(wall, light.start, lambda k: light(estimate(k)), light.stop)
    with tempfile.TemporaryDirectory() as td:
        rec = Recorder(Path(td) / "show.csv")
        rp = sink_cost(wall, rec.start, lambda k: rec(estimate(k)), rec.stop)
    sinks = md_table(["sink", "load", "CPU (% of one core)"], [
        ["LightingOutput (sACN, 32 RGBW fixtures)", "30 fps, an estimate every 0.1 s", f"{lp:.2f} %"],
        ["Recorder (CSV, flush + fsync every 0.5 s)", "an estimate every 0.1 s", f"{rp:.2f} %"]])
    record("bench_show_cost: beat/section analysers and lighting/record sinks", body + "\n\n" + sinks,
           [f"analysers: {args.seconds:g} s of a 126-BPM synthetic groove each; sinks: {wall:g} s of wall "
            "time each, process CPU minus an idle baseline of the same length"])
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
