"""The fused default's stage-test row: the same out-of-fold protocol as ``fusion.py``, scored on the
test clips played through ``augment.stage_degrade`` (a microphone in front of a PA in a room, the
audio every stage-test row in docs/model.md was scored on).

Per artist fold the teacher's head is fitted on the training clips' CLEAN features (as shipped);
the test clips' teacher logits come from their stage-degraded audio at the cadence's patches and are
fused (w from the head file) with the CNN's stage-test out-of-fold scores (``stage_oof`` of the
shipped recipe's cv spec result).

    mer-train cv fusion-stage --cadence 3 15

Writes train/experiments/results/fusion-stage-<N>s.json (report.py reads it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mer_live.common.fusion import fuse

from .cache import load_audio, load_stage_audio
from .data import artist_folds, load_4q
from .fusion_head import DEFAULT_FEATURES, W_FIXED, fit_head, load_features, row_result
from .paths import CACHE, MODELS, RESULTS

PATCH, PRE = 47872, 256


def patch_starts(n: int, every_s: float, rate: int = 16000) -> np.ndarray:
    """Starts every ``every_s`` from 0 while a patch fits (mer-analyze's placement)."""
    s = np.arange(0, n - PATCH + 1, int(round(every_s * rate)))
    return s if len(s) else np.zeros(1, int)


def stage_features(stage: list[np.ndarray], every_s: float, teacher_path: Path) -> np.ndarray:
    """``[n, 200]``: each clip's mean teacher features over its stage audio's patches."""
    from tqdm import tqdm

    from mer_live.inference.teacher import Teacher

    t = Teacher(teacher_path, threads=1)
    out = []
    for x in tqdm(stage, desc=f"teacher on stage audio, every {every_s:g} s", unit="clip"):
        st = patch_starts(len(x), every_s)
        w = np.zeros((len(st), PRE + PATCH), np.float32)
        for i, s in enumerate(st):
            seg = x[max(0, s - PRE) : s + PATCH]
            w[i, PRE + PATCH - len(seg) :] = seg
        out.append(t.features(w).mean(axis=0))
    return np.array(out, np.float64)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="mer-train cv fusion-stage", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cadence", type=float, nargs="+", default=[3.0, 15.0])
    ap.add_argument("--cnn", default="abl-eq+band", help="cv spec result with stage_oof")
    ap.add_argument("--features", type=Path, default=DEFAULT_FEATURES)
    ap.add_argument("--teacher", type=Path, default=MODELS / "musicnn-msd.onnx")
    args = ap.parse_args(argv)
    clips = load_4q()
    audio = load_audio(clips, 16000, cache_dir=CACHE)
    clips = audio.clips
    stage = load_stage_audio(clips, list(audio), 16000, CACHE)
    pf, _, _ = load_features(args.features, clips)
    clean = np.nanmean(pf, axis=1)
    res = json.loads((RESULTS / f"{args.cnn}.json").read_text())
    pos = {i: k for k, i in enumerate(res["ids"])}
    p_cnn = np.array(res["stage_oof"], np.float64)[[pos[c.id] for c in clips]]
    y = np.array([[c.arousal_high, c.valence_high] for c in clips], np.float64)
    folds = artist_folds(clips, k=5, seed=0)
    for every in args.cadence:
        feats = stage_features(stage, every, args.teacher)
        fused = np.zeros_like(p_cnn)
        for tr, te in folds:
            head = fit_head(clean[tr], y[tr])
            fused[te] = fuse(p_cnn[te], head.logits(feats[te]), W_FIXED)
        name = f"fusion-stage-{every:g}s"
        row = row_result(name, fused, clips, folds, {
            "kind": "fusion-stage", "cnn": args.cnn, "cadence": f"{every:g}s", "weight": W_FIXED,
            "command": "mer-train cv fusion-stage --cadence "
                       + " ".join(f"{c:g}" for c in args.cadence),
            "protocol": "artist_folds(clips, 5, 0); head on the training clips' clean features; test clips' "
                        "teacher features and CNN scores (stage_oof) from augment.stage_degrade audio"})
        (RESULTS / f"{name}.json").write_text(json.dumps(row, indent=1))
        pooled = row["pooled"]
        print(f"{name}: arousal AUC {pooled['arousal_auc']:.4f} valence AUC "
              f"{pooled['valence_auc']:.4f} macro-F1 {pooled['quadrant_macro_f1']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
