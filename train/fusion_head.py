"""Two-rate fusion, cross-validated: the shipped CNN's clip scores fused with the musicnn teacher's
logits in the artist folds, for several teacher cadences (issue #17).

``mer-train cv fusion [--features cache/teacher-msd-4q-1s.npz] [--cnn abl-eq+band ...]``

Per artist fold (``data.artist_folds(clips, 5, 0)``, the folds of every CV row here):

1. a logistic regression head per dimension (C = 0.1, fixed in advance; standardised features) is
   fitted on the TRAINING clips' mean teacher features (all their 1-s patches: offline, the head
   is fitted once on whole clips) -> teacher logits ``z`` of the test clips from the mean of the
   patches the runtime would have at that cadence (the head is affine, so the logit of the mean
   equals the mean of per-patch logits: the runtime may average logits as they arrive);
2. fused with the CNN's out-of-fold clip score in logit space:
   ``p = sigmoid((1 - w) logit(p_cnn) + w z)``, ``w`` = 0.3 fixed before scoring (``--weight``),
   or, as the nested variant, ``w`` per dimension chosen on the training clips only (inner artist
   folds over them give their out-of-fold teacher logits; the grid 0..1 step 0.05 minimising the
   binary cross-entropy of the fused training scores).

Cadences: the teacher on a patch every 1 s (every patch of the cache), every 3 s (back to back,
musicnn's own tiling; the cache's 1-s grid leaves 8 ms between 2.992-s patches), 6, 10, 15 s
(first patch at the clip's start, phase 0; the spread over the other phases in the summary) and a
single patch per clip (the middle one; the spread over all positions in the summary).

The CNN's scores are the shipped recipe's out-of-fold clip scores (``results/abl-eq+band.json``:
mean of the window outputs 1 s apart, models fitted on the training artists only); ``-s2``: the
same recipe's second seed (``abl-eq+band-s2``). Caveat of the nested variant: the CNN scores of a
fold's TRAINING clips come from the other folds' models, which were fitted on this fold's test
clips among others (their labels reach the weight only through those models; nested CNN training
would cost 20 more fits).

Each fixed-weight row's gain over the CNN alone gets an artist-cluster paired bootstrap interval
(2000 draws of whole artists; ``bootstrap_vs_cnn``: difference, 2.5 %, 97.5 %).

Writes ``results/fusion-<variant>-<cadence>.json`` (one row each, readable by ``report.py``; the
shipped seed's CNN) and ``results/fusion-summary.json`` (every row, both CNN seeds, the phase
spreads, the weights per fold), and prints the table. ``--head OUT.json`` also fits the head on all
716 clips (what the runtime ships: ``models/musicnn-msd-head.json``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mer_live.common.fusion import fuse, sigmoid

from .data import Clip, artist_folds, load_4q
from .metrics import format_table
from .paths import CACHE, MODELS, RESULTS, ROOT
from .report import COLUMNS, summary_of

#: the teacher features of every 4Q clip (``mer-train teacher-features``)
DEFAULT_FEATURES = CACHE / "teacher-msd-4q-1s.npz"
W_FIXED = 0.3
C = 0.1
GRID = np.round(np.linspace(0.0, 1.0, 21), 2)
CADENCES: tuple[str, ...] = ("1s", "3s", "6s", "10s", "15s", "1p")
CADENCE_TEXT = {"1s": "a patch every 1 s", "3s": "back to back (every 3 s)", "6s": "a patch every 6 s",
                "10s": "a patch every 10 s", "15s": "a patch every 15 s", "1p": "one patch per clip (middle)"}


# ------------------------------------------------------------------------------ the parts


@dataclass(frozen=True)
class Head:
    """A standardised logistic regression per dimension folded into one affine map, so the runtime
    needs only ``features @ weight.T + bias`` (no scaler, no sklearn)."""

    weight: np.ndarray  # [2, d]
    bias: np.ndarray  # [2]

    def logits(self, feats: np.ndarray) -> np.ndarray:
        return np.asarray(feats, np.float64) @ self.weight.T + self.bias


def fit_head(x: np.ndarray, y: np.ndarray, c: float = C) -> Head:
    """``StandardScaler`` + ``LogisticRegression(C=c)`` on ``x`` for each 0/1 column of ``y``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    sc = StandardScaler().fit(x)
    xs = sc.transform(x)
    w, b = [], []
    for d in range(y.shape[1]):
        m = LogisticRegression(C=c, max_iter=5000).fit(xs, y[:, d])
        coef = m.coef_[0] / sc.scale_
        w.append(coef)
        b.append(float(m.intercept_[0] - coef @ sc.mean_))
    return Head(np.array(w, np.float64), np.array(b, np.float64))


def _bce(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def choose_weight(p_cnn: np.ndarray, z: np.ndarray, y: np.ndarray, grid: Sequence[float] = GRID
                  ) -> np.ndarray:
    """Per column, the grid weight whose fused scores have the least cross-entropy against ``y``
    (the smallest such weight on ties)."""
    out = []
    for d in range(y.shape[1]):
        losses = [_bce(y[:, d], fuse(p_cnn[:, d], z[:, d], w)) for w in grid]
        out.append(float(grid[int(np.argmin(losses))]))
    return np.array(out)


def inner_teacher_logits(fit_feats: np.ndarray, test_feats: np.ndarray, y: np.ndarray, clips: Sequence[Clip],
                         idx: np.ndarray, c: float = C, k: int = 5, seed: int = 1) -> np.ndarray:
    """Out-of-fold teacher logits of the clips ``idx`` (a fold's training clips) over inner artist
    folds among them: each scored by a head fitted on the other inner folds only."""
    sub = [clips[i] for i in idx]
    z = np.full((len(idx), y.shape[1]), np.nan)
    for itr, ite in artist_folds(sub, k=k, seed=seed):
        z[ite] = fit_head(fit_feats[idx[itr]], y[idx[itr]], c).logits(test_feats[idx[ite]])
    return z


def fusion_cv(fit_feats: np.ndarray, test_feats: np.ndarray, p_cnn: np.ndarray, y: np.ndarray,
              clips: Sequence[Clip], folds: Sequence[tuple[np.ndarray, np.ndarray]],
              weight: float | None = W_FIXED, c: float = C) -> dict[str, np.ndarray]:
    """Out-of-fold fused scores: per fold a head fitted on ``fit_feats`` of its training clips scores
    ``test_feats`` of its test clips, fused with ``p_cnn`` at ``weight`` (None: nested choice on the
    training clips). Returns ``scores`` and ``teacher`` ([n, 2] probabilities: sigmoid(z)),
    ``teacher_logits``, ``weights`` ([folds, 2])."""
    n = len(y)
    z = np.full((n, 2), np.nan)
    fused = np.full((n, 2), np.nan)
    weights = []
    for tr, te in folds:
        z[te] = fit_head(fit_feats[tr], y[tr], c).logits(test_feats[te])
        if weight is None:
            w = choose_weight(p_cnn[tr], inner_teacher_logits(fit_feats, test_feats, y, clips, tr, c), y[tr])
        else:
            w = np.full(2, float(weight))
        fused[te] = fuse(p_cnn[te], z[te], w)
        weights.append(w)
    return {"scores": fused, "teacher": sigmoid(z), "teacher_logits": z, "weights": np.array(weights)}


def cadence_features(patch_feats: np.ndarray, starts_s: np.ndarray, cadence: str, phase: int = 0
                     ) -> np.ndarray:
    """``[n, d]`` mean of the patches the teacher would run at ``cadence`` ("Ns": starts ``phase``,
    ``phase`` + N, ... seconds; "1p": the single patch ``phase`` patches from the clip's middle, or
    the middle one) out of ``[n, P, d]`` patches starting at ``starts_s`` (NaN past a clip's end)."""
    valid = np.isfinite(patch_feats[:, :, 0])
    n_valid = valid.sum(axis=1)
    out = np.empty((len(patch_feats), patch_feats.shape[2]), np.float64)
    for i in range(len(patch_feats)):
        if cadence == "1p":
            k = min(max(0, (int(n_valid[i]) - 1) // 2 + phase), int(n_valid[i]) - 1)
            idx = np.array([k])
        else:
            every = float(cadence.removesuffix("s"))
            rel = starts_s - phase
            pick = valid[i] & (rel >= 0) & (np.abs(rel / every - np.round(rel / every)) < 1e-6)
            idx = np.flatnonzero(pick)
            if len(idx) == 0:  # a clip shorter than the phase: its first patch
                idx = np.array([0])
        out[i] = patch_feats[i, idx].mean(axis=0)
    return out


def phases(cadence: str, starts_s: np.ndarray) -> list[int]:
    """The phases a cadence can take on the 1-s grid (0..N-1; for one patch, offsets from the middle)."""
    if cadence == "1p":
        return list(range(-12, 13))
    return list(range(int(float(cadence.removesuffix("s")))))


def paired_bootstrap(y: np.ndarray, q: np.ndarray, new: np.ndarray, old: np.ndarray, groups: Sequence[str],
                     n: int = 2000, seed: int = 0) -> dict[str, list[float]]:
    """Artist-cluster paired bootstrap of ``new`` minus ``old`` pooled scores: [difference, 2.5 %,
    97.5 % quantiles] for arousal AUC, valence AUC and quadrant macro-F1. Whole artists are drawn
    (their clips sound alike), the same draw for both models."""
    from scipy.stats import rankdata

    from .metrics import quadrant_of

    def auc(t: np.ndarray, sc: np.ndarray) -> float:  # metrics.auc, vectorised (ties: mean ranks)
        t = t.astype(bool)
        n_pos, n_neg = int(t.sum()), int((~t).sum())
        return float((rankdata(sc)[t].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))

    def macro_f1(qt: np.ndarray, qp: np.ndarray, classes: tuple[int, ...]) -> float:  # metrics.macro_f1
        m = np.bincount((qt - 1) * 4 + (qp - 1), minlength=16).reshape(4, 4).astype(np.float64)
        tp, denom = np.diag(m), m.sum(axis=0) + m.sum(axis=1)
        return float(np.mean(np.divide(2 * tp, denom, out=np.zeros(4), where=denom > 0)))

    names = np.asarray([g.strip().casefold() for g in groups])
    uniq, inv = np.unique(names, return_inverse=True)
    members = [np.flatnonzero(inv == k) for k in range(len(uniq))]
    rng = np.random.default_rng(seed)

    def stats(idx: np.ndarray) -> np.ndarray:
        out = []
        for s in (new, old):
            out.append([auc(y[idx, 0], s[idx, 0]), auc(y[idx, 1], s[idx, 1]),
                        macro_f1(q[idx], quadrant_of(s[idx, 0], s[idx, 1]), (1, 2, 3, 4))])
        return np.array(out[0]) - np.array(out[1])

    full = stats(np.arange(len(y)))
    draws = np.array([stats(np.concatenate([members[k] for k in rng.integers(0, len(uniq), len(uniq))]))
                      for _ in range(n)])
    lo, hi = np.quantile(draws, [0.025, 0.975], axis=0)
    return {k: [round(float(full[i]), 4), round(float(lo[i]), 4), round(float(hi[i]), 4)]
            for i, k in enumerate(("arousal_auc", "valence_auc", "quadrant_macro_f1"))}


# ------------------------------------------------------------------------------ the experiment


def load_features(path: Path, clips: Sequence[Clip]) -> tuple[np.ndarray, np.ndarray, str]:
    """``patch_features`` [n, P, 200] in clip order, ``patch_starts`` [P] s, the ONNX file's sha256."""
    try:
        z = np.load(path)
        ids = [str(i) for i in z["ids"]]
        pf, st, sha = z["patch_features"].astype(np.float64), z["patch_starts"].astype(np.float64), str(
            z["model_sha256"])
    except (OSError, KeyError, ValueError) as e:
        raise SystemExit(f"fusion: error: {path}: not a teacher_features npz ({e})") from None
    pos = {i: k for k, i in enumerate(ids)}
    missing = [c.id for c in clips if c.id not in pos]
    if missing:
        raise SystemExit(f"fusion: error: {path}: no features for {len(missing)} clips (e.g. {missing[0]})")
    return pf[[pos[c.id] for c in clips]], st, sha


def load_cnn(name: str, clips: Sequence[Clip]) -> np.ndarray:
    """A complete cv spec result's out-of-fold ``[n, 2]`` clip scores, in clip order."""
    path = RESULTS / f"{name}.json"
    res = json.loads(path.read_text())
    pos = {i: k for k, i in enumerate(res["ids"])}
    if any(c.id not in pos for c in clips) or any(r is None for r in res["oof"]):
        raise SystemExit(f"fusion: error: {path} is not a complete 5-fold result")
    return np.array(res["oof"], np.float64)[[pos[c.id] for c in clips]]


def row_result(name: str, scores: np.ndarray, clips: Sequence[Clip], folds, extra: dict) -> dict:
    """A result in cv spec's shape (``report.py`` reads it): per-fold and pooled metrics, oof."""
    from .fit import clip_metrics, summarize

    y = np.array([[c.arousal_high, c.valence_high] for c in clips], np.float32)
    q = np.array([c.quadrant for c in clips])
    per_fold = [clip_metrics(y[te], scores[te], q[te]) for _, te in folds]
    return {"name": name, **extra, "ids": [c.id for c in clips], "folds_run": list(range(len(folds))),
            "folds": per_fold, **summarize(per_fold), "pooled": clip_metrics(y, scores, q),
            "oof": [[round(float(a), 7), round(float(b), 7)] for a, b in scores]}


def short(s: dict) -> dict[str, float]:
    """The summary's numbers of one row (README's columns)."""
    keys = {"arousal_auc": ("arousal", "auc"), "valence_auc": ("valence", "auc"),
            "sad_vs_calm_auc": ("valence_low", "auc"), "arousal_bal_acc": ("arousal", "balanced_accuracy"),
            "valence_bal_acc": ("valence", "balanced_accuracy"), "quadrant_acc": ("quadrant", "accuracy"),
            "quadrant_macro_f1": ("quadrant", "macro_f1")}
    return {k: round(float(s[a][b]), 4) for k, (a, b) in keys.items()}


def run(features: Path, cnn_names: Sequence[str], weight: float, write: bool, command: str,
        n_boot: int = 2000) -> dict:
    """Every row; writes the result files when ``write``."""
    from tqdm import tqdm

    clips = load_4q()
    pf, starts, sha = load_features(features, clips)
    y = np.array([[c.arousal_high, c.valence_high] for c in clips], np.float64)
    folds = artist_folds(clips, k=5, seed=0)
    full = np.nanmean(pf, axis=1)  # every 1-s patch: what the head is fitted on
    common = {"kind": "fusion", "command": command, "features": str(features.relative_to(ROOT))
              if features.is_relative_to(ROOT) else str(features), "teacher_sha256": sha, "head_c": C,
              "protocol": "artist_folds(clips, k=5, seed=0); head fitted on each fold's training clips' "
                          "mean features (all 1-s patches); fused with the CNN's out-of-fold clip scores"}
    summary: dict = {"date": dt.date.today().isoformat(), **common, "rows": {}}
    tables: dict[str, dict] = {}
    jobs = [(cnn, cad) for cnn in cnn_names for cad in CADENCES]
    for cnn, cad in tqdm(jobs, desc="fusion CV", unit="row"):
        p_cnn = load_cnn(cnn, clips)
        suffix = "" if cnn == cnn_names[0] else "-" + cnn.rsplit("-", 1)[-1]
        test0 = cadence_features(pf, starts, cad, 0)
        fixed = fusion_cv(full, test0, p_cnn, y, clips, folds, weight)
        nested = fusion_cv(full, test0, p_cnn, y, clips, folds, None)
        spread: dict[str, list] = {"teacher": [], "fixed": []}
        for ph in phases(cad, starts):  # the other phases: fixed weight only (cheap)
            r = fusion_cv(full, cadence_features(pf, starts, cad, ph), p_cnn, y, clips, folds, weight)
            spread["fixed"].append(short(summary_of(r["scores"], clips)))
            spread["teacher"].append(short(summary_of(r["teacher"], clips)))
        rows = {f"teacher alone, {CADENCE_TEXT[cad]}": ("teacher", fixed["teacher"], None),
                f"fused w={weight:g}, {CADENCE_TEXT[cad]}": ("w03", fixed["scores"], fixed["weights"]),
                f"fused, nested weight, {CADENCE_TEXT[cad]}": ("nested", nested["scores"], nested["weights"])}
        for label, (variant, scores, ws) in rows.items():
            s = summary_of(scores, clips)
            key = f"fusion-{variant}-{cad}{suffix}"
            summary["rows"][key] = {"label": label, "cnn": cnn, "cadence": cad, "variant": variant,
                                    **short(s)}
            if ws is not None:
                summary["rows"][key]["weights_per_fold"] = ws.tolist()
            if variant == "w03":  # is the gain over the CNN alone more than the draw of artists?
                q = np.array([c.quadrant for c in clips])
                summary["rows"][key]["bootstrap_vs_cnn"] = paired_bootstrap(
                    y, q, scores, p_cnn, [c.artist for c in clips], n=n_boot)
            if variant != "nested":
                v = "fixed" if variant == "w03" else "teacher"
                summary["rows"][key]["phase_min"] = {k: min(d[k] for d in spread[v]) for k in spread[v][0]}
                summary["rows"][key]["phase_max"] = {k: max(d[k] for d in spread[v]) for k in spread[v][0]}
            tables[f"{label} [{cnn}]"] = s
            if write and not suffix:
                res = row_result(key, scores, clips, folds, {**common, "cnn": cnn, "cadence": cad,
                                                               "variant": variant, "weight": weight if
                                                               variant == "w03" else None,
                                                               **({"weights_per_fold": ws.tolist()}
                                                                  if ws is not None else {})})
                (RESULTS / f"{key}.json").write_text(json.dumps(res, indent=1) + "\n")
        for cnn_row in (cnn,):
            tables.setdefault(f"CNN alone [{cnn_row}]", summary_of(p_cnn, clips))
    if write:
        (RESULTS / "fusion-summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    summary["table"] = tables
    return summary


def head_card(features: Path, out: Path, teacher_onnx: Path, command: str, rows: dict | None = None) -> dict:
    """Fit the head on all 716 clips' mean features and write it as JSON for the runtime, with the
    CV rows of the fixed-weight fusion per cadence (``rows``: ``run``'s summary rows)."""
    clips = load_4q()
    pf, _, sha = load_features(features, clips)
    from mer_live.common.hashing import sha256_of

    if sha != sha256_of(teacher_onnx):
        raise SystemExit(f"fusion: error: {features} was computed with another teacher file "
                         f"than {teacher_onnx}")
    y = np.array([[c.arousal_high, c.valence_high] for c in clips], np.float64)
    head = fit_head(np.nanmean(pf, axis=1), y, C)
    card = {
        "name": out.stem,
        "kind": "linear head on the teacher's features: teacher logits z = features @ weight.T + bias",
        "teacher": teacher_onnx.name, "teacher_sha256": sha,
        "input": "features: [200] (or [n, 200]), the teacher's 'features' output for one 3-s patch",
        "outputs": ["arousal", "valence"],
        "weight": head.weight.tolist(), "bias": head.bias.tolist(),
        "fusion": {"w": W_FIXED, "formula": "p = sigmoid((1 - w) * logit(p_cnn) + w * z), "
                   "z = mean of the per-patch teacher logits available, logit(p) = ln(p / (1 - p)), "
                   "p clipped to [1e-6, 1 - 1e-6]"},
        "training": {"clips": len(clips), "data": "4Q (716 clips), quadrant halves as 0/1 targets",
                     "features": "mean over each clip's patches every 1 s of the teacher's features, "
                                 "fed by train.cache.load_audio (the runtime's decode chain)",
                     "model": f"StandardScaler + LogisticRegression(C={C}) per dimension, folded into "
                              "one affine map"},
        "command": command, "created": dt.date.today().isoformat(),
    }
    if rows:
        card["cv"] = {
            "protocol": "artist_folds(clips, 5, 0), pooled over the 716 out-of-fold clips; the head "
                        "fitted per fold on the training clips; CNN = the shipped recipe's out-of-fold "
                        "scores (results/abl-eq+band.json); train/fusion_head.py",
            "rows": {k: {m: v for m, v in r.items() if m not in ("label", "cnn", "variant", "phase_min",
                                                                  "phase_max", "weights_per_fold")}
                     for k, r in rows.items() if r["variant"] == "w03" and r["cnn"] == "abl-eq+band"},
        }
    out.write_text(json.dumps(card, indent=1) + "\n")
    return card


def main(argv: list[str] | None = None, prog: str = "mer-train cv fusion") -> int:
    """``mer-train cv fusion`` (the CV rows), ``mer-train ship teacher-head`` (rows + ``--head``)."""
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    ap.add_argument("--features", type=Path, default=DEFAULT_FEATURES)
    ap.add_argument("--cnn", nargs="+", default=["abl-eq+band", "abl-eq+band-s2"],
                    help="complete cv spec results (the first is the shipped recipe's)")
    ap.add_argument("--weight", type=float, default=W_FIXED)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--bootstrap", type=int, default=2000, help="artist-bootstrap draws per fused row")
    ap.add_argument("--head", type=Path, default=None, help="also fit the head on all clips, write it here")
    ap.add_argument("--teacher", type=Path, default=MODELS / "musicnn-msd.onnx")
    args = ap.parse_args(argv)
    if not args.features.is_file():
        print(f"fusion: error: {args.features} not found (mer-train teacher-features)",
              file=sys.stderr)
        return 2
    if not 0.0 <= args.weight <= 1.0:
        print(f"fusion: error: --weight must be in [0, 1], got {args.weight}", file=sys.stderr)
        return 2
    command = shlex.join([*prog.split(), *(sys.argv[1:] if argv is None else argv)])
    summary = run(args.features, args.cnn, args.weight, not args.no_write, command, args.bootstrap)
    clips = load_4q()
    rows = {"majority baseline (always Q1)": summary_of(np.full((len(clips), 2), 0.75), clips),
            **summary["table"]}
    print(format_table(rows, "artist-grouped 5-fold CV, pooled over the 716 out-of-fold clip scores "
                       "(see fusion.py's docstring)", columns=COLUMNS, majority_row=False), end="")
    if args.head:
        card = head_card(args.features, args.head, args.teacher, command, summary["rows"])
        print(f"wrote {args.head}: head on {card['training']['clips']} clips")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
