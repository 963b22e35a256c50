"""The room test of the FUSED path (issue #19 with #17's fusion): out-of-fold CNN models and the
musicnn teacher on the same room-microphone audio, fused as mer-analyze fuses, with re-centring.

    mer-train cv room-fusion --cnn room-eqband --models cache/models/room-eqband
    mer-train cv room-fusion --cnn room-model --models cache/models/room-model

Protocol (docs/room.md), the same as ``train.roomtest`` and ``fusion_stage``:

* folds: ``artist_folds(clips, 5, 0)``; fold k's CNN models (``--models DIR/fold<k>-seed*.pt``,
  the cv spec ``--save-models`` of ``--cnn``) score fold k's test clips, windows 1 s apart;
* audio: clean; the old stage test (``augment.stage_degrade``); the room test (``train.room``, test
  room bank, shows of 8 clips, degradation seeds ``--seeds``); the CALIBRATION rooms (training
  bank, seed ``roomtest.CALIB_SEED``, never a test room);
* teacher: ``mer_live.inference.teacher.Teacher`` (the shipped ONNX) on mer-analyze's patches (a patch
  starting every ``--every`` s from 0), one mean feature vector per clip; fold k's head
  (``fusion.fit_head``: C = 0.1) is fitted on fold k's TRAINING clips' clean features (mean of all
  1-s patches, as the shipped head) or, for the ``roomhead`` rows, on those plus the training clips'
  TRAINING-ROOM versions (training bank, seeds 0..2: ``roomtest.room_training_audio``) and, with
  ``--stage-versions N``, their stage-chain training versions (``cache.load_stage_audio``);
* fusion: ``sigmoid(0.7 logit(mean CNN window) + 0.3 z)`` per clip (``fusion.W_FIXED``);
* re-centring: logit offsets fitted so that the mean out-of-fold clip score in the calibration
  rooms equals the mean on clean audio; fold k uses the mean of the OTHER folds' offsets (no test
  clip, test room or label of fold k). ``cnn+rc``: the CNN's window offsets (what the card's
  ``room.offsets`` holds); ``fused+rc``: those, then a teacher-logit offset fitted after them
  (``room.teacher_offsets``), so the CNN alone (``--no-teacher``) and the fusion are both centred;
  ``fused+trc``: the CNN as it is, only the teacher's logits re-centred.

CNN window outputs and teacher features are cached under ``cache/room-fusion/``. Writes
``results/room-fusion-<cnn>.json``: per row and test, pooled metrics (mean over the room seeds),
the quadrant confusion, mean outputs and their shift from the same clips' clean means.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from mer_live.common.fusion import logit, sigmoid

from .cache import load_audio, load_stage_audio
from .cv_spec import load_fold_models
from .data import artist_folds, load_4q, targets
from .fusion_head import DEFAULT_FEATURES, W_FIXED, fit_head, load_features
from .metrics import quadrant_of
from .models import ModelConfig
from .paths import CACHE, MODELS, RESULTS
from .room import TRAIN_BANK, RoomConfig
from .roomtest import (
    CALIB_SEED,
    load_room_audio,
    mean_over_seeds,
    room_training_audio,
    summary,
    window_scores,
)

log = logging.getLogger("room_fusion")
PATCH, PRE = 47872, 256
OUT = CACHE / "room-fusion"


def patch_starts(n: int, every_s: float, rate: int = 16000) -> np.ndarray:
    """mer-analyze's placement: starts every ``every_s`` from 0 while a patch fits."""
    s = np.arange(0, n - PATCH + 1, int(round(every_s * rate)))
    return s if len(s) else np.zeros(1, int)


def teacher_features(name: str, audio: Sequence[np.ndarray], every_s: float, teacher_path: Path
                     ) -> np.ndarray:
    """``[n, 200]``: each clip's mean teacher features over its patches (cached by ``name``)."""
    f = OUT / f"teacher-{name}-{every_s:g}s.npy"
    if f.is_file():
        return np.load(f)
    from tqdm import tqdm

    from mer_live.inference.teacher import Teacher

    t = Teacher(teacher_path, threads=1)
    out = []
    for x in tqdm(audio, desc=f"teacher {name}", unit="clip", mininterval=10):
        st = patch_starts(len(x), every_s)
        w = np.zeros((len(st), PRE + PATCH), np.float32)
        for i, s in enumerate(st):
            seg = np.asarray(x[max(0, s - PRE) : s + PATCH], np.float32)
            w[i, PRE + PATCH - len(seg) :] = seg
        out.append(t.features(w).mean(axis=0))
    a = np.array(out, np.float64)
    OUT.mkdir(parents=True, exist_ok=True)
    np.save(f, a)
    return a


def cnn_windows(tag: str, name: str, audio: Sequence[np.ndarray], folds, fold_models) -> list[np.ndarray]:
    """Per clip, the ``[windows, 2]`` outputs of its fold's models (cached by ``tag`` and ``name``)."""
    f = OUT / f"cnn-{tag}-{name}.npz"
    if f.is_file():
        z = np.load(f)
        return [z[f"c{i}"] for i in range(len(audio))]
    out: list[np.ndarray | None] = [None] * len(audio)
    for k, (_, te) in enumerate(folds):
        log.info("cnn %s %s fold %d", tag, name, k)
        for i, w in zip(te, window_scores(fold_models[k], [audio[i] for i in te]), strict=True):
            out[i] = w.astype(np.float32)
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez(f, **{f"c{i}": w for i, w in enumerate(out)})
    return [np.asarray(w) for w in out]


def shift_mean(wins: Sequence[np.ndarray], offset: np.ndarray) -> np.ndarray:
    """``[n, 2]``: each clip's mean window output after adding ``offset`` to the window logits."""
    return np.stack([sigmoid(logit(w) + offset[None, :]).mean(axis=0) for w in wins])


def bisect(fn: Callable[[float], float], target: float) -> float:
    """The offset in [-8, 8] where the increasing ``fn`` reaches ``target``."""
    lo, hi = -8.0, 8.0
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if fn(mid) < target else (lo, mid)
    return (lo + hi) / 2


def out_of_fold(per_fold: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Fold k's offsets: the mean of the other folds' calibrations."""
    ks = sorted(per_fold)
    return {k: np.mean([per_fold[j] for j in ks if j != k], axis=0) for k in ks}


def quad_confusion(y: np.ndarray, sc: np.ndarray, quads: np.ndarray) -> list[list[int]]:
    """Rows: true quadrant 1..4; columns: predicted (scores at 0.5)."""
    pred = quadrant_of(sc[:, 0], sc[:, 1])
    return np.bincount((quads - 1) * 4 + (pred - 1), minlength=16).reshape(4, 4).tolist()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="mer-train cv room-fusion", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cnn", required=True, help="cv spec result name of the CNN (its ids and folds)")
    ap.add_argument("--models", type=Path, required=True, help="its --save-models folder")
    ap.add_argument("--seeds", default="0,1,2", help="room-test degradation seeds")
    ap.add_argument("--every", type=float, default=15.0, help="teacher patch cadence (mer-analyze's)")
    ap.add_argument("--room-versions", type=int, default=3, help="training-room versions for the room head")
    ap.add_argument("--stage-versions", type=int, default=0,
                    help="stage-chain training versions (cache.load_stage_audio version 0..N-1) for the room "
                         "head too, as cv spec --stage-train")
    ap.add_argument("--features", type=Path, default=DEFAULT_FEATURES, help="clean 1-s teacher features")
    ap.add_argument("--teacher", type=Path, default=MODELS / "musicnn-msd.onnx")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    res = json.loads((RESULTS / f"{args.cnn}.json").read_text())
    by_id = {c.id: c for c in load_4q()}
    clips = [by_id[i] for i in res["ids"]]
    mcfg = ModelConfig.from_dict(json.loads((args.models / "model.json").read_text()))
    sr = mcfg.sample_rate
    audio = load_audio(clips, sr, cache_dir=CACHE, progress=False)
    if audio.dropped:
        raise SystemExit(f"room_fusion: error: {len(audio.dropped)} clips did not decode")
    audio = list(audio)
    folds = artist_folds(clips, k=5, seed=0)
    fold_models = {}
    for k in range(5):
        ms = load_fold_models(args.models, mcfg, k)
        if not ms:
            raise SystemExit(f"room_fusion: error: no fold-{k} models in {args.models}")
        fold_models[k] = ms
    y, quads = targets(clips), np.array([c.quadrant for c in clips])
    tag = args.models.name

    # the audio of every test, the CNN's windows and the teacher's features on it
    tests: dict[str, tuple[list[np.ndarray], np.ndarray]] = {}

    def add(name: str, src: Sequence[np.ndarray]) -> None:
        tests[name] = (cnn_windows(tag, name, src, folds, fold_models),
                       teacher_features(name, src, args.every, args.teacher))

    add("clean", audio)
    add("stage", load_stage_audio(clips, audio, sr, CACHE, progress=False))
    cal, _ = load_room_audio(clips, audio, sr, CALIB_SEED, replace(RoomConfig(), bank=TRAIN_BANK), CACHE,
                             progress=False)
    add("calib", cal)
    del cal
    for s in seeds:
        room, _ = load_room_audio(clips, audio, sr, s, RoomConfig(), CACHE, progress=False)
        add(f"room{s}", room)
        del room
    train_rooms = []
    for r in range(args.room_versions):
        ra = room_training_audio(clips, audio, sr, r, "none", CACHE)
        train_rooms.append(teacher_features(f"trainroom{r}", ra, args.every, args.teacher))
        del ra
    for r in range(args.stage_versions):
        sa = load_stage_audio(clips, audio, sr, CACHE, progress=False, version=r)
        train_rooms.append(teacher_features(f"trainstage{r}", sa, args.every, args.teacher))
        del sa

    # heads per fold: clean (as shipped) and room (clean + training rooms + stage-chain versions)
    pf, _, _ = load_features(args.features, clips)
    clean_all = np.nanmean(pf, axis=1)
    heads = {"clean": {}, "room": {}}
    for k, (tr, _) in enumerate(folds):
        heads["clean"][k] = fit_head(clean_all[tr], y[tr])
        xs = np.concatenate([clean_all[tr]] + [f[tr] for f in train_rooms])
        heads["room"][k] = fit_head(xs, np.concatenate([y[tr]] * (1 + len(train_rooms))))

    def z_of(test: str, head: str) -> np.ndarray:
        z = np.zeros((len(clips), 2))
        for k, (_, te) in enumerate(folds):
            z[te] = heads[head][k].logits(tests[test][1][te])
        return z

    def fold_mean(sc: np.ndarray, te: np.ndarray) -> np.ndarray:
        return sc[te].mean(axis=0)

    # the re-centring offsets from the calibration rooms, out of fold
    cal_w = tests["calib"][0]
    clean_cnn = shift_mean(tests["clean"][0], np.zeros(2))
    cnn_cal: dict[int, np.ndarray] = {}
    for k, (_, te) in enumerate(folds):
        target = fold_mean(clean_cnn, te)
        cnn_cal[k] = np.array([bisect(lambda o, j=j, te=te: shift_mean([cal_w[i] for i in te],
                                                                 np.eye(2)[j] * o)[:, j].mean(), target[j])
                               for j in range(2)])
    cnn_off = out_of_fold(cnn_cal)

    def fused(test: str, head: str, cnn_rc: bool, t_off: dict[int, np.ndarray] | None) -> np.ndarray:
        wins, z = tests[test][0], z_of(test, head)
        out = np.zeros((len(clips), 2))
        for k, (_, te) in enumerate(folds):
            p = shift_mean([wins[i] for i in te], cnn_off[k] if cnn_rc else np.zeros(2))
            zz = z[te] + (t_off[k] if t_off is not None else 0.0)
            out[te] = sigmoid((1 - W_FIXED) * logit(p) + W_FIXED * zz)
        return out

    def teacher_offsets(head: str, cnn_rc: bool) -> dict[int, np.ndarray]:
        """Per fold, the teacher-logit offset that centres the fused calibration scores (after the
        CNN's own offsets when ``cnn_rc``); then out of fold."""
        clean_f = fused("clean", head, False, None)
        zc = z_of("calib", head)
        per: dict[int, np.ndarray] = {}
        for k, (_, te) in enumerate(folds):
            p = shift_mean([cal_w[i] for i in te], cnn_cal[k] if cnn_rc else np.zeros(2))
            base = (1 - W_FIXED) * logit(p)
            per[k] = np.array([bisect(lambda o, j=j, te=te, b=base: sigmoid(
                b[:, j] + W_FIXED * (zc[te, j] + o)).mean(),
                                      fold_mean(clean_f, te)[j]) for j in range(2)])
        return out_of_fold(per)

    def cnn_recentred(test: str) -> np.ndarray:
        out = np.zeros((len(clips), 2))
        for k, (_, te) in enumerate(folds):
            out[te] = shift_mean([tests[test][0][i] for i in te], cnn_off[k])
        return out

    def teacher_alone(test: str, head: str, off: dict[int, np.ndarray] | None) -> np.ndarray:
        z = z_of(test, head)
        for k, (_, te) in enumerate(folds):
            if off is not None:
                z[te] = z[te] + off[k]
        return sigmoid(z)

    def teacher_alone_offsets(head: str) -> dict[int, np.ndarray]:
        zc, zclean = z_of("calib", head), sigmoid(z_of("clean", head))
        return out_of_fold({k: np.array([bisect(lambda o, j=j, te=te: sigmoid(zc[te, j] + o).mean(),
                                                zclean[te, j].mean()) for j in range(2)])
                            for k, (_, te) in enumerate(folds)})

    t_off = {h: teacher_offsets(h, True) for h in ("clean", "room")}
    t_only = {h: teacher_offsets(h, False) for h in ("clean", "room")}  # the CNN left as it is
    t_alone = {h: teacher_alone_offsets(h) for h in ("clean", "room")}
    rows: dict[str, Callable[[str], np.ndarray]] = {
        "cnn": lambda t: shift_mean(tests[t][0], np.zeros(2)),
        "cnn+rc": lambda t: cnn_recentred(t),
        "teacher": lambda t: teacher_alone(t, "clean", None),
        "teacher+rc": lambda t: teacher_alone(t, "clean", t_alone["clean"]),
        "teacher-roomhead": lambda t: teacher_alone(t, "room", None),
        "teacher-roomhead+rc": lambda t: teacher_alone(t, "room", t_alone["room"]),
        "fused": lambda t: fused(t, "clean", False, None),
        "fused+rc": lambda t: fused(t, "clean", True, t_off["clean"]),
        "fused-roomhead": lambda t: fused(t, "room", False, None),
        "fused-roomhead+rc": lambda t: fused(t, "room", True, t_off["room"]),
        "fused+trc": lambda t: fused(t, "clean", False, t_only["clean"]),
        "fused-roomhead+trc": lambda t: fused(t, "room", False, t_only["room"]),
    }
    out: dict = {"name": f"room-fusion-{args.cnn}", "cnn": args.cnn, "models": str(args.models),
                 "seeds": seeds, "every_s": args.every, "weight": W_FIXED,
                 "room_versions": args.room_versions, "stage_versions": args.stage_versions,
                 "command": "mer-train cv room-fusion " + shlex.join(
                     sys.argv[1:] if argv is None else argv),
                 "offsets": {"cnn": {str(k): v.tolist() for k, v in cnn_off.items()},
                             "cnn_all_folds": np.mean(list(cnn_cal.values()), axis=0).tolist(),
                             "teacher": {h: {str(k): v.tolist() for k, v in t_off[h].items()}
                                         for h in t_off}},
                 "rows": {}}
    for name, fn in rows.items():
        # shifts are measured from the row's output on CLEAN audio WITHOUT re-centring (what the
        # offsets aim at: the line path's centre); "clean" is the row as it is, offsets included
        clean = fn("clean")
        ref = rows[name.split("+")[0]]("clean")
        rec: dict = {"clean": summary(y, clean, quads, ref), "stage": summary(y, fn("stage"), quads, ref),
                     "room": {}, "clean_reference": {"mean_arousal": float(ref[:, 0].mean()),
                                                     "mean_valence": float(ref[:, 1].mean())}}
        rec["stage"]["confusion"] = quad_confusion(y, fn("stage"), quads)
        for s in seeds:
            sc = fn(f"room{s}")
            rec["room"][str(s)] = summary(y, sc, quads, ref)
            rec["room"][str(s)]["confusion"] = quad_confusion(y, sc, quads)
        rec["room_mean"] = mean_over_seeds([{k: v for k, v in r.items() if k != "confusion"}
                                            for r in rec["room"].values()])
        out["rows"][name] = rec
        m = rec["room_mean"]
        st = rec["stage"]
        vals = (rec["clean"]["quadrant_macro_f1"], m["arousal_auc"], m["valence_auc"], m["quadrant_macro_f1"],
                m["mean_arousal"], m["mean_valence"], m["shift_arousal"], m["shift_valence"],
                st["arousal_auc"], st["valence_auc"], st["quadrant_macro_f1"], st["shift_arousal"],
                st["shift_valence"])
        log.info("%-20s clean f1 %.3f | room a %.3f v %.3f f1 %.3f mean a %.3f v %.3f (shift %+.3f %+.3f)"
                 " | stage a %.3f v %.3f f1 %.3f (shift %+.3f %+.3f)", name, *vals)
    # the offsets a shipped model's card would carry: the mean over folds of each fold's calibration
    # (the mean of the out-of-fold offsets is the mean of the folds' own calibrations)
    out["offsets"]["teacher_all_folds"] = {h: np.mean(list(t_off[h].values()), axis=0).tolist()
                                           for h in t_off}
    out["offsets"]["teacher_only_all_folds"] = {h: np.mean(list(t_only[h].values()), axis=0).tolist()
                                                for h in t_only}
    (RESULTS / f"room-fusion-{args.cnn}.json").write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
