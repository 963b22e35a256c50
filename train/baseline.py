"""The classic yardstick: hand-crafted features + standardised logistic regression, artist-grouped CV.

Same protocol as the deep models: ``data.artist_folds(clips, k=5, seed=0)``; in each fold the
scaler and classifiers are fitted on the training clips only; out-of-fold clip predictions are
pooled over the 5 folds and scored with ``metrics.summarize`` (plus the spread across folds).
Three classifiers: arousal high/low and valence high/low (their probabilities are the predicted
arousal and valence, whose quadrant is the predicted quadrant), and a 4-class quadrant classifier
reported on its own row.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .data import Clip, artist_folds
from .metrics import fold_spread, format_table, quadrant_metrics, summarize

log = logging.getLogger(__name__)


@dataclass
class BaselineResult:
    """Pooled out-of-fold predictions and their metrics."""

    pred: np.ndarray  #: [n, 2] P(arousal high), P(valence high), out of fold
    quadrant_pred: np.ndarray  #: [n] 4-class classifier's quadrant, out of fold
    summary: dict[str, Any]  #: metrics.summarize of ``pred`` (pooled)
    quadrant_4class: dict[str, Any]  #: metrics.quadrant_metrics of ``quadrant_pred`` (pooled)
    fold_summaries: list[dict[str, Any]] = field(default_factory=list)
    n_features: int = 0


def _pipeline(c: float, seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000, random_state=seed))


def cross_validate_features(
    X: np.ndarray, clips: Sequence[Clip], k: int = 5, seed: int = 0, c: float = 0.1
) -> BaselineResult:
    """Artist-grouped k-fold logistic regression on features ``X [n, f]`` of labelled ``clips``."""
    X = np.asarray(X, np.float64)
    if not np.all(np.isfinite(X)):
        bad = int((~np.isfinite(X)).any(axis=1).sum())
        log.warning("%d clips have non-finite features; set to the column median", bad)
        med = np.nanmedian(np.where(np.isfinite(X), X, np.nan), axis=0)
        X = np.where(np.isfinite(X), X, med)
    ah = np.array([c_.arousal_high for c_ in clips], np.int64)
    vh = np.array([c_.valence_high for c_ in clips], np.int64)
    q = np.array([c_.quadrant for c_ in clips], np.int64)
    pred = np.full((len(clips), 2), np.nan)
    qpred = np.zeros(len(clips), np.int64)
    folds = artist_folds(clips, k=k, seed=seed)
    fold_summaries = []
    for tr, te in folds:
        for d, y in ((0, ah), (1, vh)):
            m = _pipeline(c, seed).fit(X[tr], y[tr])
            pred[te, d] = m.predict_proba(X[te])[:, 1]
        mq = _pipeline(c, seed).fit(X[tr], q[tr])
        qpred[te] = mq.predict(X[te])
        train = {"arousal_high": ah[tr], "valence_high": vh[tr], "quadrant": q[tr]}
        fold_summaries.append(
            summarize(pred[te], arousal_high=ah[te], valence_high=vh[te], quadrant=q[te], train=train))
    summary = summarize(pred, arousal_high=ah, valence_high=vh, quadrant=q)
    return BaselineResult(pred, qpred, summary, quadrant_metrics(q, qpred), fold_summaries, X.shape[1])


SPREAD_KEYS = ("arousal.auc", "valence.auc", "arousal.balanced_accuracy", "valence.balanced_accuracy",
               "arousal.mcc", "valence.mcc", "quadrant.accuracy", "quadrant.macro_f1")


def report(res: BaselineResult, n_artists: int, data_name: str = "4Q", seed: int = 0, k: int = 5) -> str:
    """The markdown table (pooled metrics ± std across folds) with its "how measured" line."""
    q4 = {"quadrant": {**res.quadrant_4class}}
    rows = {
        "features + LR (arousal, valence)": res.summary,
        "features + LR (4-class quadrant)": q4,
    }
    spread = {"features + LR (arousal, valence)": fold_spread(res.fold_summaries, SPREAD_KEYS)}
    how = (f"{data_name}, {len(res.pred)} clips, {n_artists} artists; {res.n_features} hand-crafted features "
           f"(train/features.py) over each whole clip; StandardScaler + LogisticRegression(C=0.1) fitted "
           f"per fold; artist-grouped {k}-fold CV (data.artist_folds, seed {seed}); out-of-fold predictions "
           f"pooled over all clips, ± = std across folds; arousal/valence thresholded at 0.5 "
           f"(quadrant from both); majority baseline = most frequent class.")
    return format_table(rows, how, spread=spread)


def run_4q(
    sr: int = 22050, cache_dir: Path = Path("cache"), k: int = 5, seed: int = 0, root: Path | None = None,
    progress: bool = True,
) -> tuple[BaselineResult, str]:
    """Load 4Q, decode (cached), extract features (cached), cross-validate; return result and table."""
    from .cache import load_audio
    from .data import load_4q
    from .features import feature_matrix

    clips = load_4q(root)
    audio = load_audio(clips, sr, cache_dir=cache_dir, progress=progress)
    clips = audio.clips
    X, _ = feature_matrix(audio, sr, ids=[c.id for c in clips], cache_dir=cache_dir, progress=progress)
    res = cross_validate_features(X, clips, k=k, seed=seed)
    n_artists = len({c.artist.casefold() for c in clips})
    return res, report(res, n_artists, "4Q (Panda et al. 2018)", seed, k)


def run_manifest(
    csv_path: Path, sr: int = 22050, cache_dir: Path = Path("cache"), k: int = 5, seed: int = 0,
    progress: bool = True,
) -> tuple[BaselineResult, str]:
    """The same baseline on a user's manifest (see data.load_manifest)."""
    from .cache import load_audio
    from .data import load_manifest
    from .features import feature_matrix

    clips = load_manifest(csv_path)
    audio = load_audio(clips, sr, cache_dir=cache_dir, progress=progress)
    clips = audio.clips
    X, _ = feature_matrix(audio, sr, ids=[c.id for c in clips], cache_dir=cache_dir, progress=progress)
    res = cross_validate_features(X, clips, k=k, seed=seed)
    n_artists = len({c.artist.casefold() or c.id for c in clips})
    return res, report(res, n_artists, Path(csv_path).name, seed, k)
