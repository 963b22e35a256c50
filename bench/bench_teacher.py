"""The teacher's cost per 3-s patch (models/musicnn-msd.onnx) beside the shipped CNN's per window, in
the same run, and what each teacher cadence costs mer-live and mer-analyze.

Why: two-rate fusion runs the fast CNN every hop and the teacher on one patch every N seconds; the
teacher's time per patch and the number of patches decide whether mer-live stays under 10 % of a
core and mer-analyze stays faster than VibeNet per clip. The cadence table below is arithmetic on
the medians measured here (stated in the notes), not a run of mer-live or mer-analyze.

    python -m bench.bench_teacher [--runs 100] [--cnn-runs 1000]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bench.common import md_table, positive_int, record, run_cli, stats, time_calls

ROOT = Path(__file__).resolve().parents[1]
TEACHER = ROOT / "models" / "musicnn-msd.onnx"
CLIP_SECONDS = 30.0
CNN_HOP_SECONDS = 1.0
# patches a 30-s clip gets at each cadence (patch starts every N s from 0 while a 2.992-s patch fits)
CADENCES = (("1 s", 1.0), ("3 s (back to back)", 3.0), ("6 s", 6.0), ("10 s", 10.0), ("15 s", 15.0),
            ("one per clip", None))


def teacher_session(threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(TEACHER), so, providers=["CPUExecutionProvider"])


def time_teacher(threads: int, batch: int, runs: int) -> list[float]:
    """Seconds per call of ``batch`` patches of music-like noise, after warm-up."""
    from train.teacher import WINDOW_SAMPLES

    s = teacher_session(threads)
    x = (0.1 * np.random.default_rng(0).standard_normal((batch, WINDOW_SAMPLES))).astype(np.float32)
    return time_calls(lambda: s.run(["features", "tags"], {"audio": x}), n=runs, warmup=5)


def time_frontend(runs: int) -> list[float]:
    """The mel stage alone (one patch, one thread): how much of the teacher is its front end."""
    import onnxruntime as ort

    from train.teacher import WINDOW_SAMPLES, frontend_model

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    s = ort.InferenceSession(frontend_model().SerializeToString(), so, providers=["CPUExecutionProvider"])
    x = (0.1 * np.random.default_rng(0).standard_normal((1, WINDOW_SAMPLES))).astype(np.float32)
    return time_calls(lambda: s.run(["logmel"], {"audio": x}), n=runs, warmup=5)


def time_cnn(threads: int, batch: int, runs: int) -> list[float]:
    from mer_live.inference.model import Model, default_model_path

    m = Model(default_model_path(), threads=threads)
    x = (0.1 * np.random.default_rng(0).standard_normal((batch, m.window_samples))).astype(np.float32)
    return time_calls(lambda: m.predict(x), n=runs, warmup=20)


def patches_per_clip(every: float | None, clip_s: float = CLIP_SECONDS) -> int:
    from train.teacher import PATCH_SAMPLES, SR, patch_starts

    if every is None:
        return 1
    return len(patch_starts(int(clip_s * SR), every)) if PATCH_SAMPLES <= clip_s * SR else 0


def main(argv: list[str] | None = None) -> int:
    from bench.bench_flops import flops_per_window

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=positive_int, default=100, help="timed teacher calls per row")
    ap.add_argument("--cnn-runs", type=positive_int, default=1000, help="timed CNN calls per row")
    ap.add_argument("--live-share", type=float, default=4.0,
                    help="mer-live --headless's CPU %% of one core today, without the teacher")
    args = ap.parse_args(argv)
    if not TEACHER.is_file():
        raise OSError(f"{TEACHER} not found (python -m train.teacher build)")
    rows, med = [], {}
    for th in (1, 2):
        for b in (1, 4):
            s = stats(time_teacher(th, b, args.runs)).scaled(1e3 / b)
            med[("teacher", th, b)] = (s.median, s.min)
            rows.append(["musicnn-msd.onnx (teacher)", "2.99 s patch", f"cpu x{th}", b, s.median, s.min,
                         s.p99, f"{2992 / s.median:.0f}x"])
    fe = stats(time_frontend(args.runs)).scaled(1e3)
    rows.append(["its mel front end alone", "2.99 s patch", "cpu x1", 1, fe.median, fe.min, fe.p99,
                 f"{2992 / fe.median:.0f}x"])
    for th in (1, 2):
        for b in (1, 8):
            s = stats(time_cnn(th, b, args.cnn_runs)).scaled(1e3 / b)
            med[("cnn", th, b)] = (s.median, s.min)
            rows.append(["mer-default.onnx (CNN)", "6 s window", f"cpu x{th}", b, s.median, s.min, s.p99,
                         f"{6000 / s.median:.0f}x"])
    body = md_table(["model", "input", "provider x threads", "batch", "median ms per patch/window",
                     "min ms", "p99 ms", "audio / time"], rows)
    gfl_t, gfl_c = flops_per_window(TEACHER) / 1e9, None
    try:
        from mer_live.inference.model import default_model_path

        gfl_c = flops_per_window(default_model_path()) / 1e9
    except Exception:  # counting is a note, not the measurement
        pass

    # cadence arithmetic on the 1-thread numbers (live: batch 1; analyze: teacher batch 4, CNN batch 8),
    # once from the medians and once from the minima ("median / min" in each cell)
    n_cnn = int(round((CLIP_SECONDS - 6.0) / CNN_HOP_SECONDS)) + 1
    head = 10.0 - args.live_share
    crows = []
    for label, every in CADENCES:
        n = patches_per_clip(every)
        cells = {"live": [], "teacher": [], "clip": [], "rt": []}
        for k in (0, 1):
            t_live, t_an, c_an = med[("teacher", 1, 1)][k], med[("teacher", 1, 4)][k], med[("cnn", 1, 8)][k]
            per_clip = n_cnn * c_an + n * t_an
            cells["live"].append(f"{100 * t_live / (1000 * every):.2f}" if every else "-")
            cells["teacher"].append(f"{n * t_an:.0f}")
            cells["clip"].append(f"{per_clip:.0f}")
            cells["rt"].append(f"{CLIP_SECONDS * 1000 / (per_clip / 2):.0f}x")
        crows.append([label, " / ".join(cells["live"]), n, " / ".join(cells["teacher"]),
                      " / ".join(cells["clip"]), " / ".join(cells["rt"])])
    body += ("\n\nWhat each teacher cadence costs (arithmetic on the 1-thread numbers above; each cell: "
             "from the medians / from the minima):\n\n") + md_table(
        ["teacher cadence", "mer-live: teacher's % of one core", "patches per 30-s clip",
         "mer-analyze: teacher ms per clip", "mer-analyze: CNN + teacher ms per clip (1 thread)",
         "mer-analyze: real time on 2 cores (2 clips at once)"], crows)
    t_live, t_an, c_an = med[("teacher", 1, 1)][0], med[("teacher", 1, 4)][0], med[("cnn", 1, 8)][0]
    n_min = t_live / (10 * head)
    notes = [
        f"{args.runs} timed teacher calls per row after 5 warm-up calls, {args.cnn_runs} CNN calls after 20; "
        "input: Gaussian noise at 0.1 (the cost does not depend on the content). ms are per call / batch; "
        "on a busy shared host the minimum is the closer estimate of the unloaded cost, the median "
        "what a loaded machine gives, and the teacher / CNN ratio of one run holds for both.",
        f"FLOPs (Conv/MatMul/Gemm, bench_flops): teacher {gfl_t:.2f} GFLOP per patch"
        + (f", CNN {gfl_c:.3f} GFLOP per window" if gfl_c else "") + ".",
        f"mer-live column: teacher ms per patch (1 thread, batch 1: {t_live:.1f} ms) / cadence; mer-live "
        f"--headless uses ~{args.live_share:g} % of a core today (docs/benchmarks.md), so the teacher "
        f"may take {head:g} % and the cadence must be at least {n_min:.2f} s (medians; "
        f"{med[('teacher', 1, 1)][1] / (10 * head):.2f} s from the minimum) to stay under 10 %.",
        f"mer-analyze columns: a 30-s clip gets {n_cnn} CNN windows (6 s, 1-s hop) at the batch-8 median "
        f"({c_an:.2f} ms) and its teacher patches at the batch-4 median ({t_an:.1f} ms), one thread; two "
        "clips at once on the 2 cores gives the real-time factor (30 s / (ms per clip / 2)). Decoding and "
        "resampling are not included (bench_analyze measures the whole command); VibeNet as installed: "
        "~89 ms per 30-s clip (docs/benchmarks.md).",
    ]
    record("Teacher cost per patch and per cadence (bench_teacher)", body, notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
