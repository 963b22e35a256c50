"""Score saved fold models of a CV run on the stage-degraded test audio, after the fact.

``mer-train cv stage --result NAME --models DIR [DIR ...]``

For each fold k, the models saved by ``cv spec --save-models`` (``DIR/fold<k>-seed*.pt``, config
in ``DIR/model.json``) score that fold's test clips through ``augment.stage_degrade`` (cached by
``cache.load_stage_audio``); their mean is written into the result as ``stage_oof`` (and
``stage_pooled``), exactly what ``cv spec --stage-test`` would have recorded. Several DIRs: the
ensemble of all their models (use it with the ``blend`` of the same runs).

``--room-test 0,1,2`` also scores the same models on the ROOM test (``train.roomtest``: the test
clips through simulated rooms, shows of 8 clips per room, one pass per degradation seed), and
``--room-path eq-show recentre ...`` through room paths (normaliser, re-centring) on both the room
and the stage test; the record goes into the result as ``room_test`` (paths already there are
kept unless scored again). ``--no-stage`` skips the stage test's plain row.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from .cache import load_audio, load_stage_audio
from .cv_spec import load_fold_models
from .data import artist_folds, load_4q, targets
from .fit import clip_metrics, predict_clips
from .models import ModelConfig
from .paths import CACHE, RESULTS
from .roomtest import merge_room, room_evaluation, room_test_args


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="mer-train cv stage", description=__doc__)
    ap.add_argument("--result", required=True, help="result name (train/experiments/results/NAME.json)")
    ap.add_argument("--models", type=Path, nargs="+", required=True)
    ap.add_argument("--room-test", default="", help="comma-separated degradation seeds of the room test")
    ap.add_argument("--room-path", nargs="*", default=[],
                    help="room paths to score besides none: eq-clip, eq-show, eq-stream, recentre, "
                         "eq-show+recentre ...")
    ap.add_argument("--no-stage", action="store_true", help="do not (re)score the plain stage test")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    log = logging.getLogger("stage_eval")
    path = RESULTS / f"{args.result}.json"
    res = json.loads(path.read_text())
    by_id = {c.id: c for c in load_4q()}
    clips = [by_id[i] for i in res["ids"]]
    cfgs = [ModelConfig.from_dict(json.loads((d / "model.json").read_text())) for d in args.models]
    sr = cfgs[0].sample_rate
    audio = load_audio(clips, sr, cache_dir=CACHE, progress=False)
    if audio.dropped:  # the result's folds were made over all its clips: none may be missing
        raise SystemExit(f"{len(audio.dropped)} clips of {args.result} did not decode: {audio.dropped[:3]}")
    try:
        seeds, paths = room_test_args(args.room_test, args.room_path)
    except ValueError as e:
        raise SystemExit(f"stage_eval: error: {e}") from None
    stage = load_stage_audio(clips, list(audio), sr, CACHE, progress=True)
    y, quads = targets(clips), np.array([c.quadrant for c in clips])
    oof = np.full((len(clips), 2), np.nan)
    folds = []
    all_folds = artist_folds(clips, k=5, seed=0)
    fold_models: dict[int, list] = {}
    for k, (_, te) in enumerate(all_folds):
        if k not in res["folds_run"]:
            continue
        models = [m for d, cfg in zip(args.models, cfgs, strict=True) for m in load_fold_models(d, cfg, k)]
        if not models:
            raise SystemExit(f"stage_eval: error: no fold-{k} models in {args.models}")
        fold_models[k] = models
        if args.no_stage:
            continue
        oof[te] = np.mean([predict_clips(m, [stage[i] for i in te], 1.0) for m in models], axis=0)
        folds.append(clip_metrics(y[te], oof[te], quads[te]))
        log.info("fold %d (%d models): stage a_auc %.3f v_auc %.3f f1 %.3f", k, len(models),
                 folds[-1]["arousal_auc"], folds[-1]["valence_auc"], folds[-1]["quadrant_macro_f1"])
    if not args.no_stage:
        res["stage_folds"] = folds
        res["stage_oof"] = [None if np.isnan(r[0]) else [float(r[0]), float(r[1])] for r in oof]
        if not np.isnan(oof[:, 0]).any():
            res["stage_pooled"] = clip_metrics(y, oof, quads)
            log.info("pooled stage: %s", {k: round(v, 3) for k, v in res["stage_pooled"].items()})
        res["stage_models"] = [str(d) for d in args.models]
    if seeds:
        got = room_evaluation(fold_models, clips, list(audio), all_folds, seeds, paths, cache_dir=CACHE,
                              stage_audio=stage)
        res["room_test"] = merge_room(res.get("room_test"), got)
        res["room_models"] = [str(d) for d in args.models]
    path.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
