"""mer-analyze throughput in times real time, one onnxruntime thread and all cores, on 30-s 4Q
clips: MP3 (decoding included) and the same audio as WAV, to separate decoding from inference.

Why: offline analysis of a whole library is the other use of the model; its floor is >= 1000x
real time on one thread. Two views: in-process (``decode`` and ``analyze_array`` timed apart, per
clip) and the real CLI (``python -m mer_live.analyze FILES``, wall time including start-up and
its decode-ahead thread).

    python -m bench.bench_analyze [--clips 40] [--model M] [--hop 1.0]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.common import (
    ROOT,
    fourq_clips,
    md_table,
    model_file,
    positive_float,
    positive_int,
    record,
    run_cli,
)

WAV_DIR = Path("/tmp/mer-bench-wav")


def as_wav(mp3s: list[Path]) -> list[Path]:
    """The same clips decoded once to 16-bit WAV at their own rate (cached under /tmp)."""
    import soundfile as sf

    WAV_DIR.mkdir(parents=True, exist_ok=True)
    out = []
    for p in mp3s:
        w = WAV_DIR / (p.stem + ".wav")
        if not w.is_file():
            x, sr = sf.read(str(p), dtype="float32", always_2d=True)
            sf.write(str(w), x, sr, subtype="PCM_16")
        out.append(w)
    return out


def in_process(paths: list[Path], model_path: Path, threads: int, hop: float) -> dict[str, float]:
    """Seconds of audio, decode seconds and inference seconds over ``paths`` (after one warm-up)."""
    from mer_live.analyze import analyze_array, decode
    from mer_live.assemble import load_model

    model = load_model(model_path, provider="cpu", threads=threads)
    x, _ = decode(paths[0], model.sample_rate)
    analyze_array(x, model.sample_rate, model, hop=hop, _resampled=True)
    audio_s = dec_s = inf_s = 0.0
    for p in paths:
        t0 = time.perf_counter()
        x, dur = decode(p, model.sample_rate)
        t1 = time.perf_counter()
        analyze_array(x, model.sample_rate, model, hop=hop, _resampled=True)
        t2 = time.perf_counter()
        audio_s += dur
        dec_s += t1 - t0
        inf_s += t2 - t1
    return {"audio_s": audio_s, "decode_s": dec_s, "infer_s": inf_s}


def cli_wall(paths: list[Path], model_path: Path, threads: int, hop: float) -> float:
    """Wall seconds of one real ``mer-analyze`` process over all ``paths`` (start-up included)."""
    cmd = [sys.executable, "-m", "mer_live.analyze", "--model", str(model_path), "--provider", "cpu",
           "--threads", str(threads), "--hop", str(hop), *map(str, paths)]
    if threads == 1 and shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"mer-analyze failed ({out.returncode}): {out.stderr.strip()[-300:]}")
    return wall


def main(argv: list[str] | None = None) -> int:
    from bench.bench_model import pick_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=positive_int, default=40)
    ap.add_argument("--model", type=model_file)
    ap.add_argument("--hop", type=positive_float, default=None,
                    help="mer-analyze --hop (default: mer-analyze's own default)")
    args = ap.parse_args(argv)
    if args.hop is None:
        from mer_live.analyze import DEFAULT_HOP_S

        args.hop = DEFAULT_HOP_S
    mp3s = fourq_clips(args.clips)
    if not mp3s:
        print("no 4Q clips under ../shared/data/4q/audio")
        return 2
    wavs = as_wav(mp3s)
    model = pick_model(args.model)
    from mer_live.analyze import default_decoders, default_threads

    rows = []
    dec = default_decoders()
    for threads, label in ((1, "1 thread"), (0, f"all {os.cpu_count()} cores")):
        for kind, paths in (("MP3", mp3s), ("WAV", wavs)):
            r = in_process(paths, model, threads or (os.cpu_count() or 1), args.hop)
            total = r["decode_s"] + r["infer_s"]
            wall = cli_wall(paths, model, threads, args.hop)
            rows.append([
                label, kind, len(paths), f"{r['audio_s']:.0f}",
                f"{r['audio_s'] / r['decode_s']:.0f}x", f"{r['audio_s'] / r['infer_s']:.0f}x",
                f"{r['audio_s'] / total:.0f}x", f"{r['audio_s'] / wall:.0f}x", f"{wall:.2f}",
            ])
            print(rows[-1], flush=True)
    # the CLI's default thread split against onnxruntime on every core beside the decoding threads
    cores = os.cpu_count() or 1
    if cores > 1:
        wall = cli_wall(mp3s, model, cores, args.hop)
        audio_s = rows[0][3]
        rows.append([f"all {cores} cores, `--threads {cores}`", "MP3", len(mp3s), audio_s, "", "", "",
                     f"{float(audio_s) / wall:.0f}x", f"{wall:.2f}"])
        print(rows[-1], flush=True)
    body = md_table(
        ["ORT threads", "input", "clips", "audio s", "decode only (x RT)", "inference only (x RT)",
         "in-process total (x RT)", "CLI wall (x RT)", "CLI wall s"],
        rows,
    )
    record(
        f"mer-analyze throughput (bench_analyze, {model.name}, hop {args.hop} s)",
        body,
        notes=[
            "x RT = seconds of audio / seconds of work. In-process: decode() (soundfile + soxr HQ to "
            "the model rate) and analyze_array() timed apart, one warm-up clip first. CLI wall: one "
            "`python -m mer_live.analyze` process over all clips (interpreter + model load included, "
            "decode overlapped with inference on decoding threads, windows of consecutive files in shared "
            "batches); 1 thread: `--threads 1`, pinned with taskset -c 0; all cores: the in-process rows "
            f"give onnxruntime every core, the CLI its defaults ({default_threads(dec)} onnxruntime "
            f"thread(s) beside {dec} decoding threads); the `--threads {os.cpu_count()}` row gives "
            "onnxruntime every core beside those decoders.",
            "WAV = the same clips decoded once to 16-bit WAV, so MP3 minus WAV is the MP3 decode cost.",
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
