"""Artist-grouped CV of the shipped CNN recipe distilled from musicnn on the same augmented views
(``train.distill``, issue #17 route 2), one command from the clips to the results JSON.

``python -m train.experiments.run_distill --name distill-X [--model k=v ...] [--fit k=v ...]
[--distill k=v ...] [--bank k=v ...]``

Builds (or reads from ``cache/``) the label-free bank of augmented crops with the teacher's features
of exactly that audio (``train.distill_bank``; ~25 min on one thread here), then per fold: the
teacher head cross-fitted on the fold's training clips, the student fitted on the training artists
(fresh crops + bank crops), scored on the test clips' raw audio framed like the runtime's (6-s
windows 1 s apart, clip score the mean), never from a cache. Writes
``train/experiments/results/<name>.json`` in run_spec's format (``report.py`` reads it).

``--inner-val F`` is the schedule pilot: per fold, the student is fitted on a seeded fraction F of
the fold's TRAINING artists and scored on the rest of them (the fold's test clips are not touched);
``--curve-every N`` adds those scores every N epochs to the history.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..cache import load_audio
from ..cv_spec import artist_subset, parse_model
from ..data import artist_folds, load_4q, targets
from ..distill import DistillConfig, fit_distill, fold_bank
from ..distill_bank import BankConfig, ensure_bank
from ..fit import clip_metrics, predict_clips, summarize
from ..models import ModelConfig, build_model, count_flops
from ..paths import CACHE, RESULTS
from ..specfit import SpecFitConfig, cached_mels, config_dict

#: the shipped model's recipe (models/mer-default.json), the defaults of --model and --fit
SHIPPED_MODEL = ("frontend=multires", "hop=800", "n_mels=72", "window_seconds=6.0", "channels=16,24,48,96",
                 "band_scale=semitone")
SHIPPED_FIT = ("threads=1", "augs=eq,band", "tag_weight=0.3")


def _config(cls, pairs: list[str], what: str):
    kw = parse_model(pairs)
    if "augs" in kw:
        a = kw["augs"]
        kw["augs"] = () if a == "none" else tuple(a.split(",")) if isinstance(a, str) else tuple(a)
    for k in ("rt60", "snr_db"):
        if k in kw:
            kw[k] = tuple(float(v) for v in (kw[k].split(",") if isinstance(kw[k], str) else kw[k]))
    try:
        return cls(**kw)
    except (TypeError, ValueError) as e:
        raise SystemExit(f"run_distill: error: --{what}: {e}") from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", required=True)
    ap.add_argument("--model", nargs="*", default=list(SHIPPED_MODEL), help="ModelConfig key=value ...")
    ap.add_argument("--fit", nargs="*", default=[], help="SpecFitConfig key=value, over the shipped recipe's")
    ap.add_argument("--distill", nargs="*", default=[], help="DistillConfig key=value")
    ap.add_argument("--bank", nargs="*", default=[], help="BankConfig key=value")
    ap.add_argument("--folds", default="", help="comma-separated folds 0..4 (default all)")
    ap.add_argument("--seed-offset", type=int, default=0)
    ap.add_argument("--inner-val", type=float, default=0.0,
                    help="pilot: fit on this fraction of each fold's training artists, score the rest")
    ap.add_argument("--curve-every", type=int, default=0,
                    help="score the held-out clips every N epochs (a curve to read, never to select on)")
    ap.add_argument("--teacher-threads", type=int, default=1)
    ap.add_argument("--save-models", type=Path, default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    log = logging.getLogger("run_distill")

    mcfg = ModelConfig(**{"trainable_mel": False, **parse_model(args.model)})
    fcfg = _config(SpecFitConfig, [*SHIPPED_FIT, "progress=false", *args.fit], "fit")
    dcfg = _config(DistillConfig, args.distill, "distill")
    bcfg = _config(BankConfig, args.bank, "bank")
    if not 0 <= args.inner_val < 1:
        raise SystemExit(f"run_distill: error: --inner-val {args.inner_val} must be in [0, 1)")
    clips = load_4q()
    audio = load_audio(clips, mcfg.sample_rate, cache_dir=CACHE, progress=False)
    clips = audio.clips
    bank, bank_file = ensure_bank(list(audio), [c.id for c in clips], mcfg, bcfg, CACHE,
                                  threads=args.teacher_threads)
    log.info("bank: %d crops of %d clips (%s)", len(bank), len(clips), bank_file.name)
    mels = cached_mels(build_model(mcfg), list(audio), clips, CACHE)
    folds = artist_folds(clips, k=5, seed=0)
    only = [int(f) for f in args.folds.split(",")] if args.folds else list(range(5))
    y = targets(clips)
    quads = np.array([c.quadrant for c in clips])
    oof = np.full((len(clips), 2), np.nan, np.float32)
    per_fold, secs, histories = [], [], []
    for k in only:
        tr, te = folds[k]
        if args.inner_val:  # the pilot: hold out some TRAINING artists; the test fold stays unseen
            fit_idx = artist_subset(clips, tr, 1 - args.inner_val, seed=100 + k)
            te = np.setdiff1d(tr, fit_idx)
            tr = fit_idx
        t1 = time.time()
        fb = fold_bank(bank, clips, tr, dcfg)
        sub = [clips[i] for i in tr]
        zt = np.array([fb.logits[fb.clip == j].mean(0) if (fb.clip == j).any() else [np.nan, np.nan]
                       for j in range(len(sub))])
        ok = np.isfinite(zt[:, 0])
        mt = clip_metrics(y[tr][ok], 1 / (1 + np.exp(-zt[ok])), quads[tr][ok])
        log.info("fold %d: %d bank crops; cross-fitted teacher on the training clips' crops (clip mean of "
                 "logits): a_auc %.3f v_auc %.3f f1 %.3f", k, len(fb), mt["arousal_auc"], mt["valence_auc"],
                 mt["quadrant_macro_f1"])
        seed = 1000 * k + args.seed_offset
        torch.manual_seed(seed)
        model = build_model(mcfg)

        def curve(epoch: int, m, te=te, k=k) -> dict[str, float]:
            if not args.curve_every or epoch % args.curve_every:
                return {}
            got = clip_metrics(y[te], predict_clips(m, [audio[i] for i in te], 1.0), quads[te])
            log.info("fold %d epoch %d: held out a_auc %.3f v_auc %.3f f1 %.3f", k, epoch, got["arousal_auc"],
                     got["valence_auc"], got["quadrant_macro_f1"])
            return {f"heldout_{n}": got[n] for n in ("arousal_auc", "valence_auc", "quadrant_macro_f1")}

        fr = fit_distill(model, sub, [mels[i] for i in tr], fb, dataclasses.replace(fcfg, seed=seed), dcfg,
                         desc=f"fold {k}", on_epoch=curve)
        if args.save_models:
            args.save_models.mkdir(parents=True, exist_ok=True)
            (args.save_models / "model.json").write_text(json.dumps(mcfg.to_dict(), indent=1))
            torch.save(model.state_dict(), args.save_models / f"fold{k}-seed{seed}.pt")
        histories.append({"fold": k, "seed": seed, "history": fr.history,
                          "teacher_train_crops": {n: mt[n] for n in ("arousal_auc", "valence_auc",
                                                                    "quadrant_macro_f1")}})
        sc = predict_clips(model, [audio[i] for i in te], 1.0)
        oof[te] = sc
        m = clip_metrics(y[te], sc, quads[te])
        per_fold.append(m)
        secs.append(time.time() - t1)
        log.info("fold %d: %s (%.0f s)", k, ", ".join(f"{a}={b:.3f}" for a, b in m.items()), secs[-1])
    cmd = "python -m train.experiments.run_distill " + shlex.join(sys.argv[1:] if argv is None else argv)
    res = {"name": args.name, "command": cmd, "model": mcfg.to_dict(), "fit": config_dict(fcfg),
           "distill": dcfg.to_dict(),
           "bank": {"config": bcfg.to_dict(), "file": bank_file.name, "crops": len(bank),
                    "teacher_sha256": bank.meta["teacher_sha256"]},
           "seeds": 1, "seed_offset": args.seed_offset, "extra": "", "inner_val": args.inner_val,
           "folds_run": only, "folds": per_fold, **summarize(per_fold), "seconds": secs,
           "flops": count_flops(build_model(mcfg)), "histories": histories, "ids": [c.id for c in clips],
           "oof": [None if np.isnan(r[0]) else [float(r[0]), float(r[1])] for r in oof]}
    done = ~np.isnan(oof[:, 0])
    if done.all() and not args.inner_val:
        res["pooled"] = clip_metrics(y, oof, quads)
    out = RESULTS
    out.mkdir(exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(res, indent=1))
    mean = res["mean"]
    print(f"{args.name}: arousal_auc {mean['arousal_auc']:.3f} valence_auc {mean['valence_auc']:.3f} "
          f"quad_f1 {mean['quadrant_macro_f1']:.3f} (fold means)"
          + (f"; pooled {res['pooled']['arousal_auc']:.3f} / {res['pooled']['valence_auc']:.3f} / "
             f"{res['pooled']['quadrant_macro_f1']:.3f}" if "pooled" in res else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
