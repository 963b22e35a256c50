"""Beat tracking through the live path on the known-grid set of ``bench/beatset.py`` (issue #31).

    python -m bench.bench_beatset [--set cache/beatset] [--label after] [--no-record]

Each item goes through ``Pipeline`` with an unpaced ``FileSource`` (the live path of
``mer-live --input``: stream clean-up, the shipped emotion and music-presence models with the
music gate, the beat tracker, the event gating) and a sink that keeps every event the sinks get,
i.e. what ``/mer/beat`` sends. Per item:

* F-measure (+-70 ms), CMLt and AMLt (mir_eval, its usual 5-s trim), of the beats that went out;
* Acc1 / Acc2: the published tempo (the median of the beats' ``bpm`` over the last 15 s) within
  4 % of the truth (Acc1) or of half or double it (Acc2; 2/3 and 3/2 count as errors);
* time to the first beat that went out, after the first true beat (1.0 s into the file);
* for the items that change tempo: seconds from the change until the published tempo stays
  within 4 % of the new one.

Per tempo class (60-90, 95-150, 160-210 BPM) the means and shares, and the whole set.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.beatset import LEAD_S, SR, tempo_class
from bench.common import ROOT, md_table, record, run_cli


class Keep:
    """A sink that keeps the events the pipeline gives its sinks, with the stream time they went out."""

    def __init__(self) -> None:
        self.pipe = None
        self.events: list[tuple[float, object]] = []

    def __call__(self, _estimate) -> None:
        pass

    def event(self, ev) -> None:
        p = self.pipe
        self.events.append((p.stream.src_read / p.src_rate, ev))


def run_item(x: np.ndarray, sr: int, model, presence, gate, beat_cfg) -> list[tuple[float, object]]:
    from mer_live.analysers.beat import make_tracker
    from mer_live.live.pipeline import Pipeline, PipelineConfig
    from mer_live.sources.filesource import FileSource

    keep = Keep()
    pipe = Pipeline(FileSource(x, sr, realtime=False, blocksize=512), model, PipelineConfig(), sinks=[keep],
                    presence=presence, gate=gate, analysers=[make_tracker(beat_cfg)])
    keep.pipe = pipe
    pipe.start()
    try:
        if not pipe.join(600):
            raise RuntimeError("pipeline did not finish")
    finally:
        pipe.stop()
    return keep.events


def score(ref: np.ndarray, beats: list[tuple[float, object]], bpm_true: float, change_t: float | None
          ) -> dict[str, float]:
    import mir_eval

    est = np.array([ev.t for _, ev in beats])
    r, e = mir_eval.beat.trim_beats(ref), mir_eval.beat.trim_beats(est)
    if change_t is not None:  # score the part after the change as its own piece
        r, e = ref[ref >= change_t + 5], est[est >= change_t + 5]
    f = mir_eval.beat.f_measure(r, e)
    # the first 5 s after the first true beat, untrimmed: what the lights get while a song starts
    t1 = ref[0]
    r5, e5 = ref[ref < t1 + 5], est[(est >= t1 - 0.07) & (est < t1 + 5.07)]
    f_early = mir_eval.beat.f_measure(r5, e5) if len(e5) else 0.0
    # mir_eval gives (CMLc, CMLt, AMLc, AMLt); this read the third as CMLt until 2026-12-07 (beat4)
    _, cmlt, _, amlt = mir_eval.beat.continuity(r, e) if len(e) > 1 and len(r) > 1 else (0.0, 0.0, 0.0, 0.0)
    end = ref[-1]
    late = [ev.bpm for _, ev in beats if ev.t >= end - 15 and ev.bpm > 0]
    bpm = float(np.median(late)) if late else 0.0
    acc1 = bpm > 0 and abs(bpm / bpm_true - 1) <= 0.04
    acc2 = bpm > 0 and any(abs(bpm / (bpm_true * k) - 1) <= 0.04 for k in (0.5, 1.0, 2.0))
    first = min((sent for sent, _ in beats), default=np.inf) - LEAD_S
    follow = np.nan
    if change_t is not None:
        ok_from = None
        for sent, ev in beats:
            if sent < change_t:
                continue
            good = ev.bpm > 0 and abs(ev.bpm / bpm_true - 1) <= 0.04
            if good and ok_from is None:
                ok_from = sent
            elif not good:
                ok_from = None
        follow = (ok_from - change_t) if ok_from is not None else np.inf
    return {"f": float(f), "cmlt": float(cmlt), "amlt": float(amlt), "acc1": float(acc1), "acc2": float(acc2),
            "first": float(first), "bpm": bpm, "follow": float(follow), "f_early": float(f_early)}


def class_rows(per: list[dict]) -> list[list]:
    """One table row per tempo class (and "all") of per-item ``score`` results, each tagged ``cls``:
    the columns of ``HEADER``."""
    rows: list[list] = []
    for cls in ("60-90", "95-150", "160-210", "change", "all"):
        sel = [r for r in per if cls == "all" or r["cls"] == cls]
        if not sel:
            continue
        first = np.array([r["first"] for r in sel])
        rows.append([cls, len(sel), f"{np.mean([r['f'] for r in sel]):.3f}",
                     f"{min(r['f'] for r in sel):.3f}",
                     f"{np.mean([r['cmlt'] for r in sel]):.3f}", f"{np.mean([r['amlt'] for r in sel]):.3f}",
                     f"{100 * np.mean([r['acc1'] for r in sel]):.0f} %",
                     f"{100 * np.mean([r['acc2'] for r in sel]):.0f} %",
                     f"{np.median(first):.2f} / {np.max(first):.2f}",
                     ", ".join(f"{r['follow']:.1f}" for r in sel
                               if np.isfinite(r["follow"]) or r["cls"] == "change")
                     or "-", f"{np.mean([r['f_early'] for r in sel]):.3f}"])
    return rows


HEADER = ["tempo class", "items", "F mean", "F min", "CMLt", "AMLt", "Acc1", "Acc2 (3:2 = error)",
          "first beat s (median / worst)", "tempo change followed after s", "F first 5 s"]


def open_set(set_dir: Path, build: Callable[[list[str]], object], presence: Path | None = None
             ) -> tuple[list[dict], Any, Any, Any]:
    """A known-grid set's items (built by ``build(["--out", DIR])`` when absent) and the shipped
    models the live path runs them with: (meta, model, presence model, music gate). ``presence``:
    another presence model (a candidate gate, e.g. docs/presence.md's Eighth step) with its card's
    gate instead of the shipped one."""
    from mer_live.inference.model import Model, default_model_path
    from mer_live.inference.presence import GateConfig, MusicGate, PresenceModel, default_presence_path

    meta_path = set_dir / "beats.json"
    if not meta_path.is_file():
        build(["--out", str(set_dir)])
    meta = json.loads(meta_path.read_text())
    model = Model(default_model_path(), provider="cpu", threads=1)
    if presence is None:
        return meta, model, PresenceModel(default_presence_path(), provider="cpu", threads=1), MusicGate()
    pm = PresenceModel(presence, provider="cpu", threads=1, verify_sha=False)
    gate = pm.card.extra.get("gate")
    return meta, model, pm, MusicGate(GateConfig.from_dict(gate) if gate else None)


def set_args(ap: argparse.ArgumentParser, default_set: Path, builder: str) -> None:
    """The flags every known-grid bench shares: the set's folder, a label, --no-record, --json."""
    ap.add_argument("--set", type=Path, default=default_set,
                    help=f"the set's folder (built by `python -m {builder}` when absent)")
    ap.add_argument("--label", default="", help="a label for the table (before/after)")
    ap.add_argument("--no-record", action="store_true",
                    help="print only, do not append to docs/benchmarks.md")
    ap.add_argument("--json", type=Path, help="also write the per-item results here")
    ap.add_argument("--presence", type=Path, metavar="ONNX",
                    help="another presence model (its card beside it, with its gate): a candidate gate")


def tracker_arg(ap: argparse.ArgumentParser) -> None:
    """``--beat-tracker``: whose beats the live path sends (``[beat] tracker``)."""
    from mer_live.analysers.beat import BEAT_TRACKERS, BeatConfig

    ap.add_argument("--beat-tracker", default=BeatConfig().tracker, choices=BEAT_TRACKERS,
                    help=f"the live path's beat tracker (default {BeatConfig().tracker})")
    ap.add_argument("--beatnet-model", type=int, default=2, choices=(1, 2),
                    help="with --beat-tracker beatnet or hybrid")


def report(args: argparse.Namespace, per: list[dict], body: str, title: str, notes: list[str],
           misses_are: str = "published bpm") -> None:
    """Print the table, write the per-item results with --json and, unless --no-record, append
    it to docs/benchmarks.md: the set's description first, then the items whose tempo missed
    (Acc2), then the bench's own notes."""
    print(body)
    if args.json:
        args.json.write_text(json.dumps(per, indent=1))
    if not args.no_record:
        misses = [f"{r['name']}: {r['bpm']:.1f}" for r in per if not r["acc2"]]
        label = f" ({args.label})" if args.label else ""
        record(f"{title}{label}", body,
               [notes[0], f"tempo misses (item: {misses_are}): " + ("; ".join(misses) if misses else "none"),
                *notes[1:]])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    set_args(ap, ROOT / "cache" / "beatset", "bench.beatset")
    tracker_arg(ap)
    args = ap.parse_args(argv)
    import soundfile as sf

    from bench import beatset
    from mer_live.analysers.beat import BeatConfig

    meta, model, presence, gate = open_set(args.set, beatset.main, args.presence)
    per: list[dict] = []
    t0 = time.monotonic()
    for m in meta:
        x, sr = sf.read(str(args.set / m["file"]), dtype="float32")
        assert sr == SR
        events = run_item(x, sr, model, presence, gate,
                          BeatConfig(tracker=args.beat_tracker, beatnet_model=args.beatnet_model))
        beats = [(s, ev) for s, ev in events if ev.kind == "beat"]
        res = score(np.array(m["beats"]), beats, m["bpm"], m["change_t"])
        res.update(name=m["name"], cls=tempo_class(m["bpm"]) if m["change_t"] is None else "change")
        per.append(res)
        print(f"{m['name']:55s} F {res['f']:.3f} CMLt {res['cmlt']:.2f} AMLt {res['amlt']:.2f} "
              f"bpm {res['bpm']:6.1f} first {res['first']:.2f} s"
              + (f" follow {res['follow']:.1f} s" if m["change_t"] is not None else ""), file=sys.stderr)
    rows = class_rows(per)
    body = md_table(HEADER, rows)
    report(args, per, body, "bench_beatset: beats through the live path on the known-grid set"
           + (f" ({args.beat_tracker}, BeatNet model {args.beatnet_model})" if args.beat_tracker != "aubio"
              else " (aubio)"),
           [f"{len(per)} items from `python -m bench.beatset` (Hydrogen kits + FluidSynth GM band, 1 s "
            f"silence then 30 s; two items cut to a new tempo after 20 s), unpaced Pipeline with the "
            f"shipped models and music gate; {time.monotonic() - t0:.0f} s wall on a shared host"])
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
