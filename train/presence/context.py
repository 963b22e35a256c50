"""A longer-context decision on top of the 2-s presence model (issue #25, third try): the phrase
cue of ``mer_live.inference.phrase`` (held pitches and their changes over the last seconds) and the
model's probability, combined by a tiny logistic head, then the gate re-chosen on held-out folds.

Everything reuses a finished CV run (``mer-train cv presence ... --name NAME``): its per-fold
out-of-fold probabilities (``cache/presence-cv/NAME-fold*.pkl``). ``chromas`` computes every hop's
chroma for every item and transition stream of that run (same items, same order, the transitions
rebuilt from the same seeds) into ``cache/presence-cv/NAME-chroma.npz``; ``heads`` fits the head
out of fold (fold f's head never saw fold f's items: stacking on out-of-fold probabilities), runs
the gate grid over ``max(p, head)`` and over ``p`` alone, and ``table`` prints the per-kind table.

    python -m train.presence.context --name showclose --chroma      # once, ~10 min
    python -m train.presence.context --name showclose --context 6   # ~3 min: table + results JSON
"""

from __future__ import annotations

import glob
import logging
import pickle
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mer_live.inference import phrase

from .score import Scored, Transition

log = logging.getLogger(__name__)

SR = 16000


def load_oof(cache: Path, name: str) -> tuple[list[Scored], list[Transition]]:
    """A CV run's out-of-fold results, folds in order (the order ``run`` merges them in)."""
    scored: list[Scored] = []
    trans: list[Transition] = []
    for f in range(5):
        (part,) = glob.glob(str(cache / "presence-cv" / f"{name}-fold{f}-*.pkl"))
        with open(part, "rb") as fh:
            s, t, _alsa, _cmd = pickle.load(fh)
        scored += s
        trans += t
    return scored, trans


def run_items(cache: Path, close_tunings: int = 4, seed: int = 0, intro: bool = False) -> list[Any]:
    """The items of ``run`` for a showmusic run with ``--close-tunings`` (recipe C) and ``--intro``
    (or not), same order."""
    from .. import showmusic
    from .data import (
        add_quiet,
        load_close_tunings,
        load_music,
        load_negatives,
        load_showmusic,
        tie_tuning_folds,
    )

    items = load_music(cache, emopia_limit=240) + load_negatives(cache, seed=seed)
    items += load_showmusic(cache, seed=seed, counts=showmusic.counts(intro))
    if close_tunings:
        items += load_close_tunings(cache, close_tunings, seed=seed)
        tie_tuning_folds(items)
    return add_quiet(items)


def transition_audio(
    test: Sequence[Any], fold: int, n: int, seed: int = 0, seg_s: float = 20.0
) -> list[np.ndarray]:
    """The audio of ``score.score_fold``'s transition streams (same draws from the same seed)."""
    from .score import transition_streams

    return [x for _, x in transition_streams(test, fold, n, seed, seg_s)]


def _ends(n_probs: int, window_s: float) -> np.ndarray:
    w = int(round(window_s * SR))
    return w + 1600 * np.arange(n_probs)


def chromas(cache: Path, name: str, close_tunings: int = 4, reuse: str = "") -> Path:
    """Every hop's chroma (``phrase.stream_chroma``) of every scored item and transition stream of
    run ``name`` into ``cache/presence-cv/NAME-chroma.npz`` (~10 min: the items' audio is loaded
    as the run loaded it, the transitions rebuilt from the same seeds). ``reuse``: another run's
    chroma for the items both scored (same kind, name and length: the chroma depends on the audio
    only), so a run that adds a kind computes only its new items and the transitions."""
    from tqdm.auto import tqdm

    scored, trans = load_oof(cache, name)
    items = run_items(cache, close_tunings, intro=any(s.kind == "intro" for s in scored))
    order = [it for f in range(5) for it in items if it.fold == f]
    if [(i.kind, i.name) for i in order] != [(s.kind, s.name) for s in scored]:
        raise SystemExit("the items differ from the run's scored items (another recipe?)")
    old: dict[tuple[str, str], np.ndarray] = {}
    if reuse:
        z = np.load(cache / "presence-cv" / f"{reuse}-chroma.npz")
        old = {(s.kind, s.name): z[f"s{i}"] for i, s in enumerate(load_oof(cache, reuse)[0])}
    out: dict[str, np.ndarray] = {}
    kept = 0
    for i, (it, s) in enumerate(tqdm(list(zip(order, scored, strict=True)), desc="chroma", unit="item")):
        last = int(_ends(len(s.probs), s.window_s)[-1])
        prev = old.get((s.kind, s.name))
        if prev is not None and len(prev) == last // phrase.HOP:
            out[f"s{i}"], kept = prev, kept + 1
            continue
        out[f"s{i}"] = phrase.stream_chroma(it.wave(), last).astype(np.float16)
    log.info("chroma of %d items from %s, %d computed", kept, reuse or "-", len(scored) - kept)
    j = 0
    for f in range(5):
        test = [it for it in items if it.fold == f]
        for x in transition_audio(test, f, sum(t.fold == f for t in trans)):
            t = trans[j]
            last = int(_ends(len(t.probs), t.window_s)[-1])
            out[f"t{j}"] = phrase.stream_chroma(x, last).astype(np.float16)
            j += 1
    path = cache / "presence-cv" / f"{name}-chroma.npz"
    np.savez_compressed(path, **out)
    log.info("wrote %s", path)
    return path


def fast_flags(p: np.ndarray, silent: np.ndarray, gate: tuple[float, float, float, float]) -> np.ndarray:
    """``music_flags`` at a 0.1-s hop (the same holds, counted in hops as its float sums count
    them; tests/train/test_presence_context.py checks they agree), fast enough for a grid."""

    def hops(s: float) -> int:
        acc, k = 0.0, 0
        while acc < s:
            acc, k = acc + 0.1, k + 1
        return max(k, 1)

    on_p, off_p, on_s, off_s = gate
    non, noff = hops(on_s), hops(off_s)
    high, low, sil = (p >= on_p).tolist(), (p < off_p).tolist(), np.asarray(silent, bool).tolist()
    out, m, h, lo = [False] * len(high), False, 0, 0
    for i in range(len(high)):
        if sil[i]:
            m, h, lo = False, 0, 0
        else:
            h = h + 1 if high[i] else 0
            lo = lo + 1 if low[i] else 0
            if not m and high[i] and h >= non:
                m, lo = True, 0
            elif m and low[i] and lo >= noff:
                m, h = False, 0
        out[i] = m
    return np.array(out, bool)


def evaluate(scored: Sequence[Scored], probs: Sequence[np.ndarray], trans: Sequence[Transition],
             tprobs: Sequence[np.ndarray], gate: tuple[float, float, float, float]) -> dict[str, Any]:
    """``gate.kind_metrics``' after-gate error per kind (music counted from 4 s into the item),
    every music group's share flagged, and the transitions' median on / p90 off delay."""
    import math

    from .gate import quantile

    per: dict[str, list[int]] = {}
    groups: dict[str, list[int]] = {}
    for s, p in zip(scored, probs, strict=True):
        f = fast_flags(p, s.silent, gate)
        d = per.setdefault(s.kind, [0, 0])
        if s.label:
            skip = max(0, int(round((4.0 - s.window_s) / 0.1)))
            d[0] += int((~f[skip:]).sum())
            d[1] += len(f) - skip
            gr = groups.setdefault(s.group or s.kind, [0, 0])
            gr[0] += int(f[skip:].sum())
            gr[1] += len(f) - skip
        else:
            d[0] += int(f.sum())
            d[1] += len(f)
    offs, ons = [], []
    for tr, p in zip(trans, tprobs, strict=True):
        f = fast_flags(p, tr.silent, gate)
        t = tr.window_s + 0.1 * np.arange(len(f))
        mid = (t > tr.seg_s) & (t <= 2 * tr.seg_s)
        off = np.flatnonzero(mid & ~f)
        offs.append(float(t[off[0]] - tr.seg_s) if len(off) else math.inf)
        on = np.flatnonzero((t > 2 * tr.seg_s) & f)
        ons.append(float(t[on[0]] - 2 * tr.seg_s) if len(on) else math.inf)
    return {"gate": list(gate), "error": {k: v[0] / max(1, v[1]) for k, v in per.items()},
            "groups": {k: v[0] / max(1, v[1]) for k, v in sorted(groups.items())},
            "on_s_median": quantile(np.array(ons), 0.5), "off_s_p90": quantile(np.array(offs), 0.9)}


#: issue #25's levels besides gate.FLOORS / gate.CAPS: EMOPIA's missed time no worse than the
#: shipped model's, the transitions' median on delay and p90 off delay. The shipped model's 6.6 %
#: (presence-default.json) was measured on another render of EMOPIA (95,905 windows); on this
#: cache's render (93,431 windows, 7.2 % of them silent by the live rule) the shipped model and
#: its gate miss 8.9 % (``--shipped-emopia``; it trained on these songs, so that is optimistic)
EMOPIA_CAP, ON_MEDIAN_S, OFF_P90_S = 0.089, 2.0, 3.0


def misses(r: dict[str, Any]) -> list[str]:
    """The levels an ``evaluate`` row breaks (empty: every floor and cap holds)."""
    from .gate import CAPS, FLOORS

    e, bad = r["error"], []
    bad += [f"{k} {100 * (1 - e[k]):.1f} %" for k, v in FLOORS.items() if k in e and 1 - e[k] < v]
    bad += [f"{k} {100 * e[k]:.1f} %" for k, v in CAPS.items() if k in e and e[k] > v]
    if e.get("emopia", 0.0) > EMOPIA_CAP:
        bad.append(f"emopia {100 * e['emopia']:.1f} %")
    if r["on_s_median"] is None or r["on_s_median"] > ON_MEDIAN_S:
        bad.append(f"on delay {r['on_s_median']:.1f} s" if r["on_s_median"] is not None else "on delay never")
    if r["off_s_p90"] is None or r["off_s_p90"] > OFF_P90_S:
        bad.append(f"off delay {r['off_s_p90']:.1f} s" if r["off_s_p90"] is not None else "off delay never")
    return bad


def head_features(cue: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The context head's inputs: the cue, three products with "tonal now", the model's logit / 5."""
    return phrase.head_inputs(cue, p)  # the runtime's own copy: live, offline and training agree


#: kinds weighted up in the head's fit (every kind's windows otherwise weigh the same in total).
#: With the pads in the corpus (fifth step) the tunings weigh 6 (2 before) and speech 16
#: (``--context-speech-weight``): at 2 and 8 no gate over max(p, head) kept the p90 off delay
#: <= 3 s with the caps held (docs/presence.md, "Fifth step")
HEAD_WEIGHTS = {"solo": 3.0, "tuning": 6.0, "tuning-close": 6.0, "recorded": 2.0, "emopia": 2.0, "pad": 2.0,
                "intro": 2.0}
GRID = [(a, b, c, d) for a in (0.6, 0.7, 0.8, 0.9) for b in (0.2, 0.35, 0.5) for c in (0.3, 0.5)
        for d in (0.8, 1.2)]


def shipped_emopia(cache: Path, onnx: Path) -> dict[str, Any]:
    """The shipped model and its card's gate on this cache's EMOPIA renders (the reference of
    ``EMOPIA_CAP``): missed music per window and after the gate, the silent share of the hops."""
    from ..cache import load_audio
    from ..midi import load_emopia
    from .data import Item
    from .gate import kind_metrics
    from .run import score_model

    em = load_emopia(cache, limit=240, seed=0)
    ea = load_audio(em, SR, cache, workers=1, progress=False)
    items = [Item("emopia", c.artist, c.id, 1, x) for c, x in zip(ea.clips, ea, strict=True)]
    scored, gate = score_model(onnx, items, progress=False)
    km = kind_metrics(scored, gate)["emopia"]
    keys = ("items", "windows", "missed_music_per_window", "missed_music_after_gate")
    silent = float(np.mean(np.concatenate([s.silent for s in scored])))
    return {**{k: km[k] for k in keys}, "silent_share": silent}


def heads(cache: Path, name: str, context_s: float = 6.0, speech_weight: float = 4.0,
          p_cut: float = 0.8) -> dict[str, Any]:
    """The context head out of fold, the gate grid over ``max(p, head)``, and the baseline (``p``
    alone) over the same grid. The head (a logistic regression on ``head_features``) is fit, for
    each fold, on the other folds' windows whose probability is under ``p_cut`` (the ones it has
    to rescue or keep down), so fold f's head never saw fold f's kits, instruments, packages or
    voices; its output only raises the model's: q = max(p, head)."""
    from sklearn.linear_model import LogisticRegression

    scored, trans = load_oof(cache, name)
    z = np.load(cache / "presence-cv" / f"{name}-chroma.npz")

    def cue(ch: np.ndarray, n: int, window_s: float) -> np.ndarray:
        first = int(round(window_s * SR / phrase.HOP)) - 1  # the frame at the first window's end
        return phrase.stream_features(ch.astype(np.float32), context_s)[first : first + n]

    X = [head_features(cue(z[f"s{i}"], len(s.probs), s.window_s), s.probs) for i, s in enumerate(scored)]
    XT = [head_features(cue(z[f"t{j}"], len(t.probs), t.window_s), t.probs) for j, t in enumerate(trans)]
    w_kind = {**HEAD_WEIGHTS, "speech": speech_weight}
    count: dict[str, int] = {}
    for s, x in zip(scored, X, strict=True):
        count[s.kind] = count.get(s.kind, 0) + len(x)
    probs: list[np.ndarray] = [np.zeros(0)] * len(scored)
    tprobs: list[np.ndarray] = [np.zeros(0)] * len(trans)
    coefs: dict[Any, list[float]] = {}

    def fit(f: int | None) -> Any:  # the head on every fold but f (None: on every fold, the shipped one)
        tr = [i for i, s in enumerate(scored) if s.fold != f and s.kind != "4q-quiet"]
        keep = [scored[i].probs.astype(np.float32) < p_cut for i in tr]
        xf = np.concatenate([X[i][k] for i, k in zip(tr, keep, strict=True)])
        yf = np.concatenate([np.full(k.sum(), scored[i].label) for i, k in zip(tr, keep, strict=True)])
        wf = np.concatenate([np.full(k.sum(), w_kind.get(scored[i].kind, 1.0) / count[scored[i].kind])
                             for i, k in zip(tr, keep, strict=True)])
        m = LogisticRegression(C=1.0, max_iter=3000).fit(xf, yf, sample_weight=wf * len(wf) / wf.sum())
        coefs["all" if f is None else f] = [float(v) for v in m.coef_[0]] + [float(m.intercept_[0])]
        return m

    fit(None)
    for f in range(5):
        m = fit(f)
        for i, s in enumerate(scored):
            if s.fold == f:
                probs[i] = np.maximum(s.probs.astype(np.float32), m.predict_proba(X[i])[:, 1])
        for j, t in enumerate(trans):
            if t.fold == f:
                tprobs[j] = np.maximum(t.probs.astype(np.float32), m.predict_proba(XT[j])[:, 1])
    base = [s.probs.astype(np.float32) for s in scored]
    tbase = [t.probs.astype(np.float32) for t in trans]
    out: dict[str, Any] = {"name": name, "context_s": context_s, "speech_weight": speech_weight,
                           "p_cut": p_cut, "head_weights": HEAD_WEIGHTS, "coefficients": coefs,
                           "features": [*phrase.NAMES, "n_pc*tonal_now", "n_chg*tonal_now",
                                        "steady_ctx*tonal_now", "logit(p)/5"]}
    for label, pp, tp in (("baseline", base, tbase), ("context", probs, tprobs)):
        rows = []
        for g in GRID:
            r = evaluate(scored, pp, trans, tp, g)
            r["misses"] = misses(r)
            rows.append(r)
        out[label] = rows
        held = sum(not r["misses"] for r in rows)
        log.info("%s: %d of %d gate settings hold every level", label, held, len(rows))
    return out


def ship_head(cache: Path, name: str, context_s: float = 8.0, speech_weight: float = 8.0) -> dict[str, Any]:
    """What ``mer-train ship presence --context S`` puts in the card: the head fit on every fold
    ("phrase": weights, context), the gate chosen on the out-of-fold grid over max(p, head) (the
    setting with every cap and both delays held, ``best_rows``), and that setting's out-of-fold
    row (per kind, per group, delays) as the card's CV numbers."""
    res = heads(cache, name, context_s, speech_weight)
    best = best_rows(res["context"])
    key = "caps and delays held" if "caps and delays held" in best else "fewest misses"
    row = best[key]
    w = res["coefficients"]["all"]
    return {
        "phrase": {"context_s": context_s, "coef": w[:-1], "intercept": w[-1], "features": res["features"],
                   "fit": {"speech_weight": speech_weight, "p_cut": res["p_cut"],
                           "head_weights": res["head_weights"], "run": name,
                           "on": "every fold's out-of-fold windows with p < p_cut (4q-quiet left out)"}},
        "gate": dict(zip(("on_prob", "off_prob", "on_s", "off_s"), map(float, row["gate"]), strict=True)),
        "cv": {"chosen": key, **row,
               "protocol": "out-of-fold: each fold's head fit on the other folds' windows (p < p_cut), "
                           "over that fold's model's out-of-fold probabilities; the gate grid (48 settings) "
                           "over q = max(p, head); music counted from 4 s into the item "
                           "(train/presence/context.py)",
               "baseline_p_alone": best_rows(res["baseline"])},
    }


def best_rows(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Three settings of a grid: the fewest broken levels (then the most solo music), the same
    among the settings with every cap and both delays held, and the most solo with tuning <= 10 %
    and the delays held."""
    from .gate import CAPS

    def delays(r: dict[str, Any]) -> bool:
        return not any(m.startswith(("on delay", "off delay")) for m in r["misses"])

    def solo(r: dict[str, Any]) -> float:
        return 1 - r["error"]["solo"]

    capped = [r for r in rows if delays(r) and all(r["error"][k] <= c for k, c in CAPS.items())]
    tun = [r for r in rows if delays(r) and r["error"]["tuning"] <= CAPS["tuning"]]
    out = {"fewest misses": min(rows, key=lambda r: (len(r["misses"]), -solo(r)))}
    if capped:
        out["caps and delays held"] = min(capped, key=lambda r: (len(r["misses"]), -solo(r)))
    if tun:
        out["tuning <= 10 %, delays held"] = max(tun, key=solo)
    return out


def plot_grids(res: dict[str, Any], path: Path, x_kind: str, y_kind: str) -> None:
    """``report.plot_tradeoff`` over a results JSON's two grids (p alone, p + context)."""
    from .data import MUSIC_KINDS
    from .report import plot_tradeoff

    def rows(grid: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for r in grid:
            e = r["error"]
            out.append({**r, "missed_by_kind": {k: v for k, v in e.items() if k in MUSIC_KINDS},
                        "false_by_kind": {k: v for k, v in e.items() if k not in MUSIC_KINDS}})
        return out

    ctx = f"p + context ({res['context_s']:g} s)"
    plot_tradeoff({f"{res['name']}: p": rows(res["baseline"]), f"{res['name']}: {ctx}": rows(res["context"])},
                  path, x_kind, y_kind)


KINDS = ("groove-kit", "groove-gm", "groove-synth", "edm-intro", "edm", "solo", "recorded", "pad", "intro",
         "emopia",
         "speech", "crowd", "applause", "silence", "tuning", "tuning-close", "hum", "line_check", "4q",
         "4q-stage", "4q-quiet")


def table(res: dict[str, Any]) -> str:
    """Markdown: every kind for the chosen settings of the baseline and the context head."""
    from .data import MUSIC_KINDS

    cols = [(f"{lab}: {k}", r) for lab in ("baseline", "context") for k, r in best_rows(res[lab]).items()]
    lines = ["| kind | " + " | ".join(c for c, _ in cols) + " |", "|---|" + "---|" * len(cols)]
    for k in KINDS:
        if k not in cols[0][1]["error"]:
            continue
        flip = k in MUSIC_KINDS and k != "emopia"  # music: share flagged; EMOPIA, negatives: error
        val = [(1 - r["error"][k]) if flip else r["error"][k] for _, r in cols]
        lines.append(f"| {k} | " + " | ".join(f"{100 * v:.1f} %" for v in val) + " |")
    gates = " | ".join(str(tuple(r["gate"])) for _, r in cols)
    lines.append(f"| gate (on_prob, off_prob, on_s, off_s) | {gates} |")
    lines.append("| on delay median / off delay p90 | " + " | ".join(
        f"{r['on_s_median']:.1f} / {r['off_s_p90']:.1f} s" for _, r in cols) + " |")
    lines.append("| levels missed | " + " | ".join(", ".join(r["misses"]) or "none" for _, r in cols) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse

    from ..paths import cache_dir

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", default="showclose")
    ap.add_argument("--context", type=float, default=6.0, help="seconds of context of the cue")
    ap.add_argument("--speech-weight", type=float, default=4.0)
    ap.add_argument("--cache", default=str(cache_dir()))
    ap.add_argument("--chroma", action="store_true", help="compute the run's chroma (once, ~10 min)")
    ap.add_argument("--reuse", default="", metavar="RUN", help="with --chroma: take the items that run RUN "
                    "also scored from its chroma (a run that adds a kind computes only the new items)")
    ap.add_argument("--shipped-emopia", metavar="ONNX", help="score a model on the cache's EMOPIA, exit")
    ap.add_argument("--out", default="", help="results JSON (default: train/experiments/results/"
                    "presence-NAME-context.json)")
    ap.add_argument("--plot", metavar="JSON", help="plot a results JSON's grids (speech against recorded "
                    "and solo) into docs/presence-context-tradeoff*.png and exit")
    a = ap.parse_args()
    if a.plot:
        import json

        from ..paths import DOCS

        res = json.loads(Path(a.plot).read_text())
        for y, suffix in (("recorded", ""), ("solo", "-solo")):
            out = DOCS / f"presence-context-tradeoff{suffix}.png"
            plot_grids(res, out, "speech", y)
            print(f"wrote {out}")
    elif a.shipped_emopia:
        print(shipped_emopia(Path(a.cache), Path(a.shipped_emopia)))
    elif a.chroma:
        chromas(Path(a.cache), a.name, reuse=a.reuse)
    else:
        import json

        from ..paths import RESULTS

        res = heads(Path(a.cache), a.name, a.context, a.speech_weight)
        res["command"] = "python -m train.presence.context " + " ".join(sys.argv[1:])
        # every music group's share only for the chosen settings (the grid's rows: per kind)
        res["best"] = {lab: best_rows(res[lab]) for lab in ("baseline", "context")}
        best = {id(r) for v in res["best"].values() for r in v.values()}
        for lab in ("baseline", "context"):
            res[lab] = [r if id(r) in best else {k: v for k, v in r.items() if k != "groups"}
                        for r in res[lab]]
        out = Path(a.out) if a.out else RESULTS / f"presence-{a.name}-context.json"
        out.write_text(json.dumps(res, indent=1, default=float) + "\n")
        print(table(res))
        print(f"wrote {out}")
