"""Presence model time per window beside the emotion model's, in the same run: 1 onnxruntime
thread, batch 1 (what the live pipeline runs every hop) and a file batch.

Why: the presence model may run every 0.1-s hop, always, also while no music plays; it must cost
a small fraction of the emotion model (target: well under 0.3 ms a window on one thread).

    python -m bench.bench_presence [--runs 2000]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from bench.common import md_table, positive_int, record, run_cli, stats, time_calls


def main(argv: list[str] | None = None) -> int:
    from mer_live.inference.model import Model, default_model_path
    from mer_live.inference.presence import PresenceModel, default_presence_path

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=positive_int, default=2000)
    ap.add_argument("--batch", type=positive_int, default=32, help="windows per call for the file row")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    pres = PresenceModel(provider="cpu", threads=1)
    emo = Model(default_model_path(), provider="cpu", threads=1)
    rows = []
    med = {}
    both = (("mer-presence", pres, default_presence_path()), ("mer-default", emo, default_model_path()))
    for name, m, path in both:
        card = json.loads(path.with_suffix(".json").read_text())
        w = m.window_samples
        x1 = (0.1 * rng.standard_normal((1, w))).astype(np.float32)
        xb = (0.1 * rng.standard_normal((args.batch, w))).astype(np.float32)
        s1 = stats(time_calls(lambda m=m, x1=x1: m.predict(x1), args.runs, warmup=50)).scaled(1000)
        sb = stats(time_calls(lambda m=m, xb=xb: m.predict(xb), max(20, args.runs // args.batch), warmup=5)
                   ).scaled(1000 / args.batch)
        med[name] = s1.median
        flops = card.get("flops_per_window")
        rows.append([name, f"{m.sample_rate} Hz, {w / m.sample_rate:.2f} s",
                     round(flops / 1e6, 1) if flops else "n/a", s1.median, s1.p99, sb.median,
                     f"{s1.median / 100:.2%}"])
    ratio = med["mer-presence"] / med["mer-default"]
    body = md_table(["model", "window", "MFLOPs/window", "median ms (batch 1)", "p99 ms (batch 1)",
                     f"ms per window (batch {args.batch})", "share of a 0.1-s hop"], rows)
    body += f"\n\nPresence / emotion time per window (batch 1, medians): {ratio:.3f}"
    record("Presence model time per window (bench_presence)", body, [
        f"{args.runs} timed predict calls of one window per model after 50 warm-up calls; the batch row "
        f"times {max(20, args.runs // args.batch)} calls of {args.batch} windows; onnxruntime CPU, 1 thread.",
        "Both models loaded in one process and timed one after the other on the same machine state.",
    ])
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
