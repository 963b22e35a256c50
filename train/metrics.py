"""Evaluation metrics as plain functions, each reported beside the baseline a guess would score.

Conventions: scores and predictions are on the project's [0, 1] scale; "high" means >= 0.5 (as
``mer_live.live.records.quadrant_of``, ties go high); quadrants are 1..4 (Q1 high arousal + high
valence, Q2 high + low, Q3 low + low, Q4 low arousal + high valence). A majority baseline always
predicts the most frequent class of ``train_labels`` when given (the honest baseline: the
evaluated fold's own majority is unknown at prediction time), else of the evaluated labels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

QUADRANTS = (1, 2, 3, 4)


def _majority(labels: np.ndarray, classes: Sequence[int]) -> int:
    """Most frequent class; ties go to the smallest class value (deterministic)."""
    counts = [int(np.sum(labels == c)) for c in classes]
    return int(classes[int(np.argmax(counts))])


def confusion(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """``[len(classes), len(classes)]`` counts: row = true class, column = predicted class."""
    idx = {c: i for i, c in enumerate(classes)}
    m = np.zeros((len(classes), len(classes)), np.int64)
    for t, p in zip(np.asarray(y_true).tolist(), np.asarray(y_pred).tolist(), strict=True):
        m[idx[t], idx[p]] += 1
    return m


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[int]) -> float:
    """Mean over the classes present in ``y_true`` of per-class recall (chance = 1 / #classes)."""
    m = confusion(y_true, y_pred, classes)
    support = m.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(m)[present] / support[present]))


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[int]) -> float:
    """Unweighted mean of per-class F1 over ``classes`` (a class never true nor predicted scores 0)."""
    m = confusion(y_true, y_pred, classes).astype(np.float64)
    tp = np.diag(m)
    denom = m.sum(axis=0) + m.sum(axis=1)  # = 2tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(f1.mean())


def mcc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Matthews correlation of binary labels, in [-1, 1]; 0 when a row or column of the table is empty."""
    t = np.asarray(y_true).astype(bool)
    p = np.asarray(y_pred).astype(bool)
    tp, tn = float(np.sum(t & p)), float(np.sum(~t & ~p))
    fp, fn = float(np.sum(~t & p)), float(np.sum(t & ~p))
    den = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return float((tp * tn - fp * fn) / den) if den > 0 else 0.0


def auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC: the probability that a random positive scores above a random negative (ties count 1/2).

    NaN when only one class is present.
    """
    t = np.asarray(y_true).astype(bool)
    s = np.asarray(score, np.float64)
    n_pos, n_neg = int(t.sum()), int((~t).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), np.float64)
    ranks[order] = np.arange(1, len(s) + 1)
    # average ranks over ties
    sorted_s = s[order]
    start = 0
    for i in range(1, len(s) + 1):
        if i == len(s) or sorted_s[i] != sorted_s[start]:
            ranks[order[start:i]] = (start + 1 + i) / 2
            start = i
    return float((ranks[t].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def binary_metrics(
    y_true: np.ndarray, score: np.ndarray, train_labels: np.ndarray | None = None
) -> dict[str, float]:
    """AUC, accuracy / balanced accuracy / MCC at the 0.5 threshold, and the majority baseline's.

    ``y_true`` is 0/1, ``score`` in [0, 1] (predicted probability or continuous estimate of "high").
    The majority baseline predicts one class for all, so its AUC is 0.5, balanced accuracy 0.5 and
    MCC 0; only its accuracy is informative.
    """
    y = np.asarray(y_true).astype(np.int64)
    s = np.asarray(score, np.float64)
    pred = (s >= 0.5).astype(np.int64)
    maj = _majority(np.asarray(train_labels if train_labels is not None else y).astype(np.int64), (0, 1))
    return {
        "auc": auc(y, s),
        "accuracy": float(np.mean(pred == y)),
        "balanced_accuracy": balanced_accuracy(y, pred, (0, 1)),
        "mcc": mcc(y, pred),
        "majority_class": maj,
        "majority_accuracy": float(np.mean(y == maj)),
        "majority_balanced_accuracy": balanced_accuracy(y, np.full_like(y, maj), (0, 1)),
        "n": int(len(y)),
        "positives": int(y.sum()),
    }


def quadrant_of(arousal: np.ndarray, valence: np.ndarray) -> np.ndarray:
    """Russell quadrant 1..4 of [0, 1] values, elementwise (the rule of
    mer_live.live.records.quadrant_of)."""
    a = np.asarray(arousal) >= 0.5
    v = np.asarray(valence) >= 0.5
    return np.where(a, np.where(v, 1, 2), np.where(v, 4, 3)).astype(np.int64)


def quadrant_metrics(
    q_true: np.ndarray, q_pred: np.ndarray, train_labels: np.ndarray | None = None
) -> dict[str, Any]:
    """4-class accuracy, macro-F1, balanced accuracy, confusion (rows true Q1..Q4), majority baseline."""
    t = np.asarray(q_true).astype(np.int64)
    p = np.asarray(q_pred).astype(np.int64)
    maj = _majority(np.asarray(train_labels if train_labels is not None else t).astype(np.int64), QUADRANTS)
    mp = np.full_like(t, maj)
    return {
        "accuracy": float(np.mean(p == t)),
        "macro_f1": macro_f1(t, p, QUADRANTS),
        "balanced_accuracy": balanced_accuracy(t, p, QUADRANTS),
        "confusion": confusion(t, p, QUADRANTS).tolist(),
        "majority_class": maj,
        "majority_accuracy": float(np.mean(t == maj)),
        "majority_macro_f1": macro_f1(t, mp, QUADRANTS),
        "n": int(len(t)),
    }


def ccc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Lin's concordance correlation: 2 cov / (var_t + var_p + (mean_t - mean_p)^2), population moments.

    1 only for identical series; penalises bias and scale that Pearson r ignores.
    """
    t = np.asarray(y_true, np.float64)
    p = np.asarray(y_pred, np.float64)
    mt, mp_ = t.mean(), p.mean()
    cov = np.mean((t - mt) * (p - mp_))
    den = t.var() + p.var() + (mt - mp_) ** 2
    return float(2 * cov / den) if den > 0 else float("nan")


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """RMSE, MAE, Pearson r, R² (1 - SSE/SST; can be negative), CCC of one dimension.

    Baseline: predicting the mean of ``y_true`` scores R² 0, r undefined, and RMSE = std(y_true),
    reported as ``baseline_rmse``.
    """
    t = np.asarray(y_true, np.float64)
    p = np.asarray(y_pred, np.float64)
    err = p - t
    sst = float(np.sum((t - t.mean()) ** 2))
    r = float(np.corrcoef(t, p)[0, 1]) if t.std() > 0 and p.std() > 0 else float("nan")
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "pearson_r": r,
        "r2": 1 - float(np.sum(err**2)) / sst if sst > 0 else float("nan"),
        "ccc": ccc(t, p),
        "baseline_rmse": float(t.std()),
        "n": int(len(t)),
    }


def summarize(
    pred: np.ndarray,
    *,
    arousal_high: np.ndarray | None = None,
    valence_high: np.ndarray | None = None,
    quadrant: np.ndarray | None = None,
    continuous: np.ndarray | None = None,
    train: Mapping[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """All metrics of clip-level predictions ``pred [n, 2]`` (arousal, valence in [0, 1]).

    Give what the data has: 0/1 highs (binary metrics), quadrants 1..4 (4-class metrics, the
    predicted quadrant is ``quadrant_of(pred)``), continuous ``[n, 2]`` targets (regression). Highs
    and quadrants are derived from whichever of these is given. ``train`` optionally holds the
    training labels (keys ``arousal_high``, ``valence_high``, ``quadrant``) for majority baselines.
    """
    pred = np.asarray(pred, np.float64)
    if pred.ndim != 2 or pred.shape[1] != 2:
        raise ValueError(f"pred must be [n, 2], got {pred.shape}")
    train = train or {}
    if continuous is not None:
        c = np.asarray(continuous, np.float64)
        arousal_high = (c[:, 0] >= 0.5).astype(int) if arousal_high is None else arousal_high
        valence_high = (c[:, 1] >= 0.5).astype(int) if valence_high is None else valence_high
    if quadrant is None and arousal_high is not None and valence_high is not None:
        quadrant = quadrant_of(np.asarray(arousal_high), np.asarray(valence_high))
    if quadrant is not None:
        q = np.asarray(quadrant)
        arousal_high = np.isin(q, (1, 2)).astype(int) if arousal_high is None else arousal_high
        valence_high = np.isin(q, (1, 4)).astype(int) if valence_high is None else valence_high
    out: dict[str, Any] = {"n": int(len(pred))}
    for d, name, high in ((0, "arousal", arousal_high), (1, "valence", valence_high)):
        part: dict[str, Any] = {}
        if high is not None:
            part.update(binary_metrics(np.asarray(high), pred[:, d], train.get(f"{name}_high")))
        if continuous is not None:
            part["regression"] = regression_metrics(np.asarray(continuous)[:, d], pred[:, d])
        out[name] = part
    if quadrant is not None:
        out["quadrant"] = quadrant_metrics(np.asarray(quadrant), quadrant_of(pred[:, 0], pred[:, 1]),
                                           train.get("quadrant"))
    return out


def aggregate_windows(window_pred: np.ndarray, clip_of_window: np.ndarray, n_clips: int) -> np.ndarray:
    """Clip-level predictions ``[n_clips, 2]``: the mean of each clip's window predictions (NaN if none)."""
    wp = np.asarray(window_pred, np.float64)
    idx = np.asarray(clip_of_window, np.int64)
    sums = np.zeros((n_clips, wp.shape[1]))
    np.add.at(sums, idx, wp)
    counts = np.bincount(idx, minlength=n_clips)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts


def fold_spread(
    fold_summaries: Sequence[Mapping[str, Any]], keys: Sequence[str]
) -> dict[str, tuple[float, float]]:
    """Mean and standard deviation across folds of dotted keys, e.g. ``"arousal.auc"``."""
    out = {}
    for k in keys:
        vals = []
        for s in fold_summaries:
            v: Any = s
            for part in k.split("."):
                v = v[part]
            vals.append(float(v))
        out[k] = (float(np.mean(vals)), float(np.std(vals)))
    return out


#: (column title, dotted key) of the default table; missing keys show as "-".
DEFAULT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("arousal AUC", "arousal.auc"),
    ("valence AUC", "valence.auc"),
    ("arousal bal. acc.", "arousal.balanced_accuracy"),
    ("valence bal. acc.", "valence.balanced_accuracy"),
    ("arousal MCC", "arousal.mcc"),
    ("valence MCC", "valence.mcc"),
    ("quadrant acc.", "quadrant.accuracy"),
    ("quadrant macro-F1", "quadrant.macro_f1"),
    ("arousal R²", "arousal.regression.r2"),
    ("valence R²", "valence.regression.r2"),
    ("arousal CCC", "arousal.regression.ccc"),
    ("valence CCC", "valence.regression.ccc"),
)

_MAJORITY = {
    "arousal.auc": 0.5, "valence.auc": 0.5,
    "arousal.balanced_accuracy": 0.5, "valence.balanced_accuracy": 0.5,
    "arousal.mcc": 0.0, "valence.mcc": 0.0,
    "arousal.regression.r2": 0.0, "valence.regression.r2": 0.0,
    "arousal.regression.ccc": 0.0, "valence.regression.ccc": 0.0,
}


def _get(d: Mapping[str, Any], key: str) -> Any:
    v: Any = d
    for part in key.split("."):
        if not isinstance(v, Mapping) or part not in v:
            return None
        v = v[part]
    return v


def format_table(
    rows: Mapping[str, Mapping[str, Any]],
    how_measured: str,
    columns: Sequence[tuple[str, str]] | None = None,
    spread: Mapping[str, Mapping[str, tuple[float, float]]] | None = None,
    majority_row: bool = True,
) -> str:
    """Markdown table of summaries (a row per model), a majority-baseline row and a "how measured" line.

    Columns with no value in any row are left out. ``spread[row][key] = (mean, std)`` over folds adds
    "± std" to a cell.
    """
    cols = [c for c in (columns or DEFAULT_COLUMNS) if any(_get(r, c[1]) is not None for r in rows.values())]
    lines = ["| model | " + " | ".join(t for t, _ in cols) + " |", "|---|" + "---:|" * len(cols)]
    if majority_row and rows:
        first = next(iter(rows.values()))
        cells = []
        for _, k in cols:
            if k == "quadrant.accuracy":
                v = _get(first, "quadrant.majority_accuracy")
            elif k == "quadrant.macro_f1":
                v = _get(first, "quadrant.majority_macro_f1")
            else:
                v = _MAJORITY.get(k)
            cells.append("-" if v is None else f"{v:.3f}")
        lines.append("| majority baseline | " + " | ".join(cells) + " |")
    for name, s in rows.items():
        cells = []
        for _, k in cols:
            v = _get(s, k)
            if v is None:
                cells.append("-")
                continue
            cell = f"{float(v):.3f}"
            sd = (spread or {}).get(name, {}).get(k)
            if sd is not None:
                cell += f" ± {sd[1]:.3f}"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\nHow measured: {how_measured}\n"
