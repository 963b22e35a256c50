"""Fit a shipped emotion model (default or room) on all 4Q clips; export it with its CV numbers in the card.

``mer-train ship default|room [--recipe R.json] [--cv R.json] [--seeds N] [--members F.pt] [--out F.onnx]``

``default`` and ``room`` are presets (``PRESETS``): the recipe and CV result each shipped model was
built from, its name and file, and for the room model the fusion entries it copies from the
default card; any option given overrides its preset. The card's ``command`` is the command typed.

The recipe (model and fit configs, seeds) is read from the CV result, so the shipped model is
exactly the one that was cross-validated, refitted on every clip. ``--seeds`` members are fitted
(seeds 0..N-1) and exported as one ``SharedMelEnsemble`` graph.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .cache import load_audio
from .data import stage_clips
from .ensemble import SharedMelEnsemble
from .export import export_onnx
from .merge import recipe_part
from .metrics import fold_spread, summarize
from .models import ModelConfig, build_model
from .paths import CACHE, MODELS, RESULTS, ROOT
from .specfit import SpecFitConfig, fit_spec, mel_cache

PROTOCOL = (
    "Artist-grouped 5-fold cross-validation on the 716 clips of the 4Q set (GroupKFold on the "
    "casefolded artist name, folds from train/data.py artist_folds(k=5, seed=0)): no artist is in "
    "both the training and the test clips of a fold. In each fold the same recipe was fitted on the "
    "training clips only ({seeds} seeds, their probabilities averaged, as shipped) with fixed epochs "
    "(nothing tuned on the test fold during training); each test clip is scored by the complete model "
    "on raw 16 kHz windows 1 s apart, framed like the runtime's, and its score is the mean of the "
    "window outputs. 'pooled' metrics are computed over all 716 out-of-fold clip scores; 'folds' give "
    "mean and std over the 5 folds. Arousal/valence AUC and binary accuracy use the quadrant halves "
    "(Q1,Q2 high arousal; Q1,Q4 high valence) with a 0.5 threshold; the quadrant is that of the two "
    "thresholded outputs. Majority baselines predict the most frequent training class."
)

KEYS = ("arousal.auc", "valence.auc", "arousal.accuracy", "valence.accuracy", "arousal.balanced_accuracy",
        "valence.balanced_accuracy", "arousal.mcc", "valence.mcc", "quadrant.accuracy", "quadrant.macro_f1",
        "quadrant.balanced_accuracy", "quadrant.mcc")


def cv_metrics(res: dict, clips) -> dict:
    """Pooled OOF metrics (with majority baselines) and per-fold mean/std, from a ``cv spec`` result."""
    from .data import artist_folds

    ids = res["ids"]
    by_id = {c.id: c for c in clips}
    cl = [by_id[i] for i in ids]
    oof = np.array(res["oof"], np.float64)
    ah = np.array([c.arousal_high for c in cl])
    vh = np.array([c.valence_high for c in cl])
    q = np.array([c.quadrant for c in cl])
    pooled = summarize(oof, arousal_high=ah, valence_high=vh, quadrant=q,
                       train={"arousal_high": ah, "valence_high": vh, "quadrant": q})
    folds = artist_folds(cl, k=5, seed=0)
    per = []
    for tr, te in folds:
        per.append(summarize(oof[te], arousal_high=ah[te], valence_high=vh[te], quadrant=q[te],
                             train={"arousal_high": ah[tr], "valence_high": vh[tr], "quadrant": q[tr]}))
    spread = fold_spread(per, [k for k in KEYS if _has(per[0], k)])
    return {"pooled": pooled,
            "folds_mean_std": {k: [round(m, 4), round(s, 4)] for k, (m, s) in spread.items()}}


def teacher_config(card: Path, student: ModelConfig) -> ModelConfig:
    """A teacher members file's model config (its ``.json`` sidecar; else the student's): another
    body is fine, another spectrogram is not (it reads the student's cached crops)."""
    from .specfit import frontend_key

    cfg = ModelConfig.from_dict(json.loads(card.read_text())) if card.is_file() else student
    if frontend_key(cfg) != frontend_key(student):
        raise SystemExit(f"ship: error: the teachers of {card.stem} use another spectrogram front end")
    return cfg


def describe(mcfg: ModelConfig, seeds: int) -> str:
    """One sentence on what the exported graph computes (the card's ``description``)."""
    if mcfg.frontend == "multires":
        low_rate = mcfg.sample_rate // mcfg.low_decim
        fe = (f"a {mcfg.n_mels}-band {mcfg.band_scale}-scale spectrogram from two fixed DFTs (below "
              f"{mcfg.split_hz:g} Hz {mcfg.low_n_fft} points at {low_rate} Hz, above it "
              f"{mcfg.high_n_fft} points), {mcfg.hop / mcfg.sample_rate * 1000:g} ms frames")
    else:
        fe = f"an nnAudio log-mel spectrogram ({mcfg.n_mels} bands, n_fft {mcfg.n_fft}, hop {mcfg.hop})"
    who = f"an ensemble of {seeds} seeds sharing the front end" if seeds > 1 else "one model"
    return (f"Arousal and valence of music from {mcfg.window_seconds:g} s of mono audio at "
            f"{mcfg.sample_rate} Hz: {fe}, level removed, + a 2D CNN {list(mcfg.channels)} "
            f"({mcfg.arch}); {who}.")


def _has(d: dict, key: str) -> bool:
    for part in key.split("."):
        if not isinstance(d, dict) or part not in d:
            return False
        d = d[part]
    return True


def room_card(res: dict) -> dict | None:
    """The card's ``room`` section from a CV result's ``room_test`` (``stage_eval --room-test``):
    the re-centring offsets (mean over the 5 folds of each fold model's calibration in the
    training room bank, on its out-of-fold clips) and the room-test numbers they give."""
    rt = res.get("room_test")
    if not rt or "none" not in rt.get("offsets", {}):
        return None
    rec = rt["room"].get("recentre", {}).get("mean", {})
    plain = rt["room"].get("none", {}).get("mean", {})
    keys = ("arousal_auc", "valence_auc", "valence_auc_low_arousal", "quadrant_macro_f1", "mean_arousal",
            "mean_valence")
    p_room = float(res.get("fit", {}).get("p_room") or 0)
    rooms, stages = int(res.get("room_train") or 0), int(res.get("stage_train") or 0)
    return {
        "input": "room",
        "training": f"{p_room:g} of the training crops from {rooms} simulated training-room versions "
                    f"(train.room, training bank) and {stages} stage-chain training versions "
                    "(augment.stage_degrade, other draws than the stage test's) of each training clip, "
                    "drawn alike; the rest clean",
        "offsets": [round(v, 4) for v in rt["offsets"]["none"]["all_folds"]],
        "offsets_note": "logits added to arousal and valence for room input "
                        "(mer_live/inference/roominput.py): the "
                        "mean over the 5 CV folds of the offsets that bring each fold model's mean "
                        "out-of-fold score in simulated calibration rooms (train.room, training bank) to "
                        "its mean on clean audio",
        "room_test": {"seeds": rt["seeds"], "show_clips": rt["show_clips"],
                      "clean": {k: round(rt["clean"][k], 4) for k in keys if k in rt["clean"]},
                      "room": {k: round(plain[k], 4) for k in keys if k in plain},
                      "room_recentred": {k: round(rec[k], 4) for k in keys if k in rec},
                      "how": "train.roomtest (docs/room.md): out-of-fold models on their test clips through "
                             "simulated room microphones, shows of 8 clips per room, test room bank, "
                             "pooled metrics averaged over the seeds"},
    }


#: what ``mer-train ship default|room`` builds without options (each model's card names the rest)
PRESETS: dict[str, dict[str, object]] = {
    "default": {"recipe": RESULTS / "abl-eq+band.json", "cv": RESULTS / "abl-eq+band.json",
                "name": "mer-default", "out": MODELS / "mer-default.onnx"},
    "room": {"recipe": RESULTS / "room-stage.json", "cv": RESULTS / "room-stage.json",
             "members": ROOT / "runs" / "ship" / "room-stage-members.pt",
             "name": "mer-room", "out": MODELS / "mer-room.onnx", "fusion_from": MODELS / "mer-default.json",
             "fusion_head": "mer-room-head.json", "room_fusion": RESULTS / "room-fusion-room-stage.json",
             "room_fusion_row": "fused-roomhead", "threads": 1},
}


def _path_or_none(s: str) -> Path | None:
    """A path option that ``none`` switches off (a preset's ``--room-fusion``, for a room model
    cross-validated without the room test)."""
    return None if s.lower() == "none" else Path(s)


def main(argv: list[str] | None = None, model: str = "default") -> int:
    """``mer-train ship MODEL ARGV...``: ``model`` picks the preset (``PRESETS``)."""
    which = model  # the name ``model`` is the exported graph further down
    if which not in PRESETS:
        raise SystemExit(f"ship: error: unknown model {model!r} (use {' or '.join(PRESETS)})")
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog=f"mer-train ship {which}", description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="4q", metavar="4q|MANIFEST.csv|pmemo[:DIR]",
                    help="the clips to fit on (default 4q, as shipped; a manifest for a try on small data)")
    ap.add_argument("--recipe", type=Path, help="a cv spec result JSON (its configs)")
    ap.add_argument("--cv", type=Path, help="the complete 5-fold cv spec (or merge) result of that recipe; "
                    "without it the members are fitted and saved (--members) but not exported")
    ap.add_argument("--members", type=Path, default=ROOT / "runs" / "ship" / "members.pt",
                    help="fitted members are saved here, and loaded from here when present")
    ap.add_argument("--seeds", type=int, default=None, help="members (default: as cross-validated)")
    ap.add_argument("--teachers", type=Path, nargs="*", default=[],
                    help="members files of teacher recipes fitted on all clips (earlier runs of this "
                         "script without --cv): a recipe with fit.distill > 0 learns from them, as in "
                         "its cross-validation (cv spec --teachers)")
    ap.add_argument("--clip-features", type=Path, default=None,
                    help="the pretrained model's clip features of a recipe with fit.feature_weight > 0 "
                         "(default: the file its cross-validation used, cv spec --clip-features)")
    ap.add_argument("--fusion-from", type=Path, default=None,
                    help="copy the 'fusion' entry (teacher, head, cadences) of this card, e.g. "
                         "models/mer-default.json: the exported model is fused with the same teacher")
    ap.add_argument("--fusion-head", default=None,
                    help="with --fusion-from: another head file (in models/) for this model's fusion")
    ap.add_argument("--room-fusion", type=_path_or_none, default=None,
                    help="a room_fusion result (results/room-fusion-<cnn>.json): the card's room section "
                         "gets the teacher_offsets of its row --room-fusion-row; none: no such section")
    ap.add_argument("--room-fusion-row", default="fused+rc",
                    choices=("fused+rc", "fused-roomhead+rc", "fused+trc", "fused-roomhead+trc",
                             "fused-roomhead"),
                    help="+rc: the CNN's offsets and then the teacher's; +trc: the teacher's alone (the "
                         "card's CNN offsets become 0); none: no re-centring (both offsets 0)")
    ap.add_argument("--out", type=Path, default=MODELS / "mer-default.onnx")
    ap.add_argument("--name", default="mer-default")
    ap.add_argument("--threads", type=int, default=2)
    ap.set_defaults(**PRESETS[which])
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    log = logging.getLogger("ship")

    res = json.loads(args.recipe.read_text())
    cv = json.loads(args.cv.read_text()) if args.cv else None
    if cv is not None:
        if sorted(cv.get("folds_run", [])) != [0, 1, 2, 3, 4]:
            raise SystemExit(f"ship: error: {args.cv} is not a complete 5-fold run")
        for k in ("model", "fit"):
            if recipe_part(cv, k) != recipe_part(res, k):
                raise SystemExit(f"ship: error: {args.cv} and {args.recipe} differ in {k}")
    mcfg = ModelConfig.from_dict(res["model"])
    fit = dict(res["fit"])
    fit["augs"] = tuple(fit["augs"])
    fit["snr_db"], fit["rt60"] = tuple(fit["snr_db"]), tuple(fit["rt60"])
    fit.pop("device", None)  # where the CV ran, not part of the recipe
    fcfg = SpecFitConfig(**{**fit, "threads": args.threads, "progress": True})
    seeds = args.seeds or int(res["seeds"])

    clips = stage_clips(args.data, "ship")
    audio = load_audio(clips, mcfg.sample_rate, cache_dir=CACHE, progress=True)
    clips = audio.clips
    members = []
    t0 = time.time()
    if args.members.is_file():
        saved = torch.load(args.members, weights_only=True)
        for state in saved:
            m = build_model(mcfg)
            m.load_state_dict(state)
            members.append(m.eval())
        log.info("loaded %d fitted members from %s", len(members), args.members)
        seeds = len(members)
    teachers = []
    for f in args.teachers:
        tcfg = teacher_config(f.with_suffix(".json"), mcfg)
        for state in torch.load(f, weights_only=True):
            t = build_model(tcfg)
            t.load_state_dict(state)
            teachers.append(t.eval())
    if fcfg.distill and len(members) < seeds and not teachers:
        raise SystemExit("ship: error: the recipe distils (fit.distill > 0): give --teachers")
    if teachers:
        log.info("%d teachers from %s", len(teachers), ", ".join(map(str, args.teachers)))
    feats = None
    if fcfg.feature_weight > 0 and len(members) < seeds:
        from .cv_spec import load_clip_features

        path = args.clip_features or Path(res.get("clip_features") or "")
        if not path.is_file():
            raise SystemExit(f"ship: error: the recipe regresses clip features: give --clip-features "
                             f"({path})")
        feats = load_clip_features(path, clips, patches=bool(res.get("feature_patches")))
        log.info("clip features %s: %s", path, getattr(feats, "values", feats).shape)
    mels = mel_cache(build_model(mcfg), audio) if len(members) < seeds else []
    room_mels = None
    if fcfg.p_room > 0 and len(members) < seeds:  # a room recipe: its simulated rooms, as in its CV
        from .cv_spec import room_training_mels

        room_mels = room_training_mels(mcfg, clips, list(audio), int(res.get("room_train") or 0),
                                       str(res.get("room_train_norm") or "none"),
                                       int(res.get("stage_train") or 0))
        log.info("room training: %d room and stage-chain versions per clip", len(room_mels[0]))
    for s in range(len(members), seeds):
        torch.manual_seed(9000 + s)
        m = build_model(mcfg)
        if members:  # identical (frozen) mel filters in every member: the ensemble computes them once
            m.frontend.load_state_dict(members[0].frontend.state_dict())
        fit_spec(m, clips, mels, dataclasses.replace(fcfg, seed=9000 + s), desc=f"member {s + 1}/{seeds}",
                 teachers=teachers, clip_features=feats, room_mels=room_mels)
        members.append(m)
        log.info("member %d fitted (%.0f s)", s + 1, time.time() - t0)
        args.members.parent.mkdir(parents=True, exist_ok=True)
        torch.save([x.state_dict() for x in members], args.members)
        args.members.with_suffix(".json").write_text(json.dumps(mcfg.to_dict(), indent=1))
    if cv is None:
        log.info("members saved to %s; export with --cv once the cross-validation is complete", args.members)
        return 0
    res = cv
    model = SharedMelEnsemble(members).eval()
    teacher_note = (f"{len(teachers)} models fitted on all clips ({', '.join(map(str, args.teachers))}); "
                    f"targets = {1 - fcfg.distill:g} x labels + {fcfg.distill:g} x their mean probability"
                    if teachers else None)
    feature_targets = ("each training crop regressing the 3-s patches inside it" if res.get("feature_patches")
                       else "mean over 3-s patches")
    feature_note = (f"auxiliary regression (weight {fcfg.feature_weight:g}, training only, not exported) "
                    f"onto {args.clip_features or res.get('clip_features')}: musicnn's MSD-trained "
                    f"penultimate layer, {feature_targets} (train/experiments/musicnn_features.py)"
                    if fcfg.feature_weight > 0 else None)
    metrics = cv_metrics(res, clips)
    card_extra = {
        "description": describe(mcfg, seeds),
        "training_data": {
            "name": "4Q audio emotion dataset (Panda et al. 2018), 716 clips of 30 s, quadrant labels",
            "labels": "quadrant halves: arousal high = Q1/Q2, valence high = Q1/Q4; trained with binary "
                      "cross-entropy, so outputs are the probability of the high half (0.5 neutral)",
            "clips": len(clips),
            "artists": len({c.artist.strip().casefold() for c in clips}),
        },
        "metrics": metrics,
        "protocol": PROTOCOL.format(seeds=res["seeds"]),
        "recipe": {"model": mcfg.to_dict(), "fit": {**res["fit"], "threads": args.threads}, "seeds": seeds,
                   "trainer": "train/specfit.py (frozen mel front end, cached spectrograms)",
                   "teachers": teacher_note,
                   "clip_features": feature_note},
        "trained_on": "CPU (2 cores); no GPU was available",
        "trained": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(["mer-train", "ship", which, *argv]),
        "cv_command": res.get("command", ""),
    }
    room = room_card(res)
    if args.fusion_from is not None:
        fusion = dict(json.loads(args.fusion_from.read_text())["fusion"])
        if args.fusion_head:
            fusion["head"] = args.fusion_head
        card_extra["fusion"] = fusion
    if args.room_fusion is not None:
        if room is None or args.fusion_from is None:
            raise SystemExit("ship: error: --room-fusion needs a CV with a room test and --fusion-from")
        rf = json.loads(args.room_fusion.read_text())
        name = args.room_fusion_row
        h = "room" if "roomhead" in name else "clean"
        row = rf["rows"][name]
        keys = ("arousal_auc", "valence_auc", "valence_auc_low_arousal", "quadrant_macro_f1", "mean_arousal",
                "mean_valence")
        cnn_rc, t_rc = name.endswith("+rc"), "rc" in name
        if not cnn_rc:
            cal = [round(v, 4) for v in res["room_test"]["offsets"]["none"]["all_folds"]]
            room["offsets"] = [0.0, 0.0]
            room["offsets_note"] = ("logits added to arousal and valence for room input "
                                    "(mer_live/inference/roominput.py): 0, this model trained on "
                                    "simulated rooms is "
                                    f"left as it is (its calibration offsets were {cal}, which did not help "
                                    "on the room test)")
        if t_rc:
            src = "teacher_all_folds" if cnn_rc else "teacher_only_all_folds"
            room["teacher_offsets"] = [round(v, 4) for v in rf["offsets"][src][h]]
            after = "after the CNN's offsets " if cnn_rc else "with the CNN left as it is "
            room["offsets_note"] += ("; teacher_offsets: added to the teacher's logits before fusing, "
                                     "fitted " + after + "so the fused mean on the calibration rooms equals "
                                     "its clean mean (train/room_fusion.py, row " + name + ")")
        else:
            worst = max(abs(row[t][f"shift_{q}"]) for t in ("room_mean", "stage")
                        for q in ("arousal", "valence"))
            room["offsets_note"] += ("; the teacher is not re-centred either: its head ("
                                     + str(args.fusion_head) + ") was fitted on clean and simulated "
                                     "room audio, and the fused means on the room and stage tests stay "
                                     f"within {worst:.3f} of clean (room_fusion row " + name + ")")
        room["room_test_fused"] = {
            "how": f"{rf['command']}: the same out-of-fold CNN fused (w {rf['weight']}) with the teacher on "
                   f"mer-analyze's patches (every {rf['every_s']:g} s), head per fold ({h}), "
                   + ("re-centred" if t_rc else "not re-centred"),
            "clean": {k: round(row["clean"][k], 4) for k in keys},
            "room": {k: round(row["room_mean"][k], 4) for k in keys},
            "stage": {k: round(row["stage"][k], 4) for k in keys}}
    if room is not None:
        card_extra["room"] = room
    export_onnx(model, args.out, sample_rate=mcfg.sample_rate, window_samples=mcfg.window_samples,
                name=args.name, card_extra=card_extra)
    log.info("wrote %s (%.0f s)", args.out, time.time() - t0)
    print(json.dumps(metrics["pooled"], indent=1)[:2000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
