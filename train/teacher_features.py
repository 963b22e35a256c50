"""Per-patch teacher features of every 4Q clip: the ONNX teacher (``models/musicnn-msd.onnx``) fed by
the runtime's own decode chain, the inputs of ``fusion.py``'s cross-validation.

``mer-train teacher-features [--hop 1] [--out cache/teacher-msd-4q-1s.npz]``

Why not ``musicnn_features.py``'s: that one decodes with musicnn's librosa chain inside TensorFlow;
the runtime fusion will feed the ONNX file from mer-live's chain (soundfile + ``prepare_offline``:
DC blocker + soxr HQ, ``train.cache.load_audio``), so the CV must score exactly that. Patches start
every ``--hop`` seconds (default 1 s, so any cadence that is a whole number of seconds can be
cut from the cache); each is the model's 48128-sample window (``teacher.patch_windows``).

Output npz: ``ids``; ``patch_features`` ``[n, P, 200]`` and ``patch_tags`` ``[n, P, 50]`` (NaN
past a clip's last patch); ``patch_starts`` ``[P]`` seconds; ``features`` / ``tags`` (the mean over
a clip's patches); ``model_sha256`` of the ONNX file used. Derived from the data: keep it out of git.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from . import teacher
from .cache import load_audio
from .data import load_4q
from .paths import CACHE

DEFAULT_OUT = CACHE / "teacher-msd-4q-1s.npz"


def clip_patch_features(sess, y: np.ndarray, hop_seconds: float, batch: int = 8) -> dict[str, np.ndarray]:
    """The teacher's outputs for the patches of one clip ``y`` (16 kHz) every ``hop_seconds``."""
    starts = teacher.patch_starts(len(y), hop_seconds)
    out = teacher.run_onnx(sess, teacher.patch_windows(y, starts), batch=batch)
    return {"starts": starts, **out}


def compute(onnx_path: Path, hop_seconds: float, threads: int, batch: int) -> dict[str, np.ndarray]:
    """Every 4Q clip's patch features (progress bar per clip)."""
    from tqdm import tqdm

    clips = load_4q()
    audio = load_audio(clips, teacher.SR)
    if audio.dropped:
        print(f"teacher_features: warning: {len(audio.dropped)} clips not decoded, e.g. {audio.dropped[0]}",
              file=sys.stderr)
    sess = teacher.session(onnx_path, threads=threads)
    per = []
    for y in tqdm(audio, desc="teacher features", unit="clip"):
        per.append(clip_patch_features(sess, y, hop_seconds, batch))
    n_p = max(len(p["starts"]) for p in per)
    feats = np.full((len(per), n_p, teacher.N_FEATURES), np.nan, np.float32)
    tags = np.full((len(per), n_p, 50), np.nan, np.float32)
    for k, p in enumerate(per):
        feats[k, : len(p["starts"])] = p["features"]
        tags[k, : len(p["starts"])] = p["tags"]
    if any(len(p["starts"]) == 0 for p in per):
        raise SystemExit("teacher_features: error: a clip is shorter than one patch (2.992 s)")
    return {"ids": np.array([c.id for c in audio.clips]), "patch_features": feats, "patch_tags": tags,
            "patch_starts": (np.arange(n_p) * round(hop_seconds * teacher.SR) / teacher.SR
                             ).astype(np.float32),
            "patch_seconds": np.float32(teacher.PATCH_SAMPLES / teacher.SR),
            "features": np.nanmean(feats, axis=1), "tags": np.nanmean(tags, axis=1),
            "model_sha256": np.array(teacher.sha256_of(onnx_path))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="mer-train teacher-features", description=__doc__.split("\n\n")[0])
    ap.add_argument("--onnx", type=Path, default=teacher.ONNX_PATH)
    ap.add_argument("--hop", type=float, default=1.0, help="seconds between patch starts")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=8, help="patches per onnxruntime call")
    args = ap.parse_args(argv)
    if not args.onnx.is_file():
        print(f"teacher_features: error: {args.onnx} not found (python -m train.teacher build)",
              file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    res = compute(args.onnx, args.hop, args.threads, args.batch)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, **res)
    n = int(np.isfinite(res["patch_features"][:, :, 0]).sum())
    print(f"wrote {args.out}: {len(res['ids'])} clips, {n} patches every {args.hop:g} s, "
          f"{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
