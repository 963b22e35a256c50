"""Score saved fold models of a CV run on the stage-degraded test audio, after the fact.

``python -m train.experiments.stage_eval --result NAME --models DIR [DIR ...]``

For each fold k, the models saved by ``run_spec --save-models`` (``DIR/fold<k>-seed*.pt``, config
in ``DIR/model.json``) score that fold's test clips through ``augment.stage_degrade`` (cached by
``cache.load_stage_audio``); their mean is written into the result as ``stage_oof`` (and
``stage_pooled``), exactly what ``run_spec --stage-test`` would have recorded. Several DIRs: the
ensemble of all their models (use it with the ``blend`` of the same runs).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch

from ..cache import load_audio, load_stage_audio
from ..data import artist_folds, load_4q, targets
from ..fit import clip_metrics, predict_clips
from ..models import ModelConfig, build_model
from .run_spec import CACHE, HERE


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--result", required=True, help="result name (train/experiments/results/NAME.json)")
    ap.add_argument("--models", type=Path, nargs="+", required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    log = logging.getLogger("stage_eval")
    path = HERE / "results" / f"{args.result}.json"
    res = json.loads(path.read_text())
    by_id = {c.id: c for c in load_4q()}
    clips = [by_id[i] for i in res["ids"]]
    cfgs = [ModelConfig.from_dict(json.loads((d / "model.json").read_text())) for d in args.models]
    sr = cfgs[0].sample_rate
    audio = load_audio(clips, sr, cache_dir=CACHE, progress=False)
    if audio.dropped:  # the result's folds were made over all its clips: none may be missing
        raise SystemExit(f"{len(audio.dropped)} clips of {args.result} did not decode: {audio.dropped[:3]}")
    stage = load_stage_audio(clips, list(audio), sr, CACHE, progress=True)
    y, quads = targets(clips), np.array([c.quadrant for c in clips])
    oof = np.full((len(clips), 2), np.nan)
    folds = []
    for k, (_, te) in enumerate(artist_folds(clips, k=5, seed=0)):
        if k not in res["folds_run"]:
            continue
        scores = []
        for d, cfg in zip(args.models, cfgs, strict=True):
            for f in sorted(d.glob(f"fold{k}-seed*.pt")):
                m = build_model(cfg)
                m.load_state_dict(torch.load(f, weights_only=True))
                scores.append(predict_clips(m.eval(), [stage[i] for i in te], 1.0))
        if not scores:
            raise SystemExit(f"stage_eval: error: no fold-{k} models in {args.models}")
        oof[te] = np.mean(scores, axis=0)
        folds.append(clip_metrics(y[te], oof[te], quads[te]))
        log.info("fold %d (%d models): stage a_auc %.3f v_auc %.3f f1 %.3f", k, len(scores),
                 folds[-1]["arousal_auc"], folds[-1]["valence_auc"], folds[-1]["quadrant_macro_f1"])
    res["stage_folds"] = folds
    res["stage_oof"] = [None if np.isnan(r[0]) else [float(r[0]), float(r[1])] for r in oof]
    if not np.isnan(oof[:, 0]).any():
        res["stage_pooled"] = clip_metrics(y, oof, quads)
        log.info("pooled stage: %s", {k: round(v, 3) for k, v in res["stage_pooled"].items()})
    res["stage_models"] = [str(d) for d in args.models]
    path.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
