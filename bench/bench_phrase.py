"""The phrase cue's time per hop beside the presence model's, in the same run (issue #25's
context for the music gate; issue #28's CPU budget: the whole live path aims at <= 5 % of a core).

Why: the cue (mer_live.inference.phrase: one 4096-point FFT and a 6-s ring) would run every 0.1-s
hop beside the presence model; its cost decides whether a context gate fits the budget.

    python -m bench.bench_phrase [--runs 3000]
    python -m bench.bench_phrase --in-place     # inside the live pipeline, with a phrase head

``--in-place`` times the cue where it runs: the unpaced live pipeline over the demo piece (three
times), ``PhraseTrack.push`` + ``PhraseHead.raise_`` on every hop and ``PresenceModel.predict`` on
the hops it runs (``PRESENCE_SKIP_SETTLED``), with the shipped card's head or, without one,
recipe C's fold-0 head (train/experiments/results/presence-showclose-context8.json).
"""

from __future__ import annotations

import argparse

import numpy as np

from bench.common import md_table, positive_int, record, run_cli, stats, time_calls


def in_place() -> int:
    """The cue's and the presence model's time per hop inside the live pipeline (see above)."""
    import json
    import time

    from mer_live.inference.model import Model
    from mer_live.inference.phrase import PhraseHead
    from mer_live.inference.presence import GateConfig, MusicGate, PresenceModel
    from mer_live.live.pipeline import Pipeline, PipelineConfig
    from mer_live.sources.demo import demo_audio
    from mer_live.sources.filesource import FileSource
    from train.paths import RESULTS

    sr = 22050
    pm = PresenceModel(provider="cpu", threads=1)
    head_from = "the shipped card"
    if pm.phrase is None:
        res = json.loads((RESULTS / "presence-showclose-context8.json").read_text())
        w = res["coefficients"]["0"]
        pm.phrase, head_from = PhraseHead(w[:-1], w[-1], res["context_s"]), "recipe C's fold-0 head"
    ms: dict[str, list[float]] = {"cue": [], "presence": []}
    pl = Pipeline(FileSource(np.tile(demo_audio(sr), 3), sr, realtime=False, blocksize=1024, name="demo"),
                  Model.load(provider="cpu", threads=1), PipelineConfig(hop_s=0.1), [lambda e: None],
                  presence=pm, gate=MusicGate(GateConfig()))
    track, head, predict = pl.estimator.phrase_track, pl.estimator.phrase, pm.predict
    push, raise_ = track.push, head.raise_

    def timed_push(tail: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        c = push(tail)
        ms["cue"].append((time.perf_counter() - t0) * 1e3)
        return c

    def timed_raise(p: np.ndarray, c: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        r = raise_(p, c)
        ms["cue"][-1] += (time.perf_counter() - t0) * 1e3
        return r

    def timed_predict(w: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        r = predict(w)
        ms["presence"].append((time.perf_counter() - t0) * 1e3)
        return r

    track.push, head.raise_, pm.predict = timed_push, timed_raise, timed_predict  # type: ignore[method-assign]
    pl.start()
    if not pl.join(600.0):
        raise SystemExit("the pipeline did not finish")
    rows = []
    for name, key in (("phrase cue + head (every hop)", "cue"),
                      ("presence model (hops it runs)", "presence")):
        v = np.array(ms[key])
        rows.append([name, len(v), f"{np.median(v):.3f}", f"{np.percentile(v, 90):.3f}",
                     f"{np.sum(v) / (len(ms['cue']) * 100):.2%}"])
    cols = ["in the live pipeline", "calls", "median ms", "p90 ms", "share of one core at 10 hops/s"]
    body = md_table(cols, rows)
    record("Phrase cue time per hop in the live pipeline (bench_phrase --in-place)", body, [
        f"the demo piece three times, unpaced; head: {head_from}; a perf_counter wrapper around each call.",
    ])
    return 0


def main(argv: list[str] | None = None) -> int:
    from mer_live.inference import phrase
    from mer_live.inference.presence import PresenceModel

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=positive_int, default=3000)
    ap.add_argument("--in-place", action="store_true", help="time the cue inside the live pipeline")
    args = ap.parse_args(argv)
    if args.in_place:
        return in_place()
    rng = np.random.default_rng(0)
    pres = PresenceModel(provider="cpu", threads=1)
    w = (0.1 * rng.standard_normal((1, pres.window_samples))).astype(np.float32)
    track = phrase.PhraseTrack(6.0)
    for _ in range(track.n):  # a full ring, as in a show
        track.push(w[0, -phrase.FRAME :])
    rows = []
    for name, fn in (("presence model (predict, 1 thread)", lambda: pres.predict(w)),
                     ("phrase cue (PhraseTrack.push)", lambda: track.push(w[0, -phrase.FRAME :])),
                     ("  of which frame_chroma", lambda: phrase.frame_chroma(w[:, -phrase.FRAME :]))):
        s = stats(time_calls(fn, args.runs, warmup=50)).scaled(1000)
        rows.append([name, s.median, s.p99, f"{s.median / 100:.2%}"])
    body = md_table(["per hop", "median ms", "p99 ms", "share of one core at 10 hops/s"], rows)
    record("Phrase cue time per hop (bench_phrase)", body, [
        f"{args.runs} timed calls each after 50 warm-up calls, one process, one after the other.",
    ])
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
