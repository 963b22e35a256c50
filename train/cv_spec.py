"""Artist-grouped CV of the cached-spectrogram recipe (``train.specfit``) on the 4Q clips.

``mer-train cv spec --name X [--model k=v ...] [--fit k=v ...] [--seeds N] [--data 4q|MANIFEST.csv]``

Per fold, ``--seeds`` models are fitted on the training artists and their clip scores averaged
(the ensemble the export would ship); test clips are scored by the complete model on raw
windows framed like the runtime's (1 s apart), never from the cache. Writes
``train/experiments/results/<name>.json`` (``--results``) with per-fold metrics, mean, std and
out-of-fold scores.
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

from .cache import load_audio, load_stage_audio
from .data import artist_folds, stage_clips, targets
from .fit import clip_metrics, predict_clips, summarize
from .models import ModelConfig, build_model, count_flops
from .paths import CACHE, RESULTS, ROOT
from .roomtest import room_evaluation, room_test_args, room_training_audio
from .specfit import PatchFeatures, SpecFitConfig, cached_mels, config_dict, fit_spec, frontend_key


def parse_model(spec: list[str]) -> dict:
    """``key=value`` pairs for ModelConfig (tuples as 16,32,64; names as mixup,specaug)."""
    out: dict = {}
    for kv in spec:
        k, v = kv.split("=", 1)
        if "," in v:
            items = [x for x in v.split(",") if x]
            try:
                out[k] = tuple(int(x) for x in items)
            except ValueError:
                try:
                    out[k] = tuple(float(x) for x in items)
                except ValueError:
                    out[k] = tuple(items)
        elif v in ("true", "false"):
            out[k] = v == "true"
        else:
            try:
                out[k] = int(v)
            except ValueError:
                try:
                    out[k] = float(v)
                except ValueError:
                    out[k] = v
    return out


def teacher_config(folder: Path, student: ModelConfig) -> ModelConfig:
    """The model config of a ``--save-models`` folder (its ``model.json``; else the student's). A
    teacher may have another body, but must compute the same spectrogram: it reads the student's
    cached crops."""
    f = folder / "model.json"
    cfg = ModelConfig.from_dict(json.loads(f.read_text())) if f.is_file() else student
    if frontend_key(cfg) != frontend_key(student):
        raise SystemExit(f"cv spec: error: teachers in {folder} use another spectrogram front end")
    return cfg


def load_clip_features(path: Path, clips, patches: bool = False) -> np.ndarray | PatchFeatures:
    """``[len(clips), d]`` rows of ``path``'s ``features`` in clip order (matched on ``ids``); with
    ``patches``, its time-resolved ``patch_features`` (``musicnn_features --patch-hop``) instead."""
    keys = ("patch_features", "patch_starts", "patch_seconds") if patches else ("features",)
    try:
        z = np.load(path)
        ids, f = [str(i) for i in z["ids"]], np.asarray(z[keys[0]], np.float32)
        extra = [np.asarray(z[k]) for k in keys[1:]]
    except (OSError, KeyError, ValueError) as e:
        raise SystemExit(f"cv spec: error: {path}: not an npz with ids and {', '.join(keys)} ({e})"
                         ) from None
    pos = {i: k for k, i in enumerate(ids)}
    missing = [c.id for c in clips if c.id not in pos]
    if missing:
        raise SystemExit(f"cv spec: error: {path}: no features for {len(missing)} clips (e.g. {missing[0]})")
    rows = f[[pos[c.id] for c in clips]]
    if not patches:
        return rows
    try:
        return PatchFeatures(rows, extra[0].astype(np.float64), float(extra[1]))
    except ValueError as e:
        raise SystemExit(f"cv spec: error: {path}: {e}") from None


def feature_rows(feats: np.ndarray | PatchFeatures, idx) -> np.ndarray | PatchFeatures:
    """The rows ``idx`` of clip or patch features (a fold's training clips)."""
    if isinstance(feats, PatchFeatures):
        return dataclasses.replace(feats, values=feats.values[idx])
    return feats[idx]


def logreg_oof(feats: np.ndarray, y: np.ndarray, folds, c: float = 0.1) -> np.ndarray:
    """Out-of-fold ``[n, 2]`` probabilities of a standardised logistic regression per dimension of
    the 0/1 targets ``y`` on ``feats``: each fold's test rows scored by a fit on its training rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out = np.zeros((len(y), 2), np.float32)
    for tr, te in folds:
        for d in range(2):
            m = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
            out[te, d] = m.fit(feats[tr], y[tr, d]).predict_proba(feats[te])[:, 1]
    return out


def clip_teacher_probs(feats: np.ndarray, clips, c: float = 0.1, k: int = 5) -> np.ndarray:
    """Cross-fitted ``[n, 2]`` arousal/valence probabilities of a logistic regression on ``feats``
    (a pretrained model's clip embeddings): each clip scored by a regression fitted on the other
    artists' clips (inner artist folds), so a student distilled from them learns the teacher's
    opinion of music it has not seen, not its memory of the training labels."""
    return logreg_oof(feats, targets(clips), artist_folds(clips, k=k, seed=1), c)


def load_fold_models(folder: Path, cfg: ModelConfig, k: int) -> list:
    """Fold ``k``'s models saved by ``--save-models`` in ``folder`` (``fold<k>-seed*.pt``), in eval
    mode; empty when there are none."""
    models = []
    for f in sorted(folder.glob(f"fold{k}-seed*.pt")):
        m = build_model(cfg)
        m.load_state_dict(torch.load(f, weights_only=True))
        models.append(m.eval())
    return models


def artist_subset(clips, tr: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """The clips of ``tr`` whose artists are in a seeded random ``fraction`` of its artists (at
    least one): a learning curve's smaller training sets, still whole artists, so what the
    curve shows is how the scores grow with artists heard, not with more clips of the same ones."""
    artists = sorted({clips[i].artist for i in tr})
    n = max(1, round(fraction * len(artists)))
    keep = set(np.random.default_rng(seed).permutation(artists)[:n].tolist())
    return np.array([i for i in tr if clips[i].artist in keep], dtype=np.asarray(tr).dtype)


def room_training_mels(mcfg: ModelConfig, clips, audio: list[np.ndarray], n: int, norm: str,
                       n_stage: int = 0) -> list[list[torch.Tensor]]:
    """Per clip, the cached spectrograms of its ``n`` training-room versions (``--room-train``)
    and its ``n_stage`` stage-chain training versions (``--stage-train``)."""
    variants = []
    for r in range(n):
        ra = room_training_audio(clips, audio, mcfg.sample_rate, r, norm, CACHE)
        variants.append(cached_mels(build_model(mcfg), ra, clips, CACHE))
        del ra
    for r in range(n_stage):
        sa = load_stage_audio(clips, audio, mcfg.sample_rate, CACHE, progress=False, version=r)
        variants.append(cached_mels(build_model(mcfg), sa, clips, CACHE))
        del sa
    return [[v[i] for v in variants] for i in range(len(clips))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="mer-train cv spec", description=__doc__.split("\n")[0])
    ap.add_argument("--name", required=True)
    ap.add_argument("--data", default="4q", metavar="4q|MANIFEST.csv|pmemo[:DIR]",
                    help="the clips (default 4q, as the cards; a manifest for a try on small data)")
    ap.add_argument("--results", type=Path, default=RESULTS,
                    help=f"folder of the result JSON <name>.json (default {RESULTS.relative_to(ROOT)})")
    ap.add_argument("--model", nargs="*", default=[], help="ModelConfig key=value ...")
    ap.add_argument("--fit", nargs="*", default=[], help="SpecFitConfig key=value (augs=a,b or none)")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--seed-offset", type=int, default=0,
                    help="first seed within a fold (seeds 1000*fold + offset + s): more members of one "
                         "recipe in another process, averaged later by train.experiments.blend")
    ap.add_argument("--folds", default="", help="comma-separated folds 0..4 (default all)")
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--extra", default="",
                    help="extra TRAINING data added to every fold: emopia or emopia:N (N clips, "
                         "quadrant-balanced), rendered from MIDI (train/midi.py); never tested on")
    ap.add_argument("--stage-test", action="store_true",
                    help="also score each test fold through augment.stage_degrade (a PA in a room): "
                         "stage_* metrics beside the clean ones")
    ap.add_argument("--room-test", default="",
                    help="comma-separated degradation seeds: also score each fold's models on the room "
                         "test (train.roomtest: simulated room microphones, shows of 8 clips): room_test")
    ap.add_argument("--room-path", nargs="*", default=[],
                    help="with --room-test: room paths scored besides none (eq-show, recentre, ...)")
    ap.add_argument("--room-train", type=int, default=0,
                    help="N simulated room versions of every clip (training room bank, seeds 0..N-1) that "
                         "--fit p_room=P draws training crops from")
    ap.add_argument("--room-train-norm", default="none", choices=("none", "clip", "show", "stream"),
                    help="pass the --room-train audio through the room normaliser first (reference: the mean "
                         "spectrum of all clips' clean audio)")
    ap.add_argument("--stage-train", type=int, default=0,
                    help="N more training versions of every clip through augment.stage_degrade's chain "
                         "family (other draws than the stage test's: cache.load_stage_audio version "
                         "0..N-1), drawn by --fit p_room=P beside the --room-train versions")
    ap.add_argument("--save-models", type=Path, default=None,
                    help="save each fitted model's weights as DIR/fold<k>-seed<seed>.pt")
    ap.add_argument("--teachers", type=Path, nargs="*", default=[],
                    help="folders of --save-models runs of the same model config: their fold-k models are "
                         "the teachers of fold k (distillation; set --fit distill=A)")
    ap.add_argument("--clip-features", type=Path, default=None,
                    help="npz (ids, features) of a pretrained model's clip embeddings, e.g. from "
                         "train.experiments.musicnn_features: targets of --fit feature_weight=W "
                         "(training clips' rows only)")
    ap.add_argument("--feature-patches", action="store_true",
                    help="with --clip-features: regress the file's time-resolved patch_features (each crop "
                         "its own patches) instead of the clip means")
    ap.add_argument("--clip-teacher", action="store_true",
                    help="with --clip-features and --fit distill=A: the distillation teacher is a logistic "
                         "regression on those features, cross-fitted within each training fold")
    ap.add_argument("--train-artists", type=float, default=1.0,
                    help="fit each fold on this fraction of its training artists (seeded per fold; the "
                         "test fold is unchanged): a point of a learning curve")
    ap.add_argument("--curve-every", type=int, default=0,
                    help="score the test fold every N epochs for a training-curve plot (never for selection)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)

    mcfg = ModelConfig(**{"trainable_mel": False, **parse_model(args.model)})
    fit_kw = parse_model(args.fit)
    if "augs" in fit_kw:
        a = fit_kw["augs"]
        fit_kw["augs"] = () if a == "none" else tuple(a.split(",")) if isinstance(a, str) else a
    fcfg = SpecFitConfig(**{"progress": False, **fit_kw})
    clips = stage_clips(args.data, "cv spec")
    audio = load_audio(clips, mcfg.sample_rate, cache_dir=CACHE, progress=False)
    clips = audio.clips
    t0 = time.time()
    mels = cached_mels(build_model(mcfg), list(audio), clips, CACHE)
    log = logging.getLogger("cv spec")
    log.info("mel cache: %d clips in %.0f s", len(mels), time.time() - t0)
    extra_clips, extra_mels = [], []
    if args.extra:
        from .midi import load_emopia

        name, _, n = args.extra.partition(":")
        if name != "emopia":
            raise SystemExit(f"cv spec: error: unknown --extra {args.extra!r} (use emopia or emopia:N)")
        ex = load_emopia(CACHE, limit=int(n) if n else None)
        ex_audio = load_audio(ex, mcfg.sample_rate, cache_dir=CACHE, progress=False)
        extra_clips = ex_audio.clips
        extra_mels = cached_mels(build_model(mcfg), list(ex_audio), extra_clips, CACHE)
        log.info("extra training data: %d %s clips", len(extra_clips), name)
    feats = pfeats = None
    if args.feature_patches and not args.clip_features:
        raise SystemExit("cv spec: error: --feature-patches needs --clip-features")
    if args.clip_features:
        if extra_clips:
            raise SystemExit("cv spec: error: --clip-features does not cover --extra clips")
        pfeats = load_clip_features(args.clip_features, clips, patches=args.feature_patches)
        # the clip teacher needs the clip means: a second read only when both are asked for
        feats = (load_clip_features(args.clip_features, clips) if args.feature_patches and args.clip_teacher
                 else pfeats)
    elif fcfg.feature_weight > 0 or args.clip_teacher:
        raise SystemExit("cv spec: error: --fit feature_weight and --clip-teacher need --clip-features")
    if not 0 < args.train_artists <= 1:
        raise SystemExit(f"cv spec: error: --train-artists {args.train_artists} must be in (0, 1]")
    if args.clip_teacher and (args.teachers or not fcfg.distill):
        raise SystemExit("cv spec: error: --clip-teacher needs --fit distill=A and no --teachers")
    if fcfg.p_room > 0 and not (args.room_train or args.stage_train):
        raise SystemExit("cv spec: error: --fit p_room needs --room-train N or --stage-train N")
    if (args.room_train or args.stage_train) and fcfg.p_room == 0:
        raise SystemExit("cv spec: error: --room-train and --stage-train need --fit p_room=P")
    try:
        room_seeds, room_paths = room_test_args(args.room_test, args.room_path)
    except ValueError as e:
        raise SystemExit(f"cv spec: error: {e}") from None
    room_mels = None
    if args.room_train or args.stage_train:
        room_mels = room_training_mels(mcfg, clips, list(audio), args.room_train, args.room_train_norm,
                                       args.stage_train)
        log.info("room training: %d room versions (norm %s) and %d stage-chain versions per clip",
                 args.room_train, args.room_train_norm, args.stage_train)
    folds = artist_folds(clips, k=args.k, seed=0)
    only = [int(f) for f in args.folds.split(",")] if args.folds else list(range(args.k))
    stage_all: dict[int, np.ndarray] = {}
    if args.stage_test:  # the test clips of the folds run, through the fixed stage chain (cached)
        need = sorted(int(i) for k in only for i in folds[k][1])
        got = load_stage_audio([clips[i] for i in need], [audio[i] for i in need], mcfg.sample_rate, CACHE,
                               progress=False)
        stage_all = dict(zip(need, got, strict=True))
    y = targets(clips)
    quads = np.array([c.quadrant for c in clips])
    oof = np.full((len(clips), 2), np.nan, np.float32)
    stage_oof = np.full((len(clips), 2), np.nan, np.float32)
    per_fold, secs, histories, stage_folds = [], [], [], []
    fold_models: dict[int, list] = {}
    for k in only:
        tr, te = folds[k]
        if args.train_artists < 1:
            tr = artist_subset(clips, tr, args.train_artists, seed=k)
            log.info("fold %d: %d training clips of %d artists kept", k, len(tr),
                     len({clips[i].artist for i in tr}))
        scores, stage_scores = [], []
        stage_audio = [stage_all[i] for i in te] if args.stage_test else []
        t1 = time.time()
        teachers = []
        for d in args.teachers:
            teachers += load_fold_models(d, teacher_config(d, mcfg), k)
        if args.teachers:
            if not teachers:
                where = ", ".join(map(str, args.teachers))
                raise SystemExit(f"cv spec: error: no fold-{k} models in {where}")
            tsc = np.mean([predict_clips(t, [audio[i] for i in te], 1.0) for t in teachers], axis=0)
            mt = clip_metrics(y[te], tsc, quads[te])
            log.info("fold %d: %d teachers: a_auc %.3f v_auc %.3f f1 %.3f", k, len(teachers),
                     mt["arousal_auc"], mt["valence_auc"], mt["quadrant_macro_f1"])
        cprobs = None
        if args.clip_teacher:
            cprobs = clip_teacher_probs(feats[tr], [clips[i] for i in tr])
            mt = clip_metrics(y[tr], cprobs, quads[tr])
            log.info("fold %d: clip teacher, cross-fitted on the training clips: a_auc %.3f v_auc %.3f",
                     k, mt["arousal_auc"], mt["valence_auc"])
        for s in range(args.seeds):
            seed = 1000 * k + args.seed_offset + s
            torch.manual_seed(seed)
            model = build_model(mcfg)
            def curve(epoch: int, m, te=te) -> dict[str, float]:
                if not args.curve_every or epoch % args.curve_every:
                    return {}
                sc = predict_clips(m, [audio[i] for i in te], 3.0)
                got = clip_metrics(y[te], sc, quads[te])
                return {f"test_{n}": got[n] for n in ("arousal_auc", "valence_auc", "quadrant_macro_f1")}

            fr = fit_spec(model, [clips[i] for i in tr] + extra_clips, [mels[i] for i in tr] + extra_mels,
                          dataclasses.replace(fcfg, seed=seed), desc=f"fold {k} seed {seed}",
                          on_epoch=curve, teachers=teachers,
                          clip_features=(None if pfeats is None or not fcfg.feature_weight
                                         else feature_rows(pfeats, tr)),
                          clip_probs=cprobs,
                          room_mels=[room_mels[i] for i in tr] if room_mels is not None else None)
            if room_seeds:
                fold_models.setdefault(k, []).append(model)
            if args.save_models:
                args.save_models.mkdir(parents=True, exist_ok=True)
                (args.save_models / "model.json").write_text(json.dumps(mcfg.to_dict(), indent=1))
                torch.save(model.state_dict(), args.save_models / f"fold{k}-seed{seed}.pt")
            histories.append({"fold": k, "seed": seed, "history": fr.history})
            scores.append(predict_clips(model, [audio[i] for i in te], 1.0))
            if args.stage_test:
                stage_scores.append(predict_clips(model, stage_audio, 1.0))
            m1 = clip_metrics(y[te], scores[-1], quads[te])
            log.info("fold %d seed %d: a_auc %.3f v_auc %.3f f1 %.3f", k, seed, m1["arousal_auc"],
                     m1["valence_auc"], m1["quadrant_macro_f1"])
        sc = np.mean(scores, axis=0)
        oof[te] = sc
        if args.stage_test:
            stage_oof[te] = np.mean(stage_scores, axis=0)
            stage_folds.append(clip_metrics(y[te], stage_oof[te], quads[te]))
            log.info("fold %d stage test: a_auc %.3f v_auc %.3f f1 %.3f", k, stage_folds[-1]["arousal_auc"],
                     stage_folds[-1]["valence_auc"], stage_folds[-1]["quadrant_macro_f1"])
        m = clip_metrics(y[te], sc, quads[te])
        per_fold.append(m)
        secs.append(time.time() - t1)
        log.info("fold %d: %s (%.0f s)", k, ", ".join(f"{a}={b:.3f}" for a, b in m.items()), secs[-1])
    cmd = shlex.join(["mer-train", "cv", "spec", *(sys.argv[1:] if argv is None else argv)])
    res = {"name": args.name, "command": cmd, "model": mcfg.to_dict(), "fit": config_dict(fcfg),
           "seeds": args.seeds, "seed_offset": args.seed_offset,
           "teachers": [str(d) for d in args.teachers], "extra": args.extra,
           "clip_features": str(args.clip_features or ""), "clip_teacher": args.clip_teacher,
           "feature_patches": args.feature_patches, "train_artists": args.train_artists,
           "folds_run": only, "folds": per_fold, **summarize(per_fold), "seconds": secs,
           "flops": count_flops(build_model(mcfg)), "histories": histories, "ids": [c.id for c in clips],
           "oof": [None if np.isnan(r[0]) else [float(r[0]), float(r[1])] for r in oof]}
    if room_seeds:
        stage_list = [stage_all.get(i) for i in range(len(clips))] if args.stage_test else None
        res["room_test"] = room_evaluation(fold_models, clips, list(audio), folds, room_seeds, room_paths,
                                           cache_dir=CACHE, stage_audio=stage_list, progress=False)
    res["room_train"] = args.room_train
    res["room_train_norm"] = args.room_train_norm
    res["stage_train"] = args.stage_train
    if args.stage_test:
        res["stage_folds"] = stage_folds
        res["stage_oof"] = [None if np.isnan(r[0]) else [float(r[0]), float(r[1])] for r in stage_oof]
    done = ~np.isnan(oof[:, 0])
    if done.all():
        res["pooled"] = clip_metrics(y, oof, quads)
        if args.stage_test:
            res["stage_pooled"] = clip_metrics(y, stage_oof, quads)
    out = args.results
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(res, indent=1))
    m, sd = res["mean"], res["std"]
    print(f"{args.name}: arousal_auc {m['arousal_auc']:.3f}+-{sd['arousal_auc']:.3f}  valence_auc "
          f"{m['valence_auc']:.3f}+-{sd['valence_auc']:.3f}  quad_f1 {m['quadrant_macro_f1']:.3f}+-"
          f"{sd['quadrant_macro_f1']:.3f}  s/fold {np.mean(secs):.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
