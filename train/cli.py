"""``mer-train``: baseline, cross-validate, fit + export, and a PMEmo stand-in, from one command.

Subcommands (``mer-train SUB --help`` for all options)::

    mer-train baseline [--data 4q|MANIFEST.csv|pmemo[:DIR]] [--k 5] [--out results/baseline.json]
    mer-train evaluate [--data ...] [--recipe spec|wave] [--model k=v ...] [--fit k=v ...]
                       [--seeds N] [--k 5] [--folds 0,1] [--out DIR]
    mer-train fit [--data ...] [--recipe spec|wave] [--model k=v ...] [--fit k=v ...] [--seeds N]
                  [--out models/NAME.onnx] [--save FIT.pt] [--cv DIR/results.json]
    mer-train export FIT.pt --out models/NAME.onnx [--cv DIR/results.json] [--name NAME]
    mer-train make-example-set DIR [--n 24] [--seconds 4] [--artists 8]
    mer-train pmemo-standin DIR

The shipped models (``models/``) and the cross-validations their cards cite::

    mer-train ship default|room [--recipe R.json --cv R.json --members F.pt ...]   # train/ship.py
    mer-train ship presence [...]        # train/presence/ (--cv --ship)
    mer-train ship teacher-head|room-head|fusion-card [...]   # the teacher's heads, the fusion entry
    python -m train ship teacher         # the musicnn teacher's ONNX, in its TF venv (train/teacher.py)
    mer-train cv spec|merge|stage|fusion|fusion-stage|room-fusion|presence [...]
    mer-train teacher-features [...]     # the teacher's features of every 4Q clip (for the heads)
    mer-train report [NAME ...]          # the results table

Everything after ``ship MODEL`` / ``cv WHAT`` goes to that stage (``mer-train ship default --help``);
each card's ``command`` is the ``mer-train`` command that built it.

Exit status: 0 done, 1 the run failed (e.g. an export that fails its parity check), 2 bad input
(options, labels, manifest). Every error is ONE line ``mer-train: error: ...`` on stderr, so a
log of a long run stays readable. torch is imported only after the input has been checked, so
bad input fails in a second, not after the import.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from mer_live.common.logs import one_line

from .data import Clip, DataError, artist_folds, load_clips
from .paths import cache_dir

log = logging.getLogger("mer_train")

PROG = "mer-train"
RECIPES = ("spec", "wave")
PROTOCOL_SPEC = (
    "artist-grouped {k}-fold cross-validation (GroupKFold on artist, artists shuffled with seed 0; "
    "an artist is never on both sides of a fold); per fold {seeds} seed(s) fitted on the training "
    "artists with the cached-spectrogram recipe (train/specfit.py), their clip scores averaged; a "
    "clip's score is the mean of the complete model's outputs over windows ending 1 s apart, framed "
    "as the runtime frames them; metrics pooled over all out-of-fold clips, and mean +- std over "
    "folds; arousal/valence high at >= 0.5, quadrant from both; majority baseline = most frequent "
    "training class."
)
PROTOCOL_WAVE = (
    "artist-grouped {k}-fold cross-validation (GroupKFold on artist, artists shuffled with seed 0; "
    "an artist is never on both sides of a fold); per fold one model fitted on the training artists "
    "with the waveform recipe (train/fit.py: live-rig augmentation on raw audio, early stopping on "
    "held-out TRAINING artists); a clip's score is the mean of the model's outputs over windows "
    "ending 1 s apart, framed as the runtime frames them; metrics pooled over all out-of-fold clips, "
    "and mean +- std over folds; arousal/valence high at >= 0.5, quadrant from both; majority "
    "baseline = most frequent training class."
)


#: ``mer-train ship MODEL``: the module (in train/) whose ``main`` builds it
SHIP = {"default": "ship", "room": "ship", "presence": "presence", "teacher": "teacher",
        "teacher-head": "fusion_head", "room-head": "room_head", "fusion-card": "fusion_card"}
#: ``mer-train cv WHAT``: the module whose ``main`` runs it
CV = {"spec": "cv_spec", "merge": "merge", "stage": "stage_eval", "fusion": "fusion_head",
      "fusion-stage": "fusion_stage", "room-fusion": "room_fusion", "presence": "presence"}
#: the stages that configure their own logging (INFO progress on stderr, as when run alone)
STAGES = ("ship", "cv", "teacher-features", "report")


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit 2."""


# ------------------------------------------------------------------------------------ parsing


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line, no usage block: errors must be readable in a log."""
        self.exit(2, f"{PROG}: error: {message} (see --help)\n")


def _convert(key: str, raw: str, default: Any) -> Any:
    """``raw`` as the type of the field's default (tuples as ``a,b,c``; ``none`` = empty tuple)."""
    try:
        if isinstance(default, bool):
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return raw.lower() in ("true", "1", "yes")
        if isinstance(default, tuple):
            if raw.lower() in ("none", ""):
                return ()
            items = [s.strip() for s in raw.split(",") if s.strip()]
            kind = type(default[0]) if default else str
            return tuple(kind(s) for s in items)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if default is None:  # optional strings (checkpoint_dir)
            return None if raw.lower() == "none" else raw
        return raw
    except ValueError:
        kind = "comma-separated list" if isinstance(default, tuple) else type(default).__name__
        raise UsageError(f"{key}={raw!r}: expected a {kind}") from None


def parse_kv(items: Sequence[str], cls: type, what: str) -> dict[str, Any]:
    """``key=value`` strings -> keyword arguments for the dataclass ``cls``, typed by its defaults.

    Unknown keys and values of the wrong type raise UsageError naming them (e.g. ``channels=8,16``,
    ``augs=eq,noise`` or ``augs=none``, ``trainable_mel=false``).
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out: dict[str, Any] = {}
    for kv in items:
        if "=" not in kv:
            raise UsageError(f"--{what} {kv!r}: expected key=value")
        k, v = kv.split("=", 1)
        k = k.strip().replace("-", "_")
        if k not in fields:
            raise UsageError(f"--{what}: unknown option {k!r} (use one of: {', '.join(sorted(fields))})")
        f = fields[k]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        out[k] = _convert(k, v.strip(), default)
    return out


def _folds_arg(s: str) -> list[int] | None:
    if not s:
        return None
    try:
        return sorted({int(x) for x in s.split(",") if x.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a comma-separated list of fold numbers") from None


def _positive(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not an integer") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{s} must be >= 1")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Train, evaluate and export mer-live's emotion models (ONNX).")
    p.add_argument("-v", "--verbose", action="count", default=0, help="-v progress log, -vv debug")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def data_opts(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--data", default="4q", metavar="4q|MANIFEST.csv|pmemo[:DIR]",
                        help="4q (../shared/data/4q, or 4q:DIR), a CSV manifest (file, artist, "
                        "arousal+valence or quadrant), or pmemo[:DIR] (a PMEmo2019 folder with "
                        "chorus/ audio)")
        sp.add_argument("--cache", type=Path, default=cache_dir(),
                        help="decoded audio / feature cache (default $MER_CACHE, else the repository's "
                        "cache/: train/paths.py)")
        sp.add_argument("--no-progress", action="store_true", help="no progress bars")
        sp.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                        help="-v progress log, -vv debug")

    def model_opts(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--recipe", choices=RECIPES, default="spec",
                        help="spec: frozen mel front end, fitted on cached spectrograms (fast; "
                        "mel_cnn/crnn); wave: the whole model on raw audio with waveform augmentation "
                        "(any arch)")
        sp.add_argument("--model", nargs="*", action="extend", default=[], metavar="K=V",
                        help="ModelConfig fields (repeatable), e.g. arch=mel_cnn sample_rate=16000 "
                        "window_seconds=3 channels=16,32,64")
        sp.add_argument("--fit", nargs="*", action="extend", default=[], metavar="K=V",
                        help="SpecFitConfig (spec) or FitConfig (wave) fields (repeatable), e.g. epochs=30 "
                        "lr=0.003 augs=eq,noise|none")
        sp.add_argument("--aug", default="all",
                        help="wave recipe augmentation: all | none | minus:a,b | only:a,b")
        sp.add_argument("--seeds", type=_positive, default=1,
                        help="spec recipe: models per fold / in the exported ensemble (default 1)")
        sp.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="wave recipe: where to train (auto: cuda when present)")
        sp.add_argument("--threads", type=_positive, default=2, help="torch CPU threads (default 2)")

    b = sub.add_parser("baseline", help="hand-crafted features + logistic regression, artist-grouped CV")
    data_opts(b)
    b.add_argument("--k", type=_positive, default=5, help="folds (default 5)")
    b.add_argument("--sr", type=_positive, default=22050, help="feature sample rate (default 22050)")
    b.add_argument("--out", type=Path, default=Path("results/baseline.json"))

    e = sub.add_parser("evaluate", help="artist-grouped cross-validation of a recipe; results.json + PNGs")
    data_opts(e)
    model_opts(e)
    e.add_argument("--k", type=_positive, default=5, help="folds (default 5)")
    e.add_argument("--folds", type=_folds_arg, default=None, help="run only these folds, e.g. 0,1")
    e.add_argument("--out", type=Path, default=Path("results/evaluate"), help="output folder")

    f = sub.add_parser("fit", help="fit on all clips and export ONNX + model card")
    data_opts(f)
    model_opts(f)
    f.add_argument("--out", type=Path, default=None, help="models/NAME.onnx (the card goes beside it)")
    f.add_argument("--save", type=Path, default=None, metavar="FIT.pt",
                   help="also keep the fitted weights, for `mer-train export` later (--out and/or --save)")
    f.add_argument("--name", default=None, help="model name in the card (default: the file's stem)")
    f.add_argument("--cv", type=Path, default=None,
                   help="results.json of `mer-train evaluate` for the card's metrics")
    f.add_argument("--checkpoint-dir", type=Path, default=None,
                   help="wave recipe: last.pt each epoch (with the best epoch's weights inside)")
    f.add_argument("--resume", action="store_true",
                   help="wave recipe: continue from --checkpoint-dir/last.pt")

    x = sub.add_parser("export", help="export fitted weights (fit --save, or --checkpoint-dir's last.pt) "
                       "to ONNX + model card")
    x.add_argument("checkpoint", type=Path, help="FIT.pt from `fit --save`, a --checkpoint-dir's last.pt, or "
                   "a members file with its .json config beside it")
    x.add_argument("--out", type=Path, required=True, help="models/NAME.onnx (the card goes beside it)")
    x.add_argument("--name", default=None, help="model name in the card (default: the file's stem)")
    x.add_argument("--cv", type=Path, default=None,
                   help="results.json of `mer-train evaluate` for the card's metrics")
    x.add_argument("--weights", choices=("best", "last"), default="best",
                   help="a --checkpoint-dir's last.pt: the best validation epoch (as fit) or the last epoch")
    x.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS)

    m = sub.add_parser("make-example-set",
                       help="write a small synthesised labelled set (clips + manifest.csv) to try training")
    m.add_argument("dir", type=Path, help="output folder (audio/ and manifest.csv are written inside)")
    m.add_argument("--n", type=_positive, default=24, help="clips (default 24)")
    m.add_argument("--seconds", type=float, default=4.0, help="clip length (default 4)")
    m.add_argument("--artists", type=_positive, default=8, help="artists over the clips (default 8)")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS)

    sh = sub.add_parser("ship", help="build a shipped model and its card: " + " | ".join(SHIP),
                        add_help=False)
    sh.add_argument("model", choices=list(SHIP), help="which model or part (" + ", ".join(SHIP) + ")")
    sh.add_argument("args", nargs=argparse.REMAINDER, help="that stage's options (MODEL --help)")
    c = sub.add_parser("cv", help="the cross-validations the model cards cite: " + " | ".join(CV),
                       add_help=False)
    c.add_argument("what", choices=list(CV), help="which cross-validation (" + ", ".join(CV) + ")")
    c.add_argument("args", nargs=argparse.REMAINDER, help="its options (WHAT --help)")
    for name, what in (("teacher-features", "the teacher's 1-s features of every 4Q clip (the heads' input)"),
                       ("report", "the results table of CV result JSONs")):
        r = sub.add_parser(name, help=what, add_help=False)
        r.add_argument("args", nargs=argparse.REMAINDER, help="its options (--help)")

    s = sub.add_parser("pmemo-standin",
                       help="PMEmo label layout + generated chorus/ audio, to try the PMEmo path")
    s.add_argument("dir", type=Path, help="output folder (PMEmo2019/ is written inside)")
    s.add_argument("--labels", type=Path, default=None,
                   help="PMEmo2019 labels folder (default ../shared/data/pmemo-labels/PMEmo2019)")
    s.add_argument("--n", type=_positive, default=None, help="only the first N songs (default all)")
    s.add_argument("--seconds", type=float, default=None, help="clip length (default: metadata duration)")
    s.add_argument("--format", choices=("mp3", "wav", "flac"), default="mp3")
    s.add_argument("--sr", type=_positive, default=22050)
    s.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS)
    return p


# --------------------------------------------------------------------------------------- data


def load_data(spec: str) -> tuple[list[Clip], str]:
    """``(clips, description)`` of ``--data`` (``data.load_clips``; bad input is a UsageError)."""
    return load_clips(spec)


def describe(clips: Sequence[Clip], desc: str) -> str:
    """One line on what was trained on: name, clips, artists, label kind, quadrant counts."""
    artists = len({c.artist.strip().casefold() or c.id for c in clips})
    q = np.bincount([c.quadrant for c in clips], minlength=5)[1:]
    kind = "continuous arousal/valence" if all(c.has_continuous for c in clips) else "quadrant labels"
    return (f"{desc}: {len(clips)} clips, {artists} artists, {kind}; quadrants Q1 {q[0]}, Q2 {q[1]}, "
            f"Q3 {q[2]}, Q4 {q[3]}")


BINARY_KEYS = ("arousal_high", "valence_high", "quadrant")


def _summary(lab: dict[str, Any], idx: np.ndarray, scores: np.ndarray, train_idx: np.ndarray | None = None
             ) -> dict[str, Any]:
    """metrics.summarize of ``scores`` against the labels ``lab`` at ``idx`` (majority of ``train_idx``)."""
    from .metrics import summarize

    cont = lab["continuous"]
    return summarize(scores, arousal_high=lab["arousal_high"][idx], valence_high=lab["valence_high"][idx],
                     quadrant=lab["quadrant"][idx], continuous=None if cont is None else cont[idx],
                     train=None if train_idx is None else {k: lab[k][train_idx] for k in BINARY_KEYS})


def _labels(clips: Sequence[Clip]) -> dict[str, np.ndarray | None]:
    cont = np.array([[c.arousal, c.valence] for c in clips], np.float64) if all(
        c.has_continuous for c in clips) else None
    return {
        "arousal_high": np.array([c.arousal_high for c in clips], np.int64),
        "valence_high": np.array([c.valence_high for c in clips], np.int64),
        "quadrant": np.array([c.quadrant for c in clips], np.int64),
        "continuous": cont,
    }


# ------------------------------------------------------------------------------------ metrics


def flat_metrics(clips: Sequence[Clip], scores: np.ndarray, train: Sequence[Clip] | None = None
                 ) -> dict[str, float]:
    """One flat dict of every clip-level metric of ``scores [n, 2]`` against ``clips``' labels.

    AUC, accuracy, balanced accuracy and MCC per dimension, quadrant accuracy / macro-F1 / balanced
    accuracy, each with its majority baseline (majority of ``train`` when given); for continuous
    labels also RMSE, MAE, Pearson r, R² and CCC per dimension.
    """
    from .metrics import summarize

    lab = _labels(clips)
    tr = _labels(train) if train is not None else None
    s = summarize(scores, arousal_high=lab["arousal_high"], valence_high=lab["valence_high"],
                  quadrant=lab["quadrant"], continuous=lab["continuous"],
                  train=None if tr is None else {k: tr[k] for k in BINARY_KEYS})
    out: dict[str, float] = {}
    for d in ("arousal", "valence"):
        part = s[d]
        for k in ("auc", "accuracy", "balanced_accuracy", "mcc", "majority_accuracy"):
            out[f"{d}_{k}"] = float(part[k])
        for k, v in part.get("regression", {}).items():
            if k != "n":
                out[f"{d}_{k}"] = float(v)
    q = s["quadrant"]
    for k in ("accuracy", "macro_f1", "balanced_accuracy", "majority_accuracy", "majority_macro_f1"):
        out[f"quadrant_{k}"] = float(q[k])
    low = np.isin(lab["quadrant"], (3, 4))  # sad vs calm: where such models fail most
    if low.sum() and len(set(lab["valence_high"][low])) == 2:
        from .metrics import auc

        out["valence_auc_low_arousal"] = auc(lab["valence_high"][low], scores[low, 1])
    return out


def mean_std(per_fold: Sequence[dict[str, float]]) -> dict[str, dict[str, float]]:
    keys = sorted({k for m in per_fold for k in m})
    vals = {k: np.array([m.get(k, math.nan) for m in per_fold], np.float64) for k in keys}
    import warnings

    with warnings.catch_warnings():  # a metric NaN in every fold (one class only) stays NaN, quietly
        warnings.simplefilter("ignore", RuntimeWarning)
        return {"mean": {k: float(np.nanmean(v)) for k, v in vals.items()},
                "std": {k: float(np.nanstd(v)) for k, v in vals.items()}}


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _clean(o: Any) -> Any:
    """NaN -> None, recursively (JSON has no NaN)."""
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_clean(v) for v in o]
    return o


def jsonable(obj: Any) -> Any:
    """Plain JSON values (numpy -> Python, NaN -> None)."""
    return _clean(json.loads(json.dumps(obj, default=_json_default)))


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(jsonable(obj), indent=1)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    tmp.replace(path)


# ------------------------------------------------------------------------------------ configs


def model_config(args: argparse.Namespace):
    from .models import ModelConfig

    kw = parse_kv(args.model, ModelConfig, "model")
    if args.recipe == "spec":
        kw.setdefault("trainable_mel", False)  # the cache depends on fixed filters
    try:
        cfg = ModelConfig(**kw)
    except ValueError as e:
        raise UsageError(f"--model: {e}") from None
    if args.recipe == "spec" and cfg.arch == "raw_cnn":
        raise UsageError("--recipe spec needs a spectrogram model (arch=mel_cnn or crnn); "
                         "use --recipe wave for raw_cnn")
    return cfg


def fit_config(args: argparse.Namespace, progress: bool):
    if args.recipe == "spec":
        from .specfit import SpecFitConfig

        kw = parse_kv(args.fit, SpecFitConfig, "fit")
        kw.setdefault("threads", args.threads)
        kw.setdefault("progress", progress)
        kw.setdefault("device", args.device)
        try:
            return SpecFitConfig(**kw)
        except (ValueError, TypeError) as e:
            raise UsageError(f"--fit: {e}") from None
    from .fit import FitConfig

    kw = parse_kv(args.fit, FitConfig, "fit")
    kw.setdefault("threads", args.threads)
    kw.setdefault("progress", progress)
    kw.setdefault("device", args.device)
    if getattr(args, "checkpoint_dir", None) is not None:
        kw["checkpoint_dir"] = str(args.checkpoint_dir)
    if getattr(args, "resume", False):
        kw["resume"] = True
    try:
        return FitConfig(**kw)
    except (ValueError, TypeError) as e:
        raise UsageError(f"--fit: {e}") from None


def aug_config(spec: str):
    from .augment import AugmentConfig

    try:
        if spec == "all":
            return AugmentConfig()
        if spec == "none":
            return AugmentConfig.none()
        if spec.startswith("minus:"):
            return AugmentConfig().without(*spec[6:].split(","))
        if spec.startswith("only:"):
            return AugmentConfig().only(*spec[5:].split(","))
    except ValueError as e:
        raise UsageError(f"--aug: {e}") from None
    raise UsageError(f"--aug {spec!r}: use all, none, minus:a,b or only:a,b")


def _check_recipe_opts(args: argparse.Namespace) -> None:
    if args.recipe == "wave" and args.seeds > 1:
        raise UsageError("--seeds > 1 applies to the spec recipe (an ensemble sharing one mel front end)")
    if args.recipe == "spec" and args.aug != "all":
        raise UsageError("--aug applies to the wave recipe; the spec recipe takes --fit augs=a,b|none")
    if args.recipe == "spec" and (getattr(args, "checkpoint_dir", None) or getattr(args, "resume", False)):
        raise UsageError("--checkpoint-dir/--resume apply to the wave recipe (a spec fit takes minutes)")


def _load_audio(clips: Sequence[Clip], sr: int, args: argparse.Namespace):
    from .cache import load_audio

    audio = load_audio(clips, sr, cache_dir=args.cache, progress=not args.no_progress)
    if len(audio.clips) < 2:
        raise UsageError(f"only {len(audio.clips)} clip(s) decoded; need at least 2")
    return audio


# ----------------------------------------------------------------------------------- commands


def cmd_baseline(args: argparse.Namespace) -> int:
    from .baseline import cross_validate_features, report
    from .cache import load_audio
    from .features import feature_matrix

    clips, desc = load_data(args.data)
    audio = load_audio(clips, args.sr, cache_dir=args.cache, progress=not args.no_progress)
    clips = audio.clips
    n_artists = len({c.artist.strip().casefold() or c.id for c in clips})
    if n_artists < args.k:
        raise UsageError(f"cannot make {args.k} artist folds from {n_artists} artists (lower --k)")
    X, names = feature_matrix(audio, args.sr, ids=[c.id for c in clips], cache_dir=args.cache,
                              progress=not args.no_progress)
    res = cross_validate_features(X, clips, k=args.k, seed=0)
    table = report(res, n_artists, desc.split(":")[0], 0, args.k)
    print(table)
    write_json(args.out, {
        "data": describe(clips, desc), "k": args.k, "seed": 0, "n_features": res.n_features,
        "features": names, "pooled": res.summary, "quadrant_4class": res.quadrant_4class,
        "folds": res.fold_summaries, "table": table, "ids": [c.id for c in clips],
        "oof": res.pred, "oof_quadrant_4class": res.quadrant_pred, "dropped": audio.dropped,
    })
    log.info("wrote %s", args.out)
    return 0


def _summary_table(name: str, clips: Sequence[Clip], oof: np.ndarray, fold_sums: list, protocol: str) -> str:
    """The markdown table: pooled out-of-fold metrics +- the std over folds (folds where a metric
    is undefined, e.g. an AUC of a fold with one class only, are left out of its std)."""
    from .metrics import format_table, summarize

    keys = ["arousal.auc", "valence.auc", "arousal.balanced_accuracy", "valence.balanced_accuracy",
            "arousal.mcc", "valence.mcc", "quadrant.accuracy", "quadrant.macro_f1"]
    if all(c.has_continuous for c in clips):
        keys += ["arousal.regression.r2", "valence.regression.r2", "arousal.regression.ccc",
                 "valence.regression.ccc"]
    lab = _labels(clips)
    pooled = summarize(oof, arousal_high=lab["arousal_high"], valence_high=lab["valence_high"],
                       quadrant=lab["quadrant"], continuous=lab["continuous"])
    spread = None
    if len(fold_sums) > 1:
        spread = {name: {}}
        for key in keys:
            vals = []
            for fs in fold_sums:
                v: Any = fs
                for part in key.split("."):
                    v = v.get(part) if isinstance(v, dict) else None
                if v is not None and math.isfinite(float(v)):
                    vals.append(float(v))
            if len(vals) > 1:
                spread[name][key] = (float(np.mean(vals)), float(np.std(vals)))
    how = protocol + (" Cells: pooled value ± std across folds." if spread else "")
    return format_table({name: pooled}, how, spread=spread)


def cmd_evaluate(args: argparse.Namespace) -> int:
    _check_recipe_opts(args)
    progress = not args.no_progress
    clips, desc = load_data(args.data)
    mcfg = model_config(args)
    fcfg = fit_config(args, progress=False)
    aug = aug_config(args.aug) if args.recipe == "wave" else None
    n_artists = len({c.artist.strip().casefold() or c.id for c in clips})
    if n_artists < args.k:
        raise UsageError(f"cannot make {args.k} artist folds from {n_artists} artists (lower --k)")
    if args.folds is not None and max(args.folds) >= args.k:
        raise UsageError(f"--folds {args.folds}: folds are 0..{args.k - 1}")

    import torch
    from tqdm.auto import tqdm

    from .fit import predict_clips
    from .models import build_model, count_flops
    from .plots import av_scatter_png, confusion_png, curves_png

    torch.set_num_threads(args.threads)
    audio = _load_audio(clips, mcfg.sample_rate, args)
    clips = audio.clips
    folds = artist_folds(clips, k=args.k, seed=0)
    run = args.folds if args.folds is not None else list(range(args.k))
    oof = np.full((len(clips), 2), np.nan)
    per_fold: list[dict[str, float]] = []
    fold_sums: list[dict[str, Any]] = []
    histories: dict[str, list[float]] = {}
    secs: list[float] = []
    lab = _labels(clips)
    if args.recipe == "spec":
        from .specfit import cached_mels, fit_spec

        mels = cached_mels(build_model(mcfg), list(audio), clips, args.cache)
    t_all = time.time()
    for k in tqdm(run, desc="folds", unit="fold", disable=not progress):
        tr, te = folds[k]
        t0 = time.time()
        tr_clips = [clips[i] for i in tr]
        if args.recipe == "spec":
            scores = []
            for s in range(args.seeds):
                seed = fcfg.seed + 1000 * k + s  # as train/cv_spec.py (fcfg.seed 0)
                torch.manual_seed(seed)
                model = build_model(mcfg)
                res = fit_spec(model, tr_clips, [mels[i] for i in tr],
                               dataclasses.replace(fcfg, seed=seed), desc=f"fold {k} seed {s}")
                histories[f"fold {k} seed {s} loss"] = [h["loss"] for h in res.history]
                scores.append(predict_clips(model, [audio[i] for i in te], 1.0))
            sc = np.mean(scores, axis=0)
        else:
            from .fit import fit_model

            torch.manual_seed(k)
            model = build_model(mcfg)
            ck = fcfg.checkpoint_dir
            cfg_k = dataclasses.replace(fcfg, seed=fcfg.seed + k,
                                        checkpoint_dir=str(Path(ck) / f"fold{k}") if ck else None)
            res = fit_model(model, tr_clips, [audio[i] for i in tr], cfg_k, aug, desc=f"fold {k}")
            histories[f"fold {k} loss"] = [h["loss"] for h in res.history]
            sc = predict_clips(res.model, [audio[i] for i in te], fcfg.eval_hop_seconds)
        oof[te] = sc
        te_clips = [clips[i] for i in te]
        m = flat_metrics(te_clips, sc, tr_clips)
        per_fold.append(m)
        fold_sums.append(_summary(lab, te, sc, tr))
        secs.append(time.time() - t0)
        log.info("fold %d: a_auc %.3f v_auc %.3f quad_f1 %.3f (%.0f s)", k, m["arousal_auc"],
                 m["valence_auc"], m["quadrant_macro_f1"], secs[-1])

    done = ~np.isnan(oof[:, 0])
    d_clips = [c for c, ok in zip(clips, done, strict=True) if ok]
    protocol = (PROTOCOL_SPEC if args.recipe == "spec" else PROTOCOL_WAVE).format(k=args.k, seeds=args.seeds)
    if len(run) < args.k:
        protocol += f" Only folds {run} of {args.k} were run; pooled metrics cover their clips only."
    pooled = flat_metrics(d_clips, oof[done])
    pooled_summary = _summary(lab, np.flatnonzero(done), oof[done])
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    recipe_cfg = {"model": mcfg.to_dict(),
                  "fit": (dataclasses.asdict(fcfg) if args.recipe == "wave" else
                          {**dataclasses.asdict(fcfg), "augs": list(fcfg.augs)}),
                  "augment": dataclasses.asdict(aug) if aug is not None else None}
    table = _summary_table(f"{mcfg.arch} ({args.recipe} recipe)", d_clips, oof[done], fold_sums, protocol)
    res_json = {
        "data": describe(clips, desc), "recipe": args.recipe, "seeds": args.seeds, "k": args.k,
        "fold_seed": 0, "folds_run": run, **recipe_cfg,
        "flops_per_window": count_flops(build_model(mcfg)),
        "folds": per_fold, **mean_std(per_fold), "pooled": pooled, "pooled_summary": pooled_summary,
        "fold_summaries": fold_sums, "protocol": protocol, "table": table, "seconds": secs,
        "seconds_total": time.time() - t_all, "histories": histories,
        "ids": [c.id for c in clips],
        "oof": [None if np.isnan(r[0]) else [float(r[0]), float(r[1])] for r in oof],  # None: fold not run
        "command": command_line(),
    }
    write_json(out / "results.json", res_json)
    confusion_png(pooled_summary["quadrant"]["confusion"], out / "confusion.png",
                  title=f"pooled out-of-fold quadrants ({len(d_clips)} clips)")
    curves_png(histories, out / "curves.png", title="training loss per fold")
    av_scatter_png(oof[done], out / "av_scatter.png",
                   true=None if lab["continuous"] is None else lab["continuous"][done],
                   quadrant=lab["quadrant"][done], title="out-of-fold clip scores")
    print(table)
    print(f"wrote {out / 'results.json'}, confusion.png, curves.png, av_scatter.png")
    return 0


def card_metrics(cv_path: Path, mcfg_dict: dict[str, Any], recipe: str) -> tuple[dict[str, Any], str]:
    """``(metrics, protocol)`` for the card from an evaluate results.json: pooled values and
    ``[mean, std]`` over folds per metric. A results file of another recipe/model is a warning."""
    try:
        cv = json.loads(Path(cv_path).read_text(encoding="utf-8"))
        pooled, mean, std, protocol = cv["pooled"], cv["mean"], cv["std"], cv["protocol"]
    except FileNotFoundError:
        raise UsageError(f"--cv {cv_path}: file not found") from None
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise UsageError(f"--cv {cv_path}: not a results.json of `mer-train evaluate` ({type(e).__name__}: "
                         f"{e})") from None
    if cv.get("model") != mcfg_dict or cv.get("recipe") != recipe:
        log.warning("--cv %s was measured with another recipe or model config than this fit", cv_path)
    metrics = {
        "pooled": pooled,
        "mean_std": {k: [mean[k], std.get(k)] for k in mean},
        "folds_run": cv.get("folds_run"), "k": cv.get("k"), "seeds": cv.get("seeds"),
        "data": cv.get("data"), "cv_command": cv.get("command"),
    }
    return metrics, protocol


def cmd_fit(args: argparse.Namespace) -> int:
    _check_recipe_opts(args)
    progress = not args.no_progress
    if args.out is None and args.save is None:
        raise UsageError("give --out models/NAME.onnx (export now) and/or --save FIT.pt (export later)")
    if args.out is not None and args.out.suffix != ".onnx":
        raise UsageError(f"--out {args.out}: the model file must end in .onnx")
    clips, desc = load_data(args.data)
    mcfg = model_config(args)
    fcfg = fit_config(args, progress=progress)
    aug = aug_config(args.aug) if args.recipe == "wave" else None
    metrics, protocol = (card_metrics(args.cv, mcfg.to_dict(), args.recipe) if args.cv is not None
                         else (None, "not measured: fit without --cv"))

    import torch

    from .export import ExportError, export_onnx
    from .models import build_model

    torch.set_num_threads(args.threads)
    audio = _load_audio(clips, mcfg.sample_rate, args)
    clips = audio.clips
    name = args.name or (args.out or args.save).stem
    t0 = time.time()
    if args.recipe == "spec":
        from .ensemble import SharedMelEnsemble
        from .specfit import cached_mels, fit_spec

        mels = cached_mels(build_model(mcfg), list(audio), clips, args.cache)
        members = []
        for s in range(args.seeds):
            torch.manual_seed(fcfg.seed + s)
            m = build_model(mcfg)
            fit_spec(m, clips, mels, dataclasses.replace(fcfg, seed=fcfg.seed + s), desc=f"seed {s}")
            members.append(m.eval())
        final: torch.nn.Module = SharedMelEnsemble(members).eval() if args.seeds > 1 else members[0]
        fit_dict = {**dataclasses.asdict(fcfg), "augs": list(fcfg.augs)}
    else:
        from .fit import fit_model

        torch.manual_seed(fcfg.seed)
        res = fit_model(build_model(mcfg), clips, list(audio), fcfg, aug, desc="fit")
        final = res.model.to("cpu").eval()
        members = [final]
        fit_dict = {**dataclasses.asdict(fcfg), "best_epoch": res.best_epoch}
    secs = time.time() - t0
    card_extra: dict[str, Any] = {
        "training_data": describe(clips, desc),
        **({"metrics": metrics} if metrics is not None else {}),
        "protocol": protocol,
        "recipe": {"recipe": args.recipe, "seeds": args.seeds, "model": mcfg.to_dict(), "fit": fit_dict,
                   "augment": dataclasses.asdict(aug) if aug is not None else None,
                   "fit_seconds": round(secs, 1)},
        "command": command_line(),
    }
    if args.save is not None:
        from .checkpoint import save_checkpoint

        save_checkpoint(args.save, members, mcfg, jsonable(card_extra))
        print(f"wrote {args.save} ({len(members)} fitted model(s); `{PROG} export {args.save} --out "
              f"models/NAME.onnx` exports it)")
    if args.out is None:
        return 0
    try:
        export_onnx(final, args.out, sample_rate=mcfg.sample_rate, window_samples=mcfg.window_samples,
                    name=name, card_extra=jsonable(card_extra))
    except ExportError as e:
        raise RuntimeError(str(e)) from None
    print(f"wrote {args.out} and {args.out.with_suffix('.json')} ({len(clips)} clips, fit {secs:.0f} s)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Fitted weights -> ``models/NAME.onnx`` + card, through the same verified export as ``fit``."""
    if args.out.suffix != ".onnx":
        raise UsageError(f"--out {args.out}: the model file must end in .onnx")
    if not args.checkpoint.is_file():
        raise UsageError(f"checkpoint not found: {args.checkpoint}")

    from .checkpoint import CheckpointError, load_checkpoint
    from .export import ExportError, export_onnx

    try:
        ck = load_checkpoint(args.checkpoint, args.weights)
        model = ck.build()
    except CheckpointError as e:
        raise UsageError(str(e)) from None
    mcfg = ck.model_config
    fitted = dict(ck.card)
    recipe = str((fitted.get("recipe") or {}).get("recipe", "spec"))
    if args.cv is not None:
        metrics, protocol = card_metrics(args.cv, mcfg.to_dict(), recipe)
    else:
        metrics, protocol = fitted.get("metrics"), fitted.get("protocol", "not measured: export without --cv")
    card_extra: dict[str, Any] = {
        **{k: v for k, v in fitted.items() if k not in ("metrics", "protocol", "command")},
        **({"metrics": metrics} if metrics is not None else {}),
        "protocol": protocol,
        "command": command_line(),
        "fit_command": fitted.get("command"),
        "exported_from": f"{args.checkpoint.name} ({ck.kind}, {len(ck.members)} member(s))",
    }
    try:
        export_onnx(model, args.out, sample_rate=mcfg.sample_rate, window_samples=mcfg.window_samples,
                    name=args.name or args.out.stem, card_extra=jsonable(card_extra))
    except ExportError as e:
        raise RuntimeError(str(e)) from None
    print(f"wrote {args.out} and {args.out.with_suffix('.json')} (from {args.checkpoint}, "
          f"{len(ck.members)} member(s))")
    return 0


def cmd_make_example_set(args: argparse.Namespace) -> int:
    from .exampleset import make_example_set

    if args.n < 2:
        raise UsageError("--n must be at least 2")
    if not 1 <= args.seconds <= 600:
        raise UsageError("--seconds must be in 1..600")
    csv_path = make_example_set(args.dir, n=args.n, seconds=args.seconds, n_artists=args.artists,
                                seed=args.seed)
    artists = min(args.artists, args.n)
    print(f"wrote {csv_path} and {args.n} clips in {args.dir / 'audio'} ({artists} artists); "
          f"try: {PROG} evaluate --data {csv_path} --k 3")
    return 0


def cmd_pmemo_standin(args: argparse.Namespace) -> int:
    from .pmemo import default_root, make_standin_chorus

    labels = args.labels if args.labels is not None else default_root()
    if not (Path(labels) / "metadata.csv").is_file():
        raise UsageError(f"--labels {labels}: no PMEmo2019 metadata.csv there")
    if args.seconds is not None and not 1 <= args.seconds <= 600:
        raise UsageError("--seconds must be in 1..600")
    root = make_standin_chorus(labels, args.dir, n=args.n, seconds=args.seconds, sr=args.sr, fmt=args.format)
    n = sum(1 for _ in (root / "chorus").glob(f"*.{args.format}"))
    print(f"wrote {root} ({n} generated chorus clips); try: {PROG} evaluate --data pmemo:{root}")
    return 0


def cmd_stage(args: argparse.Namespace) -> int:
    """``ship``, ``cv``, ``teacher-features``, ``report``: the rest of the line goes to the stage."""
    import importlib

    rest = list(args.args)
    if args.cmd == "ship" and args.model in ("default", "room"):
        from .ship import main as ship_main

        return ship_main(rest, model=args.model)
    if args.cmd in ("ship", "cv") and (args.model if args.cmd == "ship" else args.what) == "presence":
        from .presence.run import main as presence_main

        preset = ("--cv", "--ship") if args.cmd == "ship" else ("--cv",)
        return presence_main(rest, prog=f"{PROG} {args.cmd} presence", preset=preset)
    if args.cmd == "ship" and args.model == "teacher":  # a conversion: run by the musicnn venv's python
        from .teacher import main as teacher_main

        return teacher_main(["build", *rest])
    if args.cmd == "ship" and args.model == "teacher-head":
        from .fusion_head import main as head_main

        return head_main(rest, prog=f"{PROG} ship teacher-head")
    module = {"ship": lambda: SHIP[args.model], "cv": lambda: CV[args.what],
              "teacher-features": lambda: "teacher_features", "report": lambda: "report"}[args.cmd]()
    return int(importlib.import_module(f"{__package__}.{module}").main(rest) or 0)


# ---------------------------------------------------------------------------------------- main

_ARGV: list[str] = []


def command_line() -> str:
    """The exact command as typed (for the card and results.json)."""
    return " ".join(shlex.quote(a) for a in [PROG, *_ARGV])


def main(argv: list[str] | None = None) -> int:
    global _ARGV
    argv = list(sys.argv[1:] if argv is None else argv)
    _ARGV = argv
    if argv and argv[0] in ("teacher-features", "report"):  # argparse's REMAINDER cannot lead with options
        args = argparse.Namespace(cmd=argv[0], args=argv[1:], verbose=0)
    else:
        args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose >= 2 else logging.INFO if args.verbose else logging.WARNING
    if args.cmd not in STAGES:  # the stages set up their own progress log
        logging.basicConfig(level=level, format=f"{PROG}: %(message)s", stream=sys.stderr)
    logging.getLogger("mer_train").setLevel(level)
    for noisy in ("matplotlib", "PIL", "onnxscript", "onnx_ir"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    cmds = {"baseline": cmd_baseline, "evaluate": cmd_evaluate, "fit": cmd_fit, "export": cmd_export,
            "make-example-set": cmd_make_example_set, "pmemo-standin": cmd_pmemo_standin,
            **{c: cmd_stage for c in STAGES}}
    try:
        return cmds[args.cmd](args)
    except (UsageError, DataError) as e:
        print(f"{PROG}: error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a failed run: one line; the traceback with -vv
        if args.verbose >= 2:
            raise
        print(f"{PROG}: error: {one_line(e)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
