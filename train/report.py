"""Markdown tables of complete 5-fold CV results (cv spec / merge / blend), for README and docs.

``mer-train report RESULT[=label] ... [--baseline results/baseline.json] [--stage]``

``--room`` instead prints the room-test table (``room_test`` of ``stage_eval --room-test`` or
``cv spec --room-test``: clean, stage test and room test, per room path, means over seeds).

``--shared-errors`` instead says how far the results' arousal errors are the same clips: how many
clips land on the wrong side of 0.5 in every result, in at least half of them, and per result.

Every row is recomputed from the result's out-of-fold clip scores with ``metrics.summarize``
(pooled over all 716 clips) in the artist folds of ``data.artist_folds(k=5, seed=0)``; ``--stage``
adds a row per result scored on the stage-degraded test audio (``cv spec --stage-test``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .data import load_4q
from .metrics import format_table, summarize
from .paths import RESULTS

COLUMNS = (
    ("arousal AUC", "arousal.auc"),
    ("valence AUC", "valence.auc"),
    ("valence AUC, low arousal (sad vs calm)", "valence_low.auc"),
    ("arousal acc.", "arousal.accuracy"),
    ("valence acc.", "valence.accuracy"),
    ("arousal bal. acc.", "arousal.balanced_accuracy"),
    ("valence bal. acc.", "valence.balanced_accuracy"),
    ("arousal MCC", "arousal.mcc"),
    ("valence MCC", "valence.mcc"),
    ("quadrant acc.", "quadrant.accuracy"),
    ("quadrant bal. acc.", "quadrant.balanced_accuracy"),
    ("quadrant macro-F1", "quadrant.macro_f1"),
)

# README's narrower table (--short): the floors' metrics and the sad-vs-calm judgement
SHORT = ("arousal AUC", "valence AUC", "valence AUC, low arousal (sad vs calm)", "arousal bal. acc.",
         "valence bal. acc.", "quadrant acc.", "quadrant macro-F1")

PROTOCOL = (
    "artist-grouped 5-fold CV on the 716 4Q clips (GroupKFold on the artist, train/data.py "
    "artist_folds(k=5, seed=0)); every model fitted on the training artists only and scored on raw "
    "windows 1 s apart framed like the runtime's, a clip's score being the mean of its windows; "
    "metrics pooled over all 716 out-of-fold clip scores; thresholds 0.5; quadrant = that of the two "
    "thresholded scores. The majority baseline predicts one class for every clip (4Q is balanced: "
    "179 clips per quadrant)."
)


def resolve(name: str) -> Path:
    p = Path(name)
    return p if p.suffix == ".json" and p.is_file() else RESULTS / f"{name}.json"


def summary_of(oof: np.ndarray, clips: list) -> dict:
    """Pooled ``metrics.summarize`` of [n, 2] scores, plus valence among the low-arousal clips."""
    q = np.array([c.quadrant for c in clips])
    s = summarize(oof, quadrant=q)
    low = np.isin(q, (3, 4))
    s["valence_low"] = summarize(oof[low], quadrant=q[low])["valence"]
    return s


def rows_of(res: dict, label: str, stage: bool) -> dict[str, dict]:
    by_id = {c.id: c for c in load_4q()}
    clips = [by_id[i] for i in res["ids"]]
    out = {}
    for key, suffix in (("oof", ""), ("stage_oof", " (stage test)")):
        if key == "stage_oof" and not stage:
            continue
        if key not in res or any(r is None for r in res[key]):
            continue
        out[label + suffix] = summary_of(np.array(res[key], np.float64), clips)
    return out


def baseline_row(path: Path) -> dict[str, dict]:
    """The classic yardstick (mer-train baseline): its pooled out-of-fold predictions."""
    b = json.loads(path.read_text())
    by_id = {c.id: c for c in load_4q()}
    oof = b.get("oof") or b.get("predictions")
    ids = b.get("ids")
    if oof is None or ids is None:
        raise SystemExit(f"report: error: {path} has no out-of-fold predictions")
    clips = [by_id[i] for i in ids]
    return {"features + logistic regression (baseline)": summary_of(np.array(oof, np.float64), clips)}


def shared_errors(results: list[dict], dim: int = 0) -> dict[str, float]:
    """How many clips each share of ``results`` misjudges on dimension ``dim`` (0 arousal, 1
    valence) at 0.5: errors that every model makes are the labels' or the data's, not a recipe's."""
    by_id = {c.id: c for c in load_4q()}
    ids = results[0]["ids"]
    y = np.array([[c.arousal_high, c.valence_high][dim] for c in (by_id[i] for i in ids)], bool)
    wrong = []
    for r in results:
        if r["ids"] != ids or any(x is None for x in r["oof"]):
            raise SystemExit(f"report: error: {r.get('name')} has other clips or missing scores")
        wrong.append((np.array(r["oof"], np.float64)[:, dim] > 0.5) != y)
    n = np.sum(wrong, axis=0)
    return {"results": len(results), "clips": len(ids), "wrong_in_all": int((n == len(results)).sum()),
            "wrong_in_half": int((n >= len(results) / 2).sum()), "wrong_in_none": int((n == 0).sum()),
            "per_result": float(np.mean([w.sum() for w in wrong]))}


ROOM_COLS = (("arousal AUC", "arousal_auc"), ("valence AUC", "valence_auc"),
             ("sad vs calm AUC", "valence_auc_low_arousal"), ("quadrant macro-F1", "quadrant_macro_f1"),
             ("mean arousal", "mean_arousal"), ("mean valence", "mean_valence"))


def room_table(specs: list[str]) -> str:
    """Markdown rows of each result's room test: clean, stage and room (mean over seeds, and the
    seeds' range of macro-F1), per room path."""
    head = ["model", "test", "room path", *[c for c, _ in ROOM_COLS], "macro-F1 over seeds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 3 + "---:|" * (len(head) - 3)]
    for spec in specs:
        name, _, label = spec.partition("=")
        res = json.loads(resolve(name).read_text())
        rt = res.get("room_test")
        if not rt:
            raise SystemExit(f"report: error: {name} has no room_test (run stage_eval --room-test)")
        label = label or res.get("name", name)

        def row(test: str, path: str, m: dict, spread: str = "", label: str = label) -> None:
            vals = [f"{m.get(k, float('nan')):.3f}" for _, k in ROOM_COLS]
            lines.append(f"| {label} | {test} | {path} | " + " | ".join(vals) + f" | {spread} |")

        row("clean (line)", "-", rt["clean"])
        for path, rec in rt.get("stage", {}).items():
            row("stage", path, rec["pooled"])
        for path, rec in rt.get("room", {}).items():
            f1 = [v["pooled"]["quadrant_macro_f1"] for v in rec["seeds"].values()]
            row(f"room (seeds {','.join(rec['seeds'])})", path, rec["mean"], f"{min(f1):.3f}-{max(f1):.3f}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="mer-train report", description=__doc__)
    ap.add_argument("results", nargs="+", help="result name or path, optionally =label")
    ap.add_argument("--baseline", type=Path, help="a mer-train baseline JSON: its row first")
    ap.add_argument("--stage", action="store_true", help="also the stage-test rows")
    ap.add_argument("--short", action="store_true", help="fewer columns (README)")
    ap.add_argument("--room", action="store_true",
                    help="the room-test table instead (stage_eval --room-test)")
    ap.add_argument("--shared-errors", action="store_true",
                    help="count the clips whose arousal every / half of the results misjudge")
    args = ap.parse_args(argv)
    if args.room:
        print(room_table(args.results), end="")
        return 0
    if args.shared_errors:
        got = shared_errors([json.loads(resolve(r.partition("=")[0]).read_text()) for r in args.results])
        print(", ".join(f"{k} {v:g}" for k, v in got.items()))
        return 0
    clips = load_4q()
    # every class is equally frequent in 4Q, so "the majority class" is a tie: always Q1 (high, high)
    always_q1 = np.full((len(clips), 2), 0.75)
    rows: dict[str, dict] = {"majority baseline (always Q1)": summary_of(always_q1, clips)}
    if args.baseline:
        rows.update(baseline_row(args.baseline))
    for spec in args.results:
        name, _, label = spec.partition("=")
        res = json.loads(resolve(name).read_text())
        if sorted(res.get("folds_run", [])) != [0, 1, 2, 3, 4]:
            raise SystemExit(f"report: error: {name} is not a complete 5-fold result")
        rows.update(rows_of(res, label or res.get("name", name), args.stage))
    cols = tuple(c for c in COLUMNS if c[0] in SHORT) if args.short else COLUMNS
    print(format_table(rows, PROTOCOL, columns=cols, majority_row=False), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
