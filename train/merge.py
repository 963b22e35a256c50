"""Merge cv spec results of disjoint folds (run as parallel processes) into one complete CV result.

``mer-train cv merge --name X part1.json part2.json ...``: the parts must share the
recipe (model, fit, seeds); out-of-fold scores and per-fold metrics are combined (the stage
test's too, when every part ran ``--stage-test``), mean/std and pooled metrics recomputed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from .data import load_4q
from .fit import clip_metrics, summarize
from .paths import RESULTS

#: SpecFitConfig fields that say where a fit ran, not what it fitted (absent from older results)
RUN_ONLY = ("device", "threads", "progress")


def recipe_part(res: dict, key: str):
    """``res[key]``, less the fields that do not change the recipe (so parts run apart still match)
    and, for ``fit``, less fields at their default (a result written before a field existed ran
    with its default)."""
    v = res[key]
    if key != "fit":
        return v
    from .specfit import SpecFitConfig

    defaults = {f.name: f.default for f in dataclasses.fields(SpecFitConfig)}
    return {k: x for k, x in v.items() if k not in RUN_ONLY and not (k in defaults and x == defaults[k])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="mer-train cv merge", description=__doc__)
    ap.add_argument("--name", required=True)
    ap.add_argument("parts", nargs="+", type=Path)
    args = ap.parse_args(argv)
    parts = [json.loads(p.read_text()) for p in args.parts]
    first = parts[0]
    for p in parts[1:]:
        for k in ("model", "fit", "seeds", "ids"):
            if recipe_part(p, k) != recipe_part(first, k):
                raise SystemExit(f"merge: error: parts differ in {k!r}")
    folds_run = [f for p in parts for f in p["folds_run"]]
    if len(set(folds_run)) != len(folds_run):
        raise SystemExit("merge: error: a fold appears in two parts")
    order = np.argsort(folds_run)
    per_fold = [m for p in parts for m in p["folds"]]
    secs = [s for p in parts for s in p["seconds"]]
    def joined(key: str) -> np.ndarray:
        out = np.full((len(first["ids"]), 2), np.nan)
        for p in parts:
            for i, r in enumerate(p[key]):
                if r is not None:
                    out[i] = r
        return out

    def rows(a: np.ndarray) -> list:
        return [None if np.isnan(r[0]) else [float(r[0]), float(r[1])] for r in a]

    oof = joined("oof")
    res = {**first, "name": args.name, "folds_run": sorted(folds_run),
           "folds": [per_fold[i] for i in order], "seconds": [secs[i] for i in order],
           **summarize([per_fold[i] for i in order]),
           "command": " && ".join(p.get("command", "") for p in parts), "oof": rows(oof)}
    stage = all("stage_oof" in p for p in parts)  # cv spec --stage-test in every part
    if stage:
        stage_folds = [m for p in parts for m in p["stage_folds"]]
        res["stage_folds"] = [stage_folds[i] for i in order]
        res["stage_oof"] = rows(joined("stage_oof"))
    if not np.isnan(oof[:, 0]).any():
        by_id = {c.id: c for c in load_4q()}
        cl = [by_id[i] for i in first["ids"]]
        y = np.array([[c.arousal_high, c.valence_high] for c in cl], np.float32)
        quads = np.array([c.quadrant for c in cl])
        res["pooled"] = clip_metrics(y, oof, quads)
        if stage:
            res["stage_pooled"] = clip_metrics(y, joined("stage_oof"), quads)
    write_result(res, args.name)
    return 0


def write_result(res: dict, name: str, what: str = "") -> Path:
    """Write ``res`` as ``RESULTS/<name>.json`` (where ``mer-train report`` and ``ship`` read it) and
    print its mean +- std line; ``what`` is said first (e.g. ``3 seeds, ``)."""
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(res, indent=1))
    m, sd = res["mean"], res["std"]
    print(f"{name}: {what}folds {res['folds_run']}")
    print(f"  arousal_auc {m['arousal_auc']:.3f}+-{sd['arousal_auc']:.3f}  valence_auc {m['valence_auc']:.3f}"
          f"+-{sd['valence_auc']:.3f}  quad_f1 {m['quadrant_macro_f1']:.3f}+-{sd['quadrant_macro_f1']:.3f}")
    print(f"  pooled {res.get('pooled')}")
    return path


if __name__ == "__main__":
    raise SystemExit(main())
