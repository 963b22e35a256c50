"""One cross-validation experiment on 4Q: ``python -m train.experiments.run_cv --name X [options]``.

Writes ``train/experiments/results/<name>.json`` (per-fold metrics, mean, std, best epochs,
seconds, configs; out-of-fold scores under ``oof``) and logs to stderr. Folds: the data
engineer's ``artist_folds(clips, k=5, seed=0)`` (GroupKFold on artist), the same as the
baselines'.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict

import numpy as np

from ..augment import AugmentConfig
from ..cache import load_audio
from ..cv_spec import parse_model
from ..data import artist_folds, load_4q
from ..fit import FitConfig, cross_validate
from ..models import ModelConfig, build_model, count_flops
from ..paths import CACHE, RESULTS


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--name", required=True)
    ap.add_argument("--model", nargs="*", default=[], help="ModelConfig key=value ...")
    ap.add_argument("--aug", default="all", help="all | none | minus:a,b | only:a,b")
    ap.add_argument("--fit", nargs="*", default=[], help="FitConfig key=value ...")
    ap.add_argument("--folds", default="", help="comma-separated fold numbers 0..4 (default all)")
    ap.add_argument("--k", type=int, default=5)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)

    mcfg = ModelConfig(**parse_model(args.model))
    fcfg = FitConfig(**{"progress": False, **parse_model(args.fit)})
    if args.aug == "all":
        aug = AugmentConfig()
    elif args.aug == "none":
        aug = AugmentConfig.none()
    elif args.aug.startswith("minus:"):
        aug = AugmentConfig().without(*args.aug[6:].split(","))
    elif args.aug.startswith("only:"):
        aug = AugmentConfig().only(*args.aug[5:].split(","))
    else:
        raise SystemExit(f"--aug {args.aug!r}: use all, none, minus:a,b or only:a,b")

    clips = load_4q()
    audio = load_audio(clips, mcfg.sample_rate, cache_dir=CACHE, progress=False)
    clips = audio.clips
    folds = artist_folds(clips, k=args.k, seed=0)
    only = [int(f) for f in args.folds.split(",")] if args.folds else None
    flops = count_flops(build_model(mcfg))
    res = cross_validate(clips, list(audio), lambda: build_model(mcfg), folds, fcfg, aug, only_folds=only)
    out_dir = RESULTS
    out_dir.mkdir(exist_ok=True)
    res["oof"] = [None if np.isnan(r[0]) else [float(r[0]), float(r[1])] for r in res["oof"]]
    res["ids"] = [c.id for c in clips]
    res.update({"name": args.name, "model": mcfg.to_dict(), "aug_spec": args.aug, "flops": flops,
                "folds_run": only if only is not None else list(range(args.k)), "fit": asdict(fcfg)})
    (out_dir / f"{args.name}.json").write_text(json.dumps(res, indent=1))
    m, s = res["mean"], res["std"]
    print(f"{args.name}: arousal_auc {m['arousal_auc']:.3f}+-{s['arousal_auc']:.3f}  valence_auc "
          f"{m['valence_auc']:.3f}+-{s['valence_auc']:.3f}  quad_f1 {m['quadrant_macro_f1']:.3f}+-"
          f"{s['quadrant_macro_f1']:.3f}  best_epochs {res['best_epochs']}  s/fold "
          f"{np.mean(res['seconds']):.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
