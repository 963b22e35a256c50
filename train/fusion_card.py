"""Write the default model's two-rate fusion into its card (``models/mer-default.json``
``"fusion"``): the teacher and head files, the live and mer-analyze cadences, and the
cross-validated rows that describe exactly those cadences (clean and stage test, both CNN seeds).

The shipped default is rebuilt by (docs/teacher.md has each step):

    /tmp/mnn-venv/bin/python -m train.teacher build          # models/musicnn-msd.onnx + card
    mer-train teacher-features              # cache/teacher-msd-4q-1s.npz
    mer-train ship teacher-head --head models/musicnn-msd-head.json   # CV rows + head
    mer-train cv fusion-stage --cadence 15 6   # stage-test rows
    mer-train ship fusion-card --live 6 --analyze 15

(the CNN, models/mer-default.onnx, is README's shipped recipe, unchanged). Only the card's
``fusion`` entry changes, not the ONNX file, so its sha256 stays valid.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .paths import MODELS, RESULTS

CARD = MODELS / "mer-default.json"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="mer-train ship fusion-card", description=__doc__.split("\n\n")[0])
    ap.add_argument("--live", type=float, default=6.0, help="seconds between teacher patches live")
    ap.add_argument("--analyze", type=float, default=15.0,
                    help="mer-analyze: patch starts every S s (0: one, the middle)")
    ap.add_argument("--memory", type=float, default=12.0, help="live: average the patches of the last S s")
    ap.add_argument("--card", type=Path, default=CARD)
    ap.add_argument("--stage", type=float, default=15.0, help="the stage-test row's cadence")
    args = ap.parse_args(argv)
    card = json.loads(args.card.read_text())
    cad = "1p" if args.analyze <= 0 else f"{args.analyze:g}s"
    cv = {}
    for key, name in (("cnn_alone", "abl-eq+band"), ("teacher_alone", f"fusion-teacher-{cad}"),
                      ("fused", f"fusion-w03-{cad}"), ("fused_second_cnn_seed", f"fusion-w03-{cad}-s2"),
                      ("fused_nested_weight", f"fusion-nested-{cad}"),
                      ("fused_stage_test", f"fusion-stage-{args.analyze:g}s")):
        r = _pooled_row(name)
        if r is not None:
            cv[key] = r
    card["fusion"] = {
        "teacher": "musicnn-msd.onnx", "head": "musicnn-msd-head.json",
        "live_every_s": args.live, "analyze_every_s": args.analyze, "memory_s": args.memory,
        "what": "two-rate fusion: this CNN every hop, the teacher (musicnn MSD, ISC) on a 3-s patch "
                "every live_every_s of music on its own thread (mer-analyze: patches starting every "
                "analyze_every_s, or the middle one when 0), fused in logit space: "
                "sigmoid((1 - w) logit(p_cnn) + w z_teacher), w = 0.3 from the head file; docs/teacher.md",
        "cv": {"protocol": "artist_folds(clips, 5, 0), pooled over 716 out-of-fold clips; the head fitted on "
                           "each fold's training clips; the CNN's out-of-fold clip scores (cv spec); "
                           f"mer-analyze's placement ({cad})", "rows": cv},
        "budget": {"measured": "2026-12-03, 2-core AMD EPYC, CPU build of onnxruntime (docs/benchmarks.md)",
                   "mer_live_headless_device_pct_of_a_core": 9.1, "mer_live_headless_file_pct": 6.0,
                   "start_to_first_osc_s": 0.31, "low_latency_p99_ms": 4.77,
                   "mer_analyze_s_per_30s_clip_2_cores": 0.0847, "vibenet_same_run_s": 0.0895,
                   "cuda": "not measured: no GPU was lent; the teacher runs on the provider the CNN got"},
        "command": "mer-train ship fusion-card --live "
                   f"{args.live:g} --analyze {args.analyze:g} --memory {args.memory:g}",
    }
    args.card.write_text(json.dumps(card, indent=1) + "\n")
    for k, v in cv.items():
        print(k, {m: v[m] for m in ("arousal_auc", "valence_auc", "quadrant_macro_f1")})
    return 0


def _pooled_row(name: str) -> dict | None:
    """README's columns of a result's pooled metrics (cv spec and fusion results alike; the
    second CNN seed's fusion rows live only in fusion-summary.json)."""
    p = RESULTS / f"{name}.json"
    if not p.is_file():
        rows = json.loads((RESULTS / "fusion-summary.json").read_text())["rows"]
        if name not in rows:
            return None
        cols = ("arousal_auc", "valence_auc", "sad_vs_calm_auc", "quadrant_acc", "quadrant_macro_f1")
        return {"file": "train/experiments/results/fusion-summary.json", **{k: rows[name][k] for k in cols}}
    pooled = json.loads(p.read_text())["pooled"]
    keys = {"arousal_auc": "arousal_auc", "valence_auc": "valence_auc",
            "sad_vs_calm_auc": "valence_auc_low_arousal", "quadrant_acc": "quadrant_acc",
            "quadrant_macro_f1": "quadrant_macro_f1"}
    return {"file": f"train/experiments/results/{name}.json",
            **{k: round(float(pooled[v]), 4) for k, v in keys.items() if v in pooled}}


if __name__ == "__main__":
    raise SystemExit(main())
