"""Where the fused default's gain is: the sad-versus-calm ROC (valence among the low-arousal 4Q
clips, Q3 against Q4) of the CNN alone and of the fusion, from their stored out-of-fold scores.

    python -m train.experiments.roc_figure --png docs/sad-vs-calm-roc.png \\
        abl-eq+band fusion-w03-3s fusion-w03-15s

Each name is a results JSON (train/experiments/results/<name>.json with ``ids`` and ``oof``);
labels come from ../shared/data/4q (the clips' quadrants).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..data import load_4q
from ..metrics import auc
from ..paths import RESULTS
from ..plots import _plt, _save

LABELS = {
    "abl-eq+band": "CNN alone (shipped before)",
    "fusion-teacher-3s": "teacher alone",
    "fusion-w03-3s": "fused, a teacher patch every 3 s (live)",
    "fusion-w03-15s": "fused, a patch every 15 s (mer-analyze)",
}


def roc(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-s, kind="stable")
    y = y[order]
    tpr = np.concatenate([[0.0], np.cumsum(y) / max(1, y.sum())])
    fpr = np.concatenate([[0.0], np.cumsum(1 - y) / max(1, (1 - y).sum())])
    return fpr, tpr


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="+")
    ap.add_argument("--png", type=Path, required=True)
    args = ap.parse_args(argv)
    quad = {c.id: c.quadrant for c in load_4q()}
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 4.6), dpi=120)
    for name in args.names:
        d = json.loads((RESULTS / f"{name}.json").read_text())
        pairs = zip(d["ids"], d["oof"], strict=True)
        rows = [(quad[i], o[1]) for i, o in pairs if o is not None and quad[i] in (3, 4)]
        y = np.array([q == 4 for q, _ in rows], float)  # calm (Q4) is the high-valence half
        s = np.array([v for _, v in rows], float)
        fpr, tpr = roc(y, s)
        a = auc(y, s)
        ax.plot(fpr, tpr, lw=2, label=f"{LABELS.get(name, name)}: AUC {a:.3f}")
        print(f"{name}: sad vs calm AUC {a:.4f} ({len(y)} clips)")
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
    ax.set_xlabel("sad clips called calm (false positive rate)")
    ax.set_ylabel("calm clips called calm (true positive rate)")
    ax.set_title("sad vs calm (valence of the low-arousal 4Q clips),\nartist-grouped 5-fold CV, out of fold")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    _save(fig, args.png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
