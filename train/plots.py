"""Evaluation figures as PNG files (matplotlib, Agg backend: no screen needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def confusion_png(
    matrix: Sequence[Sequence[int]], path: Path, labels: Sequence[str] = ("Q1", "Q2", "Q3", "Q4"),
    title: str = "quadrant confusion",
) -> Path:
    """Confusion matrix (rows true, columns predicted) with counts and row-normalised shading."""
    plt = _plt()
    m = np.asarray(matrix, np.float64)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(4.2, 3.8), dpi=120)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center",
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def curves_png(history: Mapping[str, Sequence[float]], path: Path, title: str = "training") -> Path:
    """Per-epoch curves: keys with "loss" on the left axis, every other key (metrics) on the right."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    ax2 = None
    for k, v in history.items():
        v = np.asarray(v, np.float64)
        x = np.arange(1, len(v) + 1)
        if "loss" in k:
            ax.plot(x, v, label=k)
        else:
            ax2 = ax2 or ax.twinx()
            ax2.plot(x, v, "--", label=k)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    handles, names = ax.get_legend_handles_labels()
    if ax2 is not None:
        ax2.set_ylabel("metric")
        h2, n2 = ax2.get_legend_handles_labels()
        handles, names = handles + h2, names + n2
    if handles:
        ax.legend(handles, names, fontsize=8, loc="best")
    ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def av_scatter_png(
    pred: np.ndarray, path: Path, true: np.ndarray | None = None, quadrant: np.ndarray | None = None,
    title: str = "valence-arousal",
) -> Path:
    """Predicted points on the valence (x) / arousal (y) plane, coloured by true quadrant if given;
    lines from the true point to the prediction when continuous ``true`` labels are given."""
    plt = _plt()
    pred = np.asarray(pred, np.float64)
    fig, ax = plt.subplots(figsize=(4.6, 4.4), dpi=120)
    if true is not None:
        t = np.asarray(true, np.float64)
        for (ta, tv), (pa, pv) in zip(t, pred, strict=True):
            ax.plot([tv, pv], [ta, pa], color="0.8", lw=0.5, zorder=1)
    colors = {1: "tab:orange", 2: "tab:red", 3: "tab:blue", 4: "tab:green"}
    if quadrant is not None:
        q = np.asarray(quadrant)
        for k, c in colors.items():
            sel = q == k
            ax.scatter(pred[sel, 1], pred[sel, 0], s=8, c=c, label=f"true Q{k}", zorder=2)
        ax.legend(fontsize=7, loc="lower right")
    else:
        ax.scatter(pred[:, 1], pred[:, 0], s=8, zorder=2)
    ax.axhline(0.5, color="k", lw=0.6)
    ax.axvline(0.5, color="k", lw=0.6)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("valence")
    ax.set_ylabel("arousal")
    ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
