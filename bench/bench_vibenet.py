"""The peer: VibeNet (PyPI ``vibenet``, an EfficientNet student on mel spectrograms, ONNX) against
``mer-analyze`` on the same 30-s 4Q MP3 clips, decoding included: seconds per clip and peak RSS,
as a ratio measured in the same run.

Why: VibeNet is the closest installable peer (offline, onnxruntime, predicts valence and energy
from audio); if mer-analyze is not clearly cheaper per clip, the lighter model buys nothing.

VibeNet lives in its own venv (it pulls librosa, numba, pydub): create it once with

    python3 -m venv /tmp/vibenet-venv && /tmp/vibenet-venv/bin/pip install vibenet==0.1.0

    python -m bench.bench_vibenet [--clips 20] [--model M] [--venv /tmp/vibenet-venv]

Each tool runs in its own fresh process (so peak RSS is its own), loads its model once, analyses
one untimed warm-up clip, then times every clip. Both run twice: pinned to one core
(``taskset -c 0``, mer-analyze with 1 onnxruntime thread) and on all cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
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
    stats,
)

_VIBENET_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import vibenet
model = vibenet.load_model()
load_s = time.perf_counter() - t0
paths = sys.argv[1:]
model.predict(paths[0])  # warm-up
times, outs = [], []
for p in paths[1:]:
    t = time.perf_counter()
    r = model.predict(p)[0]
    times.append(time.perf_counter() - t)
    outs.append([r.energy, r.valence])
hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]
print(json.dumps({"load_s": load_s, "times": times, "peak_rss_mb": int(hwm) / 1024, "outs": outs}))
"""

_MER_CHILD = r"""
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
from mer_live.analyze import analyze_file
from mer_live.assemble import load_model
model = load_model(Path(sys.argv[1]), provider="cpu", threads=int(sys.argv[2]))
load_s = time.perf_counter() - t0
hop = model.window_samples / model.sample_rate if sys.argv[3] == "window" else float(sys.argv[3])
paths = sys.argv[4:]
analyze_file(paths[0], model, hop=hop)  # warm-up
times, outs = [], []
for p in paths[1:]:
    t = time.perf_counter()
    r = analyze_file(p, model, hop=hop)
    times.append(time.perf_counter() - t)
    outs.append([r["arousal"], r["valence"]])
hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]
print(json.dumps({"load_s": load_s, "times": times, "peak_rss_mb": int(hwm) / 1024, "outs": outs}))
"""

#: the CLI's own loop over all clips (decoding one file ahead on a thread, windows of consecutive
#: files packed into full batches): what tagging a library costs per clip
_MER_RUN_CHILD = r"""
import io, json, sys, time
from pathlib import Path
t0 = time.perf_counter()
from mer_live.analyze import analyze_file, default_decoders, default_threads, run
from mer_live.assemble import load_model, load_presence
from mer_live.inference.fusion import Fusion
threads = int(sys.argv[2]) or default_threads(default_decoders())  # 0: what the CLI picks
model = load_model(Path(sys.argv[1]), provider="cpu", threads=threads)
mode = sys.argv[4]  # "default": the music gate and the teacher as the CLI runs them; "cnn": neither
presence = load_presence() if mode == "default" else None
fusion = Fusion.of(model, threads=threads) if mode == "default" else None
load_s = time.perf_counter() - t0
hop = model.window_samples / model.sample_rate if sys.argv[3] == "window" else float(sys.argv[3])
paths = sys.argv[5:]
analyze_file(paths[0], model, hop=hop, presence=presence, fusion=fusion)  # warm-up
buf = io.StringIO()
t = time.perf_counter()
failed = run(paths[1:], model, hop=hop, out=buf, presence=presence, fusion=fusion)
total = time.perf_counter() - t
assert failed == 0, buf.getvalue()
outs = [[r["arousal"], r["valence"]] for r in map(json.loads, buf.getvalue().splitlines())]
hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]
print(json.dumps({"load_s": load_s, "times": [total / len(outs)] * len(outs), "peak_rss_mb": int(hwm) / 1024,
                  "outs": outs}))
"""


def _run(cmd: list[str], pin: bool, timeout: float = 900) -> dict:
    if pin and shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"{cmd[0]} failed ({out.returncode}): {tail}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _pearson(a: list[float], b: list[float]) -> float:
    import numpy as np

    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def main(argv: list[str] | None = None) -> int:
    from bench.bench_model import pick_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=positive_int, default=20)
    ap.add_argument("--model", type=model_file, help="mer model (default: shipped, else the reference CNN)")
    ap.add_argument("--venv", type=Path, default=Path("/tmp/vibenet-venv"))
    ap.add_argument("--hop", default="1.0,window",
                    help="mer-analyze hops to run (s, comma-separated; 'window' = non-overlapping windows)")
    args = ap.parse_args(argv)
    hops = [h.strip() for h in args.hop.split(",")]
    for h in hops:
        if h != "window":
            try:
                positive_float(h)
            except argparse.ArgumentTypeError as e:
                ap.error(f"--hop: {e}")

    clips = [str(p) for p in fourq_clips(args.clips + 1)]
    if len(clips) < 2:
        print("no 4Q clips under ../shared/data/4q/audio: nothing to compare")
        return 2
    vpy = args.venv / "bin" / "python"
    if not vpy.is_file():
        print(f"VibeNet venv missing: python3 -m venv {args.venv} && "
              f"{args.venv}/bin/pip install vibenet==0.1.0")
        return 2
    model = pick_model(args.model)
    rows = []
    corr_notes = []
    for pin, label in ((True, "1 core (taskset -c 0)"), (False, f"all {os.cpu_count()} cores")):
        vib = _run([str(vpy), "-c", _VIBENET_CHILD, *clips], pin)
        sv = stats(vib["times"])
        rows.append([label, "vibenet 0.1.0", len(vib["times"]), sv.median, sv.p99, vib["load_s"],
                     vib["peak_rss_mb"], f"{30.0 / sv.median:.0f}x"])
        for h in hops:
            mer = _run([sys.executable, "-c", _MER_CHILD, str(model), "1" if pin else "0", h, *clips], pin)
            sm = stats(mer["times"])
            hop_txt = "window (no overlap)" if h == "window" else f"{float(h):g} s"
            rows.append([label, f"mer-analyze ({model.name}, hop {hop_txt})", len(mer["times"]), sm.median,
                         sm.p99, mer["load_s"], mer["peak_rss_mb"], f"{30.0 / sm.median:.0f}x"])
            rows.append([label, f"**ratio vibenet / mer-analyze, hop {hop_txt}**", "",
                         f"**{sv.median / sm.median:.1f}x**", "", "",
                         f"{vib['peak_rss_mb'] / mer['peak_rss_mb']:.1f}x", ""])
            for mode, what in (("default", "its default: music gate + teacher"), ("cnn", "the CNN alone")):
                lib = _run([sys.executable, "-c", _MER_RUN_CHILD, str(model), "1" if pin else "0", h, mode,
                            *clips], pin)
                per = lib["times"][0]
                rows.append([label, f"mer-analyze's loop over all clips ({what}, hop {hop_txt})",
                             len(lib["times"]), per, "", lib["load_s"], lib["peak_rss_mb"],
                             f"{30.0 / per:.0f}x"])
                rows.append([label, f"**ratio vibenet / mer-analyze's loop ({mode}), hop {hop_txt}**", "",
                             f"**{sv.median / per:.1f}x**", "", "",
                             f"{vib['peak_rss_mb'] / lib['peak_rss_mb']:.1f}x", ""])
        ma = [o[0] for o in mer["outs"]]
        ve = [o[0] for o in vib["outs"]]
        mv = [o[1] for o in mer["outs"]]
        vv = [o[1] for o in vib["outs"]]
        if not model.stem.startswith("ref-"):  # the reference CNN has random weights
            corr_notes.append(
                f"{label}: Pearson r over clips, mer arousal vs vibenet energy {_pearson(ma, ve):.2f}, "
                f"mer valence vs vibenet valence {_pearson(mv, vv):.2f}"
            )
        print(md_table(["cores", "tool", "clips", "median s/clip", "p99 s/clip", "load s", "peak RSS MB",
                        "x real time"], rows), flush=True)
    body = md_table(["cores", "tool", "clips", "median s/clip", "p99 s/clip", "load s (import + model)",
                     "peak RSS MB", "x real time (30 s)"], rows)
    record(
        "mer-analyze vs VibeNet per clip (bench_vibenet)",
        body,
        notes=[
            f"{len(clips) - 1} 4Q MP3 clips (~30 s, 22050 Hz mono), decoding included for both; one "
            "untimed warm-up clip first; each tool in its own process (peak RSS = VmHWM of that process).",
            "vibenet 0.1.0 from PyPI ships its EfficientNet ONNX weights (18.5 MB) inside the wheel: "
            "no download from another host. It needs librosa, numba, pydub, audioread, typer (own venv). "
            "Its EfficientNetModel builds SessionOptions with 1 thread but does not pass them to "
            "InferenceSession, so it uses onnxruntime's default (all cores) unless pinned.",
            "mer-analyze: analyze_file (soundfile decode + soxr HQ + windows, batch 64) at its default "
            "1 s hop (a timeline of overlapping windows 1 s apart) and with non-overlapping windows "
            "(hop = window: every sample seen once, like VibeNet's single pass); and its CLI loop "
            "`analyze.run` over all the clips at once (the next file decodes on a thread while the model "
            "runs, windows of consecutive files share batches; per clip = total / clips, so no p99). "
            "VibeNet: soundfile "
            "decode + soxr to 16 kHz + one mel spectrogram + one EfficientNet pass over the whole clip "
            "(one value per clip).",
            *corr_notes,
            "(correlations are a sanity look on few clips, not an evaluation; the models are not "
            "trained on the same labels)",
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
