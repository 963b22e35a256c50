"""How much a pretrained model's clip features know about 4Q's labels, in our artist folds.

``python -m train.experiments.probe_features FEATURES.npz [--c 0.1] [--with RESULT.json]``

A standardised logistic regression per dimension on the features (``ids``, ``features``: e.g.
``musicnn_features.py``'s), fitted on each fold's training artists and scored on its test artists
(``data.artist_folds(k=5, seed=0)``, the folds of every CV row); metrics pooled over the 716
out-of-fold scores. ``--with`` a run_spec result also prints the logit mean of that model's
out-of-fold scores and the probe's, ``(1 - w) x ours + w x probe``, for a few weights ``w``: an
upper estimate of what those features add (``w`` is read off the pooled result, so the best
weight is optimistic), not a model that fits the runtime's budget.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..cv_spec import load_clip_features, logreg_oof
from ..data import artist_folds, load_4q
from ..fit import clip_metrics

WEIGHTS = (0.0, 0.2, 0.3, 0.4, 0.5)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("features", type=Path)
    ap.add_argument("--c", type=float, default=0.1, help="inverse L2 strength of the regression")
    ap.add_argument("--with", dest="result", type=Path, default=None, help="a complete run_spec result")
    args = ap.parse_args(argv)
    clips = load_4q()
    feats = load_clip_features(args.features, clips)
    y = np.array([[c.arousal_high, c.valence_high] for c in clips])
    q = np.array([c.quadrant for c in clips])
    p = logreg_oof(feats, y, artist_folds(clips, k=5, seed=0), args.c)
    m = clip_metrics(y, p, q)
    print(f"probe ({feats.shape[1]} features, C={args.c:g}): arousal AUC {m['arousal_auc']:.4f}, "
          f"valence AUC {m['valence_auc']:.4f}, quadrant macro-F1 {m['quadrant_macro_f1']:.4f}")
    if args.result:
        res = json.loads(args.result.read_text())
        pos = {i: k for k, i in enumerate(res["ids"])}
        if any(c.id not in pos for c in clips) or any(r is None for r in res["oof"]):
            raise SystemExit(f"probe_features: error: {args.result} is not a complete 5-fold result")
        ours = np.array(res["oof"], np.float64)[[pos[c.id] for c in clips]]
        for w in WEIGHTS:
            b = 1 / (1 + np.exp(-((1 - w) * _logit(ours) + w * _logit(p))))
            m = clip_metrics(y, b, q)
            print(f"  {res['name']} blended, w={w:.1f}: arousal AUC {m['arousal_auc']:.4f}, valence AUC "
                  f"{m['valence_auc']:.4f}, quadrant macro-F1 {m['quadrant_macro_f1']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
