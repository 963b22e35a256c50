"""How the CV scores grow with the number of training artists: a learning curve from run_spec results.

``python -m train.experiments.learning_curve RESULT ... [--png docs/learning-curve.png]``

Each RESULT is a complete 5-fold ``run_spec`` run of one recipe, fitted on a fraction of each fold's
training artists (``run_spec --train-artists F``; a run without it used them all). The test folds
are the same in every run, so the points differ only in how much music the model heard. For each
run: its fold training sets are recomputed (``artist_folds(k=5, seed=0)``, then the same seeded
``artist_subset``), and its metrics pooled over the 716 out-of-fold clips as ``report`` pools them.

The trend line is a least-squares fit of each pooled metric against log2(training clips): "per
doubling" is how much the metric rose each time the training artists doubled, and "clips for the
floor" is where that line would cross issue #3's floor. That is an extrapolation from a few noisy
points; learning curves flatten as they approach what the labels allow, so read it as a lower
bound on the data the floor needs, not as a promise.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..cv_spec import artist_subset
from ..data import artist_folds, load_4q
from ..report import resolve, summary_of

# issue #3's floors: label -> (report's summary keys, run_spec's per-fold key, floor)
FLOORS = {"arousal AUC": ("arousal", "auc", "arousal_auc", 0.965),
          "valence AUC": ("valence", "auc", "valence_auc", 0.84),
          "quadrant macro-F1": ("quadrant", "macro_f1", "quadrant_macro_f1", 0.68)}


def training_sizes(res: dict, clips: list) -> list[int]:
    """The number of training clips each fold of ``res`` was fitted on."""
    frac = float(res.get("train_artists", 1.0))
    sizes = []
    for k, (tr, _) in enumerate(artist_folds(clips, k=5, seed=0)):
        sizes.append(len(artist_subset(clips, tr, frac, seed=k)) if frac < 1 else len(tr))
    return sizes


def curve_points(results: list[dict]) -> list[dict]:
    """One point per result: fraction, mean training clips, pooled metrics and per-fold metrics."""
    by_id = {c.id: c for c in load_4q()}
    pts = []
    for r in results:
        if any(x is None for x in r["oof"]) or len(r["folds"]) != 5:
            raise SystemExit(f"learning_curve: error: {r['name']} is not a complete 5-fold run")
        clips = [by_id[i] for i in r["ids"]]
        s = summary_of(np.array(r["oof"], np.float64), clips)
        sizes = training_sizes(r, clips)
        pts.append({"name": r["name"], "fraction": float(r.get("train_artists", 1.0)),
                    "clips": float(np.mean(sizes)), "fold_clips": sizes,
                    "pooled": {lab: s[a][b] for lab, (a, b, _, _) in FLOORS.items()},
                    "folds": {lab: [f[key] for f in r["folds"]] for lab, (_, _, key, _) in FLOORS.items()}})
    return sorted(pts, key=lambda p: p["clips"])


def means(pts: list[dict]) -> list[dict]:
    """The points of one training fraction (seeds of one size) merged: mean clips and mean pooled
    metrics (the mean of single models' scores, not the score of their ensemble)."""
    out = []
    for f in sorted({p["fraction"] for p in pts}):
        grp = [p for p in pts if p["fraction"] == f]
        out.append({"name": "+".join(p["name"] for p in grp), "fraction": f, "runs": len(grp),
                    "clips": float(np.mean([p["clips"] for p in grp])),
                    "pooled": {lab: float(np.mean([p["pooled"][lab] for p in grp])) for lab in FLOORS}})
    return out


def _fit(pts: list[dict], label: str) -> tuple[float, float]:
    """(slope, intercept) of the least-squares line of ``label`` against log2(training clips)."""
    slope, icpt = np.polyfit(np.log2([p["clips"] for p in pts]), [p["pooled"][label] for p in pts], 1)
    return float(slope), float(icpt)


def trend(pts: list[dict], label: str) -> tuple[float, float, float]:
    """(per doubling, value at the largest point, clips where the line meets the floor; inf if never),
    the line fitted through every run (seeds of one size are points at the same x)."""
    slope, icpt = _fit(pts, label)
    x = np.log2([p["clips"] for p in pts])
    floor = FLOORS[label][3]
    at = float(2 ** ((floor - icpt) / slope)) if slope > 0 else float("inf")
    return float(slope), float(icpt + slope * x[-1]), at


def plot(pts: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    for ax, label in zip(axes, FLOORS, strict=True):
        for p in pts:
            ax.scatter(p["fold_clips"], p["folds"][label], s=12, color="0.6", zorder=2)
        xs = [p["clips"] for p in pts]
        ax.scatter(xs, [p["pooled"][label] for p in pts], s=14, color="C0", zorder=3)
        mp = means(pts)
        ax.plot([m["clips"] for m in mp], [m["pooled"][label] for m in mp], "o-", color="C0",
                label="pooled CV (line: mean of seeds)", zorder=3)
        slope, icpt = _fit(pts, label)
        grid = np.geomspace(min(xs), max(xs) * 4, 50)
        ax.plot(grid, icpt + slope * np.log2(grid), ":", color="C0",
                label=f"log trend ({slope:+.3f} per doubling)")
        ax.axhline(FLOORS[label][3], ls="--", color="C3", label="issue #3 floor")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("training clips per fold")
        ax.set_title(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[0].set_ylabel("score (grey: single folds)")
    fig.suptitle("Learning curve: artist-grouped 5-fold CV on 4Q, fraction of training artists varied")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+", help="result names or paths (run_spec --train-artists runs)")
    ap.add_argument("--png", type=Path, default=None, help="save the curve as this PNG")
    args = ap.parse_args(argv)
    pts = curve_points([json.loads(resolve(n).read_text()) for n in args.results])
    if len({p["clips"] for p in pts}) < 2:
        raise SystemExit("learning_curve: error: need runs with at least two training-set sizes")
    print("| run | training artists | training clips per fold (mean) | "
          + " | ".join(FLOORS) + " |")
    print("|---|---:|---:|" + "---:|" * len(FLOORS))
    rows = pts + [m for m in means(pts) if m["runs"] > 1]
    for p in sorted(rows, key=lambda p: (p["clips"], p.get("runs", 1))):
        name = f"mean of {p['runs']} seeds" if p.get("runs", 1) > 1 else f"`{p['name']}`"
        print(f"| {name} | {p['fraction']:.0%} | {p['clips']:.0f} | "
              + " | ".join(f"{p['pooled'][lab]:.3f}" for lab in FLOORS) + " |")
    for label in FLOORS:
        slope, last, at = trend(pts, label)
        print(f"{label}: {slope:+.4f} per doubling of training artists (trend at the largest run "
              f"{last:.3f}); the trend meets the floor {FLOORS[label][3]} at ~{at:.0f} training clips"
              if np.isfinite(at) else f"{label}: no rising trend ({slope:+.4f} per doubling)")
    if args.png:
        plot(pts, args.png)
        print(f"plot: {args.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
