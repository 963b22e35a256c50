"""Average the out-of-fold scores of several complete CV results: the ensemble of their members.

``python -m train.experiments.blend --name X run1.json run2.json ...``

Each part is a complete 5-fold ``run_spec`` (or ``merge``) result of the SAME recipe with other
seeds (``run_spec --seed-offset``), so the mean of their clip scores is exactly what an exported
``SharedMelEnsemble`` of all their members would score. Per-fold and pooled metrics are recomputed
from the averaged scores in the same artist folds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..data import artist_folds, load_4q
from ..fit import clip_metrics, summarize
from ..merge import recipe_part, write_result


def blend(parts: list[dict], name: str, mixed: bool = False) -> dict:
    """One result whose ``oof`` is the mean of the parts' (which must share recipe, ids and folds;
    with ``mixed`` only ids and folds: an ensemble of different recipes, e.g. distillation teachers)."""
    first = parts[0]
    for p in parts[1:]:
        for k in ("ids", "folds_run") if mixed else ("model", "fit", "ids", "folds_run"):
            if recipe_part(p, k) != recipe_part(first, k):
                raise SystemExit(f"blend: error: parts differ in {k!r}")
    offsets = [p.get("seed_offset", 0) for p in parts]
    if not mixed and len(set(offsets)) != len(offsets):
        raise SystemExit("blend: error: two parts have the same seeds (seed_offset)")
    oof = np.mean([np.array([[np.nan, np.nan] if r is None else r for r in p["oof"]], np.float64)
                   for p in parts], axis=0)
    by_id = {c.id: c for c in load_4q()}
    cl = [by_id[i] for i in first["ids"]]
    y = np.array([[c.arousal_high, c.valence_high] for c in cl], np.float32)
    q = np.array([c.quadrant for c in cl])
    folds = artist_folds(cl, k=5, seed=0)
    per_fold = [clip_metrics(y[te], oof[te], q[te]) for k, (_, te) in enumerate(folds)
                if k in first["folds_run"]]
    res = {**{k: v for k, v in first.items() if k not in ("histories",)}, "name": name,
           "seeds": int(sum(p["seeds"] for p in parts)), "blend_of": [p["name"] for p in parts],
           **({"recipes": [{"model": p["model"], "fit": p["fit"]} for p in parts]} if mixed else {}),
           "folds": per_fold, **summarize(per_fold),
           "seconds": [float(sum(s)) for s in zip(*(p["seconds"] for p in parts), strict=True)],
           "command": " && ".join(p.get("command", "") for p in parts),
           "oof": [None if np.isnan(r[0]) else [float(r[0]), float(r[1])] for r in oof]}
    if not np.isnan(oof[:, 0]).any():
        res["pooled"] = clip_metrics(y, oof, q)
    res.pop("stage_oof", None), res.pop("stage_pooled", None), res.pop("stage_folds", None)
    if all(p.get("stage_oof") for p in parts):  # the stage test too, when every part has it
        st = np.mean([np.array([[np.nan, np.nan] if r is None else r for r in p["stage_oof"]], np.float64)
                      for p in parts], axis=0)
        res["stage_oof"] = [None if np.isnan(r[0]) else [float(r[0]), float(r[1])] for r in st]
        if not np.isnan(st[:, 0]).any():
            res["stage_pooled"] = clip_metrics(y, st, q)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--name", required=True)
    ap.add_argument("parts", nargs="+", type=Path)
    ap.add_argument("--mixed", action="store_true", help="parts may be different recipes")
    args = ap.parse_args(argv)
    res = blend([json.loads(p.read_text()) for p in args.parts], args.name, mixed=args.mixed)
    write_result(res, args.name, f"{res['seeds']} seeds, ")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
