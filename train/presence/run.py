"""The stages put together: cross-validation over the held-out folds, the shipped fit on everything,
``--before`` (a trained model scored on the corpus), and the command line (``python -m train.presence``,
``mer-train ship presence``, ``mer-train cv presence``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import pickle
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mer_live.common.hashing import sha256_of

from .. import showmusic
from ..models import ModelConfig
from ..paths import DOCS, MODELS, RESULTS, cache_dir
from .data import (
    SHOW_KINDS,
    Item,
    add_quiet,
    alsa_stream,
    load_close_tunings,
    load_music,
    load_negatives,
    load_showmusic,
    tie_tuning_folds,
)
from .export import export
from .fit import PresenceFitConfig, features, fit_presence
from .gate import _gate, choose_gate, kind_metrics, transition_metrics, window_auc
from .net import SR, PresenceNet, build_model, presence_config
from .report import _plot_transitions, markdown, plot_tradeoff, ship_card, show_table
from .score import Scored, Transition, score_fold, silent_flags, stream_probs

log = logging.getLogger(__name__)


SHIP_PATH = MODELS / "mer-presence.onnx"


def _ort(path: Path) -> Any:
    from mer_live.inference.presence import PresenceModel

    return PresenceModel(path, provider="cpu", threads=1)


def train_items(
    items: Sequence[Item],
    feats: Sequence[torch.Tensor],
    idx: Sequence[int],
    fit: PresenceFitConfig,
    cfg: ModelConfig,
    seed: int,
) -> PresenceNet:
    m = build_model(cfg, seed)
    fit_presence(m, [feats[i] for i in idx], [items[i].kind for i in idx], [items[i].label for i in idx], fit)
    return m


def run(args: argparse.Namespace) -> int:
    cache = Path(args.cache)
    cfg = presence_config(args.window)
    if args.channels:  # a wider or narrower body over the same front end (the features are the same)
        cfg = replace(cfg, channels=tuple(int(c) for c in args.channels.split(",")),
                      embed_dim=args.embed or cfg.embed_dim)
    fit = PresenceFitConfig(epochs=args.epochs, steps=args.steps, threads=args.threads, seed=args.seed)
    if not args.showmusic:  # the recipe of the model shipped on 2026-12-03 (before issue #25)
        fit = replace(fit, music_weights={"4q": 0.4, "4q-stage": 0.35, "emopia": 0.25})
    if args.lead:
        fit = replace(fit, p_lead=args.lead, lead_max=args.lead_max)
    if args.show_weight != 1.0:  # more (or fewer) music-kinds crops against the 4Q and EMOPIA ones
        w = {k: v * (args.show_weight if k in SHOW_KINDS else 1.0) for k, v in fit.music_weights.items()}
        fit = replace(fit, music_weights=w)
    t0 = time.time()
    items = load_music(cache, emopia_limit=args.emopia) + load_negatives(cache, seed=args.seed)
    if args.showmusic:
        items += load_showmusic(cache, seed=args.seed, counts=showmusic.counts(args.intro))
    if args.close_tunings:  # harder tunings, every solo instrument; held out with its solo
        items += load_close_tunings(cache, args.close_tunings, seed=args.seed)
        log.info("tunings held out with their instrument: %d", tie_tuning_folds(items))
        fit = replace(fit, negative_weights={**fit.negative_weights, "tuning-close": args.close_weight})
    items = add_quiet(items)
    if args.limit:  # a quick look: every kind, fewer items
        rng = np.random.default_rng(0)
        keep = []
        for k in sorted({i.kind for i in items}):
            ks = [i for i in items if i.kind == k]
            keep += [ks[j] for j in sorted(rng.permutation(len(ks))[: args.limit])]
        items = keep
    log.info("items: %s", {k: sum(i.kind == k for i in items) for k in sorted({i.kind for i in items})})
    fe = build_model(cfg)
    train_kinds = [i for i, it in enumerate(items) if it.kind != "4q-quiet"]  # quiet music: test only
    feats: list[torch.Tensor | None] = [None] * len(items)

    def need_features() -> None:
        if feats[train_kinds[0]] is not None:
            return
        for i, f in zip(
            train_kinds, features(fe, [items[i].audio for i in train_kinds], progress=True), strict=True
        ):
            feats[i] = f
        log.info("features in %.0f s", time.time() - t0)

    tag = args.name
    # a fold's out-of-fold results are kept (cache/presence-cv/) under a key of everything they
    # depend on, so folds can run in separate processes (--only-folds) and one run merges them
    fold_key = hashlib.sha1(
        json.dumps(
            [cfg.to_dict(), asdict(fit), sorted((i.name, i.kind, i.fold) for i in items), args.transitions],
            default=str,
        ).encode()
    ).hexdigest()[:10]
    ship_state = cache / "presence-cv" / f"{tag}-ship-{fold_key}.pt"
    ship_state.parent.mkdir(parents=True, exist_ok=True)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "name": tag,
        "model": cfg.to_dict(),
        "fit": {k: v for k, v in asdict(fit).items()},
        "command": args.command,
        "items": {k: sum(i.kind == k for i in items) for k in sorted({i.kind for i in items})},
    }
    if args.cv:
        scored: list[Scored] = []
        trans: list[Transition] = []
        alsa_folds = []
        fold_commands: dict[int, str] = {}
        only = [v.strip() for v in args.only_folds.split(",") if v.strip()]
        folds = [int(v) for v in only if v != "ship"] if only else list(range(args.folds))
        for f in folds:
            part = cache / "presence-cv" / f"{tag}-fold{f}-{fold_key}.pkl"
            if part.is_file():
                with open(part, "rb") as fh:
                    s, t, alsa, fold_commands[f] = pickle.load(fh)
                log.info("fold %d: out-of-fold results from %s", f, part.name)
            else:
                need_features()
                tr = [i for i in train_kinds if items[i].fold != f]
                te = [items[i] for i in range(len(items)) if items[i].fold == f]
                m = train_items(items, feats, tr, fit, cfg, args.seed + f)  # type: ignore[arg-type]
                onnx = cache / "presence-cv" / f"{tag}-fold{f}.onnx"
                export(m, onnx)
                pm = _ort(onnx)
                s, t = score_fold(pm, te, f, args.transitions, seed=args.seed, progress=True)
                xa = alsa_stream()
                alsa = None
                if len(xa):
                    p, tt = stream_probs(pm, xa)
                    alsa = (p, silent_flags(xa, (tt * SR).astype(int), 1600))
                fold_commands[f] = result["command"]
                with open(part.with_suffix(".tmp"), "wb") as fh:
                    pickle.dump((s, t, alsa, fold_commands[f]), fh)
                part.with_suffix(".tmp").replace(part)
            scored += s
            trans += t
            if alsa is not None:
                alsa_folds.append(alsa)
            log.info("fold %d done (%.0f s): window AUC so far %.4f", f, time.time() - t0, window_auc(scored))
        if args.only_folds:
            if "ship" in only:  # the shipped model's training, kept for the merging run
                need_features()
                m = train_items(items, feats, train_kinds, fit, cfg, args.seed)  # type: ignore[arg-type]
                torch.save(m.state_dict(), ship_state)
            log.info("folds %s kept in %s; merge with a run without --only-folds", args.only_folds, cache)
            return 0
        gate, grid = choose_gate(scored, trans)
        result["cv"] = {
            "protocol": (
                f"{args.folds} held-out folds: 4Q by artist (train.data.artist_folds k=5 seed=0; a clip's "
                "stage and quiet versions stay with it), EMOPIA by song, negatives by generator group "
                "(speech and voiced line checks by voice, the rest by seed). Each fold's model is "
                "exported to ONNX and scores its test items on the runtime's windows (2 s, hop 0.1 s); "
                "'after gate' runs mer_live.inference.presence.music_flags over each 30-s item "
                "from 'no music' "
                "(music: errors counted from 2 s after the first window). Transitions: streams of "
                "20 s music -> 20 s negative -> 20 s music from one fold's test items. The gate "
                "setting was chosen on these out-of-fold probabilities (a small grid, choose_gate)."
            ),
            "window_auc": window_auc(scored),
            "fold_commands": {str(k): v for k, v in sorted(fold_commands.items())},
            "gate": asdict(gate),
            "per_kind": kind_metrics(scored, gate),
            "transitions": transition_metrics(trans, gate),
            "alsa_real_voice": {
                "folds": len(alsa_folds),
                "false_music_per_window": float(np.mean([(p >= 0.5).mean() for p, _ in alsa_folds]))
                if alsa_folds
                else None,
                "false_music_after_gate": float(np.mean([_gate(p, s, gate).mean() for p, s in alsa_folds]))
                if alsa_folds
                else None,
                "max_prob": float(max(p.max() for p, _ in alsa_folds)) if alsa_folds else None,
            },
            "gate_grid": grid,
        }
        prior = RESULTS / f"presence-{tag}-before.json"  # --before's table of the model this replaces
        if prior.is_file():
            b = json.loads(prior.read_text())
            result["cv"]["before"] = {"model": b["model"], "sha256": b["sha256"], "per_kind": b["per_kind"]}
        np.savez_compressed(
            cache / "presence-cv" / f"{tag}-oof.npz",
            **{f"s{i}_{s.kind}": s.probs for i, s in enumerate(scored)},
            **{f"t{i}_{t.neg_kind}": t.probs for i, t in enumerate(trans)},
        )
        if trans:
            _plot_transitions(trans, gate, out_dir / f"presence-{tag}-stream.png")
        if any(s.kind == "solo" for s in scored) and any(s.kind == "tuning" for s in scored):
            plot_tradeoff({tag: grid}, out_dir / f"presence-{tag}-tradeoff.png")
        log.info("CV done in %.0f s", time.time() - t0)
    if args.ship:
        if ship_state.is_file():
            m = build_model(cfg, args.seed)
            m.load_state_dict(torch.load(ship_state))
            m.eval()
            log.info("the shipped model: trained by an --only-folds ...,ship run (%s)", ship_state.name)
        else:
            need_features()
            m = train_items(items, feats, train_kinds, fit, cfg, args.seed)  # type: ignore[arg-type]
        card = ship_card(result, args)
        if args.context:  # the phrase cue's head (train/presence/context.py): weights, gate, CV row
            from .context import ship_head

            hd = ship_head(cache, tag, args.context, args.context_speech_weight)
            card["phrase"] = hd["phrase"]
            # the card's CV numbers are the shipped gate's: max(p, head) out of fold, per kind
            cvh = hd["cv"]
            card["metrics"] = {"per_kind": cvh["error"], "groups": cvh["groups"],
                               "on_s_median": cvh["on_s_median"], "off_s_p90": cvh["off_s_p90"],
                               "levels_missed": cvh["misses"], "gate_chosen": cvh["chosen"],
                               "protocol": cvh["protocol"], "command": args.command,
                               "per_kind_is": "after the gate: music kinds the share of hops missed "
                                              "(from 4 s into the item), the rest the share flagged music",
                               "model_alone": card["metrics"], "model_alone_gate": card["gate"],
                               "p_alone_same_grid": cvh["baseline_p_alone"]}
            card["gate"] = hd["gate"]
            card["description"] += (f" The gate runs on max(p, head): a logistic head over the phrase cue of "
                                    f"the last {args.context:g} s (mer_live.inference.phrase) and p.")
            result["phrase"] = hd
        path = Path(args.ship_path)
        export(m, path, card)
        result["shipped"] = {
            "path": str(path),
            "sha256": json.loads(path.with_suffix(".json").read_text())["sha256"],
        }
    result["seconds"] = round(time.time() - t0, 1)
    out = RESULTS / f"presence-{tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=float) + "\n")
    print(f"wrote {out}")
    return 0


def score_model(onnx: Path, items: Sequence[Item], progress: bool = True) -> tuple[list[Scored], Any]:
    """Every item through one ONNX presence model (its card's gate): ``(scored, GateConfig)``."""
    from mer_live.analyze import file_cue
    from mer_live.inference import phrase
    from mer_live.inference.presence import GateConfig

    pm = _ort(onnx)
    gate = GateConfig.from_dict(pm.card.extra.get("gate") or {})
    scored, _ = score_fold(pm, items, 0, 0, progress=progress)
    if pm.phrase is not None:  # the card's head: the gate runs on max(p, head), as live
        by_name = {it.name: it for it in items}
        for s in scored:
            ends = int(round(s.window_s * SR)) + phrase.HOP * np.arange(len(s.probs))  # each window's end
            cue = file_cue(by_name[s.name].wave(), ends, pm.phrase.context_s)  # mer-analyze's cue
            s.probs = pm.phrase.raise_(s.probs.astype(np.float32), cue).astype(s.probs.dtype)
    return scored, gate


def before(args: argparse.Namespace) -> int:
    """The ``--before`` table: a trained model (default: the shipped one, which never heard the
    corpus) and its gate on every music-kinds corpus item; results JSON and the markdown table."""
    cache = Path(args.cache)
    kinds = [k.strip() for k in args.before_kinds.split(",") if k.strip()] or None
    items = load_showmusic(cache, seed=args.seed, kinds=kinds,
                           counts=showmusic.counts(kinds is not None and "intro" in kinds))
    onnx = Path(args.before)
    scored, gate = score_model(onnx, items)
    km = kind_metrics(scored, gate)
    result = {
        "model": str(onnx),
        "sha256": sha256_of(onnx),
        "command": args.command,
        "gate": asdict(gate),
        "per_kind": km,
        "items": {k: sum(i.kind == k for i in items) for k in sorted({i.kind for i in items})},
    }
    out = RESULTS / f"presence-{args.name}-before.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=float) + "\n")
    print(show_table(km))
    print(f"wrote {out}")
    return 0


def main(argv: list[str] | None = None, prog: str = "python -m train.presence",
         preset: Sequence[str] = ()) -> int:
    """The command line; ``mer-train ship presence`` is ``preset`` ``--cv --ship``, ``mer-train cv
    presence`` ``--cv``. Results and the card record ``prog`` and the options typed."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    ap.add_argument("--cv", action="store_true", help="5 held-out folds, results JSON")
    ap.add_argument("--ship", action="store_true", help="train on everything, write --ship-path + card")
    ap.add_argument("--ship-path", default=str(SHIP_PATH))
    ap.add_argument("--name", default="default")
    ap.add_argument("--window", type=float, default=2.0)
    ap.add_argument("--channels", default="", metavar="C1,C2,C3",
                    help="the conv blocks' widths (default: presence_config's 8,16,32)")
    ap.add_argument("--lead", type=float, default=0.0, metavar="P",
                    help="share of crops that begin with the silence before the sound "
                    "(PresenceFitConfig.p_lead)")
    ap.add_argument("--lead-max", type=float, default=0.6, metavar="S",
                    help="with --lead: the longest lead, a share of the window")
    ap.add_argument("--embed", type=int, default=0, help="with --channels: the MLP's width (default 32)")
    ap.add_argument("--epochs", type=int, default=PresenceFitConfig.epochs)
    ap.add_argument("--steps", type=int, default=PresenceFitConfig.steps)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument(
        "--only-folds",
        default="",
        metavar="LIST",
        help="run only these folds (e.g. 0,1,2) and keep their results in the cache; a later run "
        "without it merges the kept folds (folds in parallel processes)",
    )
    ap.add_argument(
        "--no-showmusic",
        dest="showmusic",
        action="store_false",
        help="leave out the music-kinds corpus (train/showmusic.py): the recipe before issue #25",
    )
    ap.add_argument(
        "--before",
        metavar="ONNX",
        nargs="?",
        const=str(SHIP_PATH),
        help="score a trained presence model (default: the shipped one) and its card's gate (on "
        "max(p, head) where the card has a phrase head) on the whole music-kinds corpus, print the "
        "per-kind table and exit",
    )
    ap.add_argument("--intro", action="store_true",
                    help="add the intro kind (song starts, train/showmusic.py) to the corpus (not in the "
                    "shipped gate's: docs/presence.md, Sixth step)")
    ap.add_argument("--before-kinds", default="", metavar="LIST",
                    help="with --before: only these music kinds (e.g. pad)")
    ap.add_argument("--transitions", type=int, default=30, help="music -> X -> music streams per fold")
    ap.add_argument("--emopia", type=int, default=240, help="EMOPIA clips (0: none)")
    ap.add_argument("--limit", type=int, default=0, help="at most this many items per kind (a quick look)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--show-weight",
        type=float,
        default=1.0,
        help="scale the music-kinds corpus' share of the music crops (PresenceFitConfig.music_weights)",
    )
    ap.add_argument(
        "--close-tunings",
        type=int,
        default=0,
        metavar="N",
        help="add N tunings of every solo instrument (train/tuning_close.py, kind tuning-close) and "
        "hold each instrument out as music and as a tuning together",
    )
    ap.add_argument(
        "--close-weight", type=float, default=0.12, help="tuning-close's share of the negative crops"
    )
    ap.add_argument(
        "--context",
        type=float,
        default=0.0,
        metavar="S",
        help="with --ship: fit the phrase cue's head over S s (train/presence/context.py; needs the "
        "run's chroma, `python -m train.presence.context --name NAME --chroma`) on every fold, choose "
        "the gate over max(p, head) out of fold, and put both in the card",
    )
    ap.add_argument("--context-speech-weight", type=float, default=8.0, help="speech weight in the head fit")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", default=str(cache_dir()))
    ap.add_argument("--out", default=str(DOCS))
    ap.add_argument(
        "--table", metavar="JSON", help="print a results JSON's tables (docs/presence.md) and exit"
    )
    ap.add_argument(
        "--tradeoff",
        nargs="+",
        metavar="JSON",
        help="plot solo against tuning over the gate grid of these results JSONs (docs/PNG given by "
        "--out, a file name ending in .png) and exit",
    )
    args = ap.parse_args([*preset, *argv])
    args.command = shlex.join([*prog.split(), *argv])
    if args.table:
        print(markdown(json.loads(Path(args.table).read_text())))
        return 0
    if args.tradeoff:
        recipes = {}
        for f in args.tradeoff:
            r = json.loads(Path(f).read_text())
            recipes[r["name"]] = r["cv"]["gate_grid"] if "cv" in r else r["gate_grid"]
        out = Path(args.out) if args.out.endswith(".png") else Path(args.out) / "presence-tradeoff.png"
        plot_tradeoff(recipes, out)
        print(f"wrote {out}")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.before:
        return before(args)
    if not (args.cv or args.ship):
        ap.error("nothing to do: give --cv and/or --ship")
    return run(args)
