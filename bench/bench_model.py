"""Model time per window: onnxruntime CPU with 1 and 2 threads (and CUDA when present), batch 1,
for each model in models/ (and --model), against the window length, with FLOPs per window.

Why: the live pipeline runs one window per hop on a machine that is also doing other work (audio,
OSC, maybe a window): the model's share of a hop is the first number to know. Until the shipped
model exists, a reference model of the same kind (nnAudio mel spectrogram + small 2D CNN, random
weights, exported with torch.onnx) and the loudness test model stand in for it.

    python -m bench.bench_model [--model M ...] [--runs 1000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import warnings
from pathlib import Path

import numpy as np

from bench.common import (
    default_models,
    md_table,
    model_file,
    positive_int,
    record,
    run_cli,
    stats,
    time_calls,
)

CACHE = Path("/tmp/mer-bench-models")
ROOT_DIR = Path(__file__).resolve().parents[1]


def build_reference_cnn(
    path: Path,
    sample_rate: int = 22050,
    window_seconds: float = 3.0,
    n_fft: int = 1024,
    hop: int = 512,
    n_mels: int = 64,
) -> Path:
    """Export a model of the shipped kind (nnAudio mel + 4-block 2D CNN, random weights) with its
    card. Timing does not depend on the weights, only on the graph: that is why random is enough.
    Needs torch + nnAudio (training extras): never imported by the runtime."""
    import torch
    from nnAudio.features import MelSpectrogram
    from torch import nn

    torch.manual_seed(0)
    window = int(round(window_seconds * sample_rate))

    class RefCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mel = MelSpectrogram(
                sr=sample_rate, n_fft=n_fft, hop_length=hop, n_mels=n_mels, verbose=False
            )
            chans = [1, 16, 32, 64, 64]
            blocks = []
            for cin, cout in zip(chans[:-1], chans[1:], strict=True):
                blocks += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout)]
                blocks += [nn.ReLU(), nn.MaxPool2d(2)]
            self.cnn = nn.Sequential(*blocks)
            self.head = nn.Linear(chans[-1], 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            s = torch.log(self.mel(x) + 1e-6).unsqueeze(1)
            h = self.cnn(s).mean(dim=(2, 3))
            return torch.sigmoid(self.head(h))

    net = RefCNN().eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    x = torch.zeros(1, window)
    with warnings.catch_warnings():  # constant-folding notes from the exporter: harmless here
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, (x,), str(path), input_names=["audio"], output_names=["av"],
            dynamic_axes={"audio": {0: "batch"}, "av": {0: "batch"}}, opset_version=18, dynamo=False,
        )
    card = {
        "name": path.stem,
        "sample_rate": sample_rate,
        "window_samples": window,
        "outputs": ["arousal", "valence"],
        "description": "benchmark stand-in: nnAudio mel + 2D CNN, random weights (timing only)",
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }
    path.with_suffix(".json").write_text(json.dumps(card, indent=2))
    return path


def build_train_standin(path: Path) -> Path:
    """Export ``train/``'s own model family with random weights: ``mel_cnn`` with the config of the
    training engineer's ``train/experiments/results/base30.json`` when present, else ModelConfig's
    defaults. The closest stand-in for models/mer-default.onnx before it exists (timing only)."""
    import torch

    from train.export import export_onnx
    from train.models import ModelConfig, build_model

    res = ROOT_DIR / "train" / "experiments" / "results" / "base30.json"
    cfg = ModelConfig.from_dict(json.loads(res.read_text())["model"]) if res.is_file() else ModelConfig()
    torch.manual_seed(0)
    net = build_model(cfg).eval()
    return export_onnx(
        net, path, sample_rate=cfg.sample_rate, window_samples=cfg.window_samples, name=path.stem,
        card_extra={"description": f"benchmark stand-in: train/ {cfg.arch} "
                    f"({'base30' if res.is_file() else 'default'} config), random weights (timing only)"},
    )


def reference_models() -> list[Path]:
    """The loudness test model, the reference CNN and train/'s mel_cnn stand-in, built once into
    /tmp and reused (the last one is the closest to the shipped model)."""
    from tests.modelkit import make_loudness_model

    out = []
    lm = CACHE / "loudness-test.onnx"
    if not lm.with_suffix(".json").is_file():
        make_loudness_model(lm)
    out.append(lm)
    ref = CACHE / "ref-mel-cnn-3s.onnx"
    if not ref.with_suffix(".json").is_file():
        try:
            build_reference_cnn(ref)
        except ImportError as e:
            print(f"reference CNN skipped (needs torch + nnAudio): {e}")
            return out
    out.append(ref)
    standin = CACHE / "standin-melcnn16k.onnx"
    if not standin.with_suffix(".json").is_file():
        try:
            build_train_standin(standin)
        except Exception as e:  # train/ is another engineer's moving target: the stand-in is optional
            print(f"train/ stand-in skipped: {type(e).__name__}: {e}")
            return out
    out.append(standin)
    return out


def time_model(path: Path, threads: int, runs: int, provider: str = "cpu", batch: int = 1) -> list[float]:
    """Seconds per ``Model.predict`` of ``batch`` windows of noise, after a warm-up."""
    from mer_live.inference.model import Model

    m = Model(path, provider=provider, threads=threads)
    x = (0.1 * np.random.default_rng(0).standard_normal((batch, m.window_samples))).astype(np.float32)
    return time_calls(lambda: m.predict(x), n=runs, warmup=20)


def pick_model(arg: Path | None) -> Path:
    """``--model`` if given, else the shipped default model, else the reference CNN stand-in."""
    if arg is not None:
        return arg
    shipped = [p for p in default_models() if p.stem == "mer-default"]
    if shipped:
        return shipped[0]
    return reference_models()[-1]


def main(argv: list[str] | None = None) -> int:
    import onnxruntime as ort

    from bench.bench_flops import flops_per_window
    from mer_live.inference.model import load_card

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", type=model_file,
                    help="model(s) to measure (default: models/)")
    ap.add_argument("--runs", type=positive_int, default=1000)
    ap.add_argument("--no-reference", action="store_true", help="skip the test and reference models")
    ap.add_argument("--batches", default="1,2,4,8,16,32",
                    help="batch sizes for the per-window table of the default model (mer-analyze's --batch)")
    args = ap.parse_args(argv)
    try:
        batches = [positive_int(b) for b in args.batches.split(",")]
    except argparse.ArgumentTypeError as e:
        ap.error(f"--batches: {e}")

    models = list(args.model or default_models())
    if not args.no_reference:
        models += reference_models()
    configs = [("cpu", 1), ("cpu", 2)]
    if "CUDAExecutionProvider" in ort.get_available_providers():
        configs.append(("cuda", 1))
    rows = []
    for p in models:
        card = load_card(p)
        f = flops_per_window(p)
        base = None
        for prov, th in configs:
            s = stats(time_model(p, th, args.runs, provider=prov)).scaled(1e3)
            base = base or s.median
            rows.append([
                p.name, f"{card.sample_rate} Hz, {card.window_seconds:.2f} s", f / 1e6, f"{prov} x{th}",
                s.median, s.p99, f"{card.window_seconds * 1e3 / s.median:.0f}x",
                f"{base / s.median:.2f}",
            ])
            print(f"{p.name} {prov} x{th}: median {s.median:.3f} ms p99 {s.p99:.3f} ms", flush=True)
    body = md_table(
        ["model", "window", "MFLOPs/window", "provider x threads", "median ms", "p99 ms",
         "window / time", "speed vs 1 thread"],
        rows,
    )
    # per-window time against the batch size: what mer-analyze's --batch default rests on
    first = pick_model(args.model[0] if args.model else None)
    brows = []
    for prov, th in configs:
        row: list[object] = [first.name, f"{prov} x{th}"]
        for b in batches:
            row.append(stats(time_model(first, th, max(20, args.runs // b), provider=prov, batch=b))
                       .scaled(1e3 / b).median)
        brows.append(row)
        print(f"{first.name} {prov} x{th} per window at batch {batches}: {row[2:]}", flush=True)
    body += "\n\nMedian ms per window against the batch size (one `Model.predict` of b windows / b):\n\n"
    body += md_table(["model", "provider x threads", *[f"batch {b}" for b in batches]], brows)
    notes = [
        f"{args.runs} timed Model.predict calls of one window (batch 1) per row after 20 warm-up calls.",
        "ref-mel-cnn-3s: nnAudio MelSpectrogram (n_fft 1024, hop 512, 64 mels) + 4 conv blocks "
        "(16-32-64-64) + linear, random weights, torch.onnx export (bench/bench_model.py); "
        "loudness-test: tests/modelkit.py (elementwise only, so 0 MFLOPs counted); standin-melcnn16k: "
        "train/'s mel_cnn (base30 config: 16 kHz, 3 s, 48 mels, channels 16-32-64-128), random weights "
        "(bench_model.build_train_standin).",
    ]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        notes.append("no GPU on this machine: CUDA rows not measured.")
    record("Model time per window (bench_model)", body, notes=notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))

