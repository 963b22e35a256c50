"""The room model's teacher head: the fused ``--room`` path's linear head on musicnn's features,
fitted on all 716 clips' clean features AND their training-room versions (and, with
``--stage-versions N``, their stage-chain training versions: the shipped head has 2).

    mer-train ship room-head --cnn room-stage --stage-versions 2 --out models/mer-room-head.json

Why a head of its own: through a room the teacher's features move (its clean head reads room audio
as tense and sad: mean valence 0.19 on the room test); a head that has seen the same clips through
simulated TRAINING rooms (``train.room``'s training bank, never a test room) keeps the teacher's
ranking and its centre. ``train.room_fusion`` cross-validated exactly this head per
fold (its ``fused-roomhead`` row, docs/room.md); this script fits it once on every clip, the same
way, for the shipped card. The training-room features are ``room_fusion``'s cache (the teacher on
mer-analyze's patches every 15 s of each training-room version): run ``room_fusion`` first.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import sys
from pathlib import Path

import numpy as np

from .data import load_4q, targets
from .fusion_head import DEFAULT_FEATURES, C, fit_head, load_features
from .paths import MODELS, RESULTS
from .room_fusion import OUT


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="mer-train ship room-head", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cnn", default="room-model",
                    help="the cv spec result whose clip order room_fusion used")
    ap.add_argument("--room-versions", type=int, default=3)
    ap.add_argument("--stage-versions", type=int, default=0,
                    help="stage-chain training versions too (room_fusion --stage-versions)")
    ap.add_argument("--every", type=float, default=15.0)
    ap.add_argument("--features", type=Path, default=DEFAULT_FEATURES, help="clean 1-s teacher features")
    ap.add_argument("--teacher", type=Path, default=MODELS / "musicnn-msd.onnx")
    ap.add_argument("--out", type=Path, default=MODELS / "mer-room-head.json")
    args = ap.parse_args(argv)
    from mer_live.common.hashing import sha256_of

    res = json.loads((RESULTS / f"{args.cnn}.json").read_text())
    by_id = {c.id: c for c in load_4q()}
    clips = [by_id[i] for i in res["ids"]]
    pf, _, sha = load_features(args.features, clips)
    if sha != sha256_of(args.teacher):
        raise SystemExit(f"room_head: error: {args.features} was computed with another teacher file")
    rooms = []
    names = [f"trainroom{r}" for r in range(args.room_versions)]
    names += [f"trainstage{r}" for r in range(args.stage_versions)]
    for name in names:
        f = OUT / f"teacher-{name}-{args.every:g}s.npy"
        if not f.is_file():
            raise SystemExit(f"room_head: error: {f} not found (run mer-train cv room-fusion first)")
        rooms.append(np.load(f))
    y = targets(clips)
    x = np.concatenate([np.nanmean(pf, axis=1), *rooms])
    head = fit_head(x, np.concatenate([y] * (1 + len(rooms))), C)
    command = "mer-train ship room-head " + shlex.join(sys.argv[1:] if argv is None else argv)
    card = {
        "name": args.out.stem,
        "kind": "linear head on the teacher's features: teacher logits z = features @ weight.T + bias",
        "teacher": args.teacher.name, "teacher_sha256": sha,
        "input": "features: [200] (or [n, 200]), the teacher's 'features' output for one 3-s patch",
        "outputs": ["arousal", "valence"],
        "weight": head.weight.tolist(), "bias": head.bias.tolist(),
        "fusion": {"w": 0.3, "formula": "p = sigmoid((1 - w) * logit(p_cnn) + w * z), as musicnn-msd-head"},
        "training": {"clips": len(clips),
                     "data": f"4Q (716 clips) clean and through {args.room_versions} simulated training-room "
                             "versions each (train.room, training bank)"
                             + (f" and {args.stage_versions} stage-chain training versions each "
                                "(cache.load_stage_audio, never the stage test's draws)"
                                if args.stage_versions else "") + ", quadrant halves as 0/1 targets",
                     "features": "clean: mean over each clip's patches every 1 s; rooms: mean over "
                                 f"patches every {args.every:g} s (train/room_fusion.py)",
                     "model": f"StandardScaler + LogisticRegression(C={C}) per dimension, folded into "
                              "one affine map"},
        "cv": f"train/experiments/results/room-fusion-{args.cnn}.json, row fused-roomhead (docs/room.md)",
        "command": command, "created": dt.date.today().isoformat(),
    }
    args.out.write_text(json.dumps(card, indent=1) + "\n")
    print(f"wrote {args.out}: head on {len(x)} feature rows ({len(clips)} clips x {1 + len(rooms)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
