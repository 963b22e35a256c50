"""The presence model's card, its tables (docs/presence.md) and the transition plot.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .data import MUSIC_KINDS, SHOW_KINDS
from .gate import FLOORS, _gate
from .score import Transition


def show_table(per_kind: dict[str, Any], before: dict[str, Any] | None = None) -> str:
    """The music kinds' floors table: share of hops flagged music after the gate (from 2 s after
    the first full window; and from the first window), the worst group, the floor; with
    ``before`` (another per_kind) a before column."""
    head = (
        "| kind | items | groups | flagged music after the gate | from the first window | worst group "
        "| floor |"
    )
    if before is not None:
        head = head.replace("| kind | items | groups |", "| kind | items | groups | before (shipped) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for k in SHOW_KINDS + ("4q", "4q-stage", "4q-quiet", "emopia"):
        d = per_kind.get(k)
        if d is None or d["label"] != "music":
            continue
        share = 1 - d["missed_music_after_gate"]
        worst = min(d.get("groups", {}).items(), key=lambda kv: kv[1], default=("", float("nan")))
        fl = FLOORS.get(k)
        ok = "" if fl is None else (f">= {100 * fl:.0f} % " + ("held" if share >= fl else "**missed**"))
        cells = [k, str(d["items"]), str(len(d.get("groups", {})))]
        if before is not None:
            b = before.get(k)
            cells.append("" if b is None else f"{100 * (1 - b['missed_music_after_gate']):.1f} %")
        cells += [
            f"{100 * share:.1f} %",
            f"{100 * d.get('flagged_from_first_window', float('nan')):.1f} %",
            f"{worst[0]} {100 * worst[1]:.0f} %",
            ok,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ship_card(result: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    cv = result.get("cv", {})
    return {
        "description": (
            "Probability that music is playing, from 2 s of mono audio at 16000 Hz: a 40-band mel "
            "spectrogram from two short fixed DFTs (128 points at 4 kHz below 1.5 kHz, 128 at 16 kHz "
            "above), 40 ms frames, the window's mean level removed, + a 3-block CNN [8, 16, 32]."
        ),
        "training_data": {
            "music": "4Q (716 clips, 30 s; clean and stage-degraded), EMOPIA piano renders "
            f"({result['items'].get('emopia', 0)} clips, J800 piano SoundFont); quiet and crowd/talk-"
            "over-music mixtures made in training",
            "not_music": (
                f"train/negatives.py bank (seed {args.seed}): "
                + ", ".join(f"{k} {v}" for k, v in result["items"].items() if k not in MUSIC_KINDS)
                + "; speech from espeak-ng, flite and festival voices"
            ),
            "held_out": "the alsa-utils recordings of a real voice (never trained on)",
        },
        "metrics": {
            k: cv[k] for k in ("window_auc", "per_kind", "transitions", "alsa_real_voice") if k in cv
        },
        "gate": cv.get("gate"),
        "protocol": cv.get("protocol"),
        "recipe": {"model": result["model"], "fit": result["fit"]},
        "trained_on": "CPU (2 cores); no GPU was available",
        "trained": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": result["command"],
    }


def _plot_transitions(trans: Sequence[Transition], gate: Any, path: Path) -> None:
    """Probability and gate over one stream of each middle kind (out-of-fold)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = sorted({t.neg_kind for t in trans})
    fig, axes = plt.subplots(len(kinds), 1, figsize=(9, 1.7 * len(kinds)), sharex=True)
    axes = np.atleast_1d(axes)
    for ax, k in zip(axes, kinds, strict=True):
        tr = next(t for t in trans if t.neg_kind == k)
        p = tr.probs.astype(np.float32)
        t = tr.window_s + 0.1 * np.arange(len(p))
        ax.plot(t, p, lw=0.8, label="music probability")
        ax.fill_between(t, 0, _gate(p, tr.silent, gate), alpha=0.2, step="post", label="gate: music")
        for b in (tr.seg_s, 2 * tr.seg_s):
            ax.axvline(b, color="k", lw=0.6, ls="--")
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel(k, fontsize=8)
    axes[0].legend(loc="lower left", fontsize=7)
    axes[-1].set_xlabel(f"s (music | {'/'.join(kinds)} | music, out-of-fold)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def markdown(result: dict[str, Any]) -> str:
    """The CV results of a results JSON as the tables of docs/presence.md."""
    cv = result["cv"]
    g = cv["gate"]

    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{100 * v:.1f} %"

    def sec(v: float | None) -> str:
        return "never" if v is None else f"{v:.1f}"

    lines = [
        f"Window AUC (music vs. not, every 0.1-s window of every test item): {cv['window_auc']:.4f}. "
        f"Gate: on_prob {g['on_prob']}, off_prob {g['off_prob']}, on_s {g['on_s']}, off_s {g['off_s']}.",
        "",
        "| kind | items | windows | error per window (p >= 0.5) | error after the gate | "
        "declared after (median / p90 s) |",
        "|---|---|---|---|---|---|",
    ]
    order = list(MUSIC_KINDS) + [
        "silence",
        "room_tone",
        "hum",
        "applause",
        "crowd",
        "speech",
        "tuning",
        "tuning-close",
        "line_check",
    ]
    pk = cv["per_kind"]
    for k in [k for k in order if k in pk]:
        d = pk[k]
        if d["label"] == "music":
            err = (d["missed_music_per_window"], d["missed_music_after_gate"])
            dec = f"{sec(d['declare_s_median'])} / {sec(d['declare_s_p90'])} ({d['never_declared']} never)"
            lab = f"{k} (music: missed)"
        else:
            err = (d["false_music_per_window"], d["false_music_after_gate"])
            dec = f"{d['streams_with_music']} of {d['items']} streams ever flagged"
            lab = f"{k} (false music)"
        lines.append(f"| {lab} | {d['items']} | {d['windows']} | {pct(err[0])} | {pct(err[1])} | {dec} |")
    a = cv.get("alsa_real_voice") or {}
    if a.get("folds"):
        lines.append(
            f"| alsa real voice (false music; all 5 fold models) | 8 files | | "
            f"{pct(a['false_music_per_window'])} | {pct(a['false_music_after_gate'])} | "
            f"max probability {a['max_prob']:.2f} |"
        )
    lines += [
        "",
        "| music -> X -> music | streams | off delay median / p90 s (never) | on delay median / p90 s "
        "(never) | false music in X after off |",
        "|---|---|---|---|---|",
    ]
    for k, d in cv["transitions"].items():
        lines.append(
            f"| {k} | {d['streams']} | {sec(d['off_s_median'])} / {sec(d['off_s_p90'])} ({d['never_off']}) | "
            f"{sec(d['on_s_median'])} / {sec(d['on_s_p90'])} ({d['never_on']}) | "
            f"{pct(d['false_music_after_off'])} |"
        )
    if any(k in pk for k in SHOW_KINDS):
        lines += [
            "",
            show_table(pk, (cv.get("before") or {}).get("per_kind")),
        ]
    return "\n".join(lines)


def plot_tradeoff(recipes: dict[str, list[dict[str, Any]]], path: Path, x_kind: str = "tuning",
                  y_kind: str = "solo") -> None:
    """Every gate setting of ``choose_gate``'s grid (rows with ``missed_by_kind``) of each recipe:
    ``x_kind``'s false-music time against ``y_kind``'s flagged-music share, out-of-fold; filled
    where the gate keeps its delays (median on <= 2 s, p90 off <= 3 s). The floors (CAPS, FLOORS)
    box the corner a recipe must reach: no gate setting of a recipe gets there unless a point does."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .gate import CAPS, FLOORS

    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for (name, rows), c in zip(recipes.items(), ("C0", "C1", "C2", "C3", "C4"), strict=False):
        rows = [r for r in rows if "missed_by_kind" in r]
        ok = np.array([
            r["on_s_median"] is not None and r["on_s_median"] <= 2.0 and r["off_s_p90"] is not None
            and r["off_s_p90"] <= 3.0 for r in rows
        ], bool)
        x = np.array([100 * r["false_by_kind"].get(x_kind, np.nan) for r in rows])
        y = np.array([100 * (1 - r["missed_by_kind"].get(y_kind, np.nan)) for r in rows])
        ax.scatter(x[ok], y[ok], s=16, color=c, label=f"{name} (delays held)")
        ax.scatter(x[~ok], y[~ok], s=16, facecolors="none", edgecolors=c, label=f"{name} (delays missed)")
    fx, fy = 100 * CAPS.get(x_kind, 0.1), 100 * FLOORS.get(y_kind, 0.9)
    ax.axvline(fx, color="k", lw=0.8, ls="--")
    ax.axhline(fy, color="k", lw=0.8, ls="--")
    ax.fill_between([0, fx], fy, 100, color="g", alpha=0.08, label="the floors")
    ax.set_xlabel(f"{x_kind}: false music after the gate, % of time (out-of-fold)")
    ax.set_ylabel(f"{y_kind}: flagged music after the gate, %")
    ax.set_xlim(left=0)
    ax.set_ylim(top=100)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("presence gate grid: every (on_prob, off_prob, on_s, off_s)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
