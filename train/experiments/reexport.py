"""Re-export a shipped spectrogram model through the current graph code, weights unchanged.

``python -m train.experiments.reexport [--model models/mer-default.onnx] [--out PATH]``

When the export code learns a leaner graph for the same function (fewer copies in the front
end, say), the shipped model should get it without being refitted: a refit would be a different
model whose cross-validated numbers no longer describe it. This reads the weights back out of
the ONNX file into a ``build_model`` of the card's recipe, and exports that through
``train.export.export_onnx`` (torch parity checked there) next to a card that is the old one
plus an ``export`` record of the re-export. It then scores old and new files on the same windows
(``--check-4q``: also every third 4Q clip) and refuses to write when they differ by more than
``--tol``.

Exported spectrogram models fold each CNN BatchNorm into its Conv: the Conv gets the folded
weight and the BatchNorm becomes a bias-only identity (mean 0, variance 1 - eps, scale 1). The
fixed front end (anti-alias filter, DFT kernels, band filters) is rebuilt from the recipe and
checked against the file's matrices, so a file from another front end is refused, not
silently reinterpreted. One member (``seeds`` 1) only.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..ensemble import SharedMelEnsemble
from ..export import export_onnx, run_ort
from ..models import MelCNN, ModelConfig, build_model
from ..paths import CACHE, MODELS


def _initializers(path: Path) -> tuple[dict[str, np.ndarray], list]:
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    return {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}, list(proto.graph.node)


def model_from_onnx(path: Path, cfg: ModelConfig) -> MelCNN:
    """A ``build_model(cfg)`` (a one-member multires ``mel_cnn``) carrying ``path``'s weights."""
    inits, nodes = _initializers(path)
    model = build_model(cfg)
    if not isinstance(model, MelCNN) or model.pulse is not None:
        raise SystemExit("reexport: error: only plain mel_cnn recipes (no pulse branch) are supported")
    fe = model.frontend
    if not hasattr(fe, "k_lo"):
        raise SystemExit("reexport: error: only the multires front end is supported")
    # the fixed front end: every matrix the file multiplies by must be (a row block of) one the
    # recipe builds; the export splits a kernel by rows where it multiplies shifted blocks
    want = [w.detach().numpy() for w in (fe.aa.permute(2, 1, 0).reshape(-1, fe.aa.shape[0]),
                                         fe.k_lo[:, 0, :].t(), fe.k_hi[:, 0, :].t(),
                                         fe.fb[:, : fe.n_lo].t(), fe.fb[:, fe.n_lo :].t())]
    mats = [inits[i] for n in nodes if n.op_type == "MatMul" for i in n.input if i in inits]
    for v in mats:
        if not any(v.shape[1] == w.shape[1] and any(np.allclose(w[i : i + len(v)], v, atol=1e-6)
                                                    for i in range(len(w) - len(v) + 1)) for w in want):
            raise SystemExit(f"reexport: error: {path} was not exported from this front end (its "
                             f"{v.shape} matrix is not one the recipe builds)")
    if not mats:
        raise SystemExit(f"reexport: error: {path} has no front-end matrices")
    state = model.state_dict()
    prefix = next((k.split("bn.")[0] for k in inits if k.endswith("bn.running_var")), None)
    if prefix is None:
        raise SystemExit(f"reexport: error: {path} has no front-end BatchNorm")
    for name in ("weight", "bias", "running_mean", "running_var"):
        state[f"frontend.bn.{name}"] = torch.from_numpy(inits[f"{prefix}bn.{name}"].copy())
    convs = [n for n in nodes if n.op_type == "Conv"]
    if len(convs) != len(cfg.channels):
        raise SystemExit(f"reexport: error: {len(convs)} Conv nodes for {len(cfg.channels)} conv blocks")
    eps = model.body[0][1].eps
    for i, node in enumerate(convs):
        w, b = inits[node.input[1]], inits[node.input[2]]
        state[f"body.{i}.0.weight"] = torch.from_numpy(w.copy())
        state[f"body.{i}.1.weight"] = torch.ones(len(b))
        state[f"body.{i}.1.bias"] = torch.from_numpy(b.copy())
        state[f"body.{i}.1.running_mean"] = torch.zeros(len(b))
        state[f"body.{i}.1.running_var"] = torch.full((len(b),), 1.0 - eps)
    gemms = {n.name: n for n in nodes if n.op_type == "Gemm"}
    for head in ("fc.0", "av"):
        node = next((n for k, n in gemms.items() if f"/heads/{head.split('.')[0]}/" in k), None)
        if node is None:
            raise SystemExit(f"reexport: error: no Gemm for heads.{head}")
        state[f"heads.{head}.weight"] = torch.from_numpy(inits[node.input[1]].copy())
        state[f"heads.{head}.bias"] = torch.from_numpy(inits[node.input[2]].copy())
    model.load_state_dict(state)
    return model.eval()


def max_diff_on_4q(old: Path, new: Path, cfg: ModelConfig, every: int = 3) -> tuple[float, int, int]:
    """Largest |old - new| output over the windows (1 s apart) of every ``every``-th 4Q clip:
    (difference, windows, clips). Needs ``../shared/data``."""
    from ..cache import load_audio
    from ..data import load_4q

    audio = load_audio(load_4q(), cfg.sample_rate, cache_dir=CACHE, progress=True)
    w, diff, n, clips = cfg.window_samples, 0.0, 0, 0
    for x in audio[::every]:
        x = np.asarray(x, np.float32)
        wins = np.stack([x[s : s + w] for s in range(0, len(x) - w + 1, cfg.sample_rate)])
        diff = max(diff, float(np.abs(run_ort(old, wins) - run_ort(new, wins)).max()))
        n, clips = n + len(wins), clips + 1
    return diff, n, clips


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=MODELS / "mer-default.onnx")
    ap.add_argument("--out", type=Path, default=None, help="where to write (default: over --model)")
    ap.add_argument("--tol", type=float, default=1e-4, help="largest old-new output difference allowed")
    ap.add_argument("--check-4q", action="store_true",
                    help="also compare old and new on every third 4Q clip, windows 1 s apart "
                    "(needs ../shared/data)")
    args = ap.parse_args(argv)
    card_path = args.model.with_suffix(".json")
    card = json.loads(card_path.read_text())
    recipe = card.get("recipe", {})
    if recipe.get("seeds", 1) != 1:
        raise SystemExit("reexport: error: only one-member models are supported")
    cfg = ModelConfig.from_dict(recipe["model"])
    model = SharedMelEnsemble([model_from_onnx(args.model, cfg)]).eval()
    out = args.out or args.model
    written = ("export", "sha256", "parameters", "flops_per_window", "name", "sample_rate", "window_samples",
               "window_seconds", "input", "outputs", "scale", "created")  # export_onnx writes these afresh
    keep = {k: v for k, v in card.items() if k not in written}
    with tempfile.TemporaryDirectory() as tmp:
        new = Path(tmp) / out.name
        export_onnx(model, new, sample_rate=cfg.sample_rate, window_samples=cfg.window_samples,
                    name=card.get("name", out.stem), card_extra=keep)
        rng = np.random.default_rng(0)
        t = np.arange(cfg.window_samples) / cfg.sample_rate
        x = np.stack([0.1 * rng.standard_normal(cfg.window_samples),  # noise, a chord, silence
                      0.3 * sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)),
                      np.zeros(cfg.window_samples)]).astype(np.float32)
        diff = float(np.abs(run_ort(args.model, x) - run_ort(new, x)).max())
        checked = "3 test windows"
        if args.check_4q:
            d4, n, clips = max_diff_on_4q(args.model, new, cfg)
            diff, checked = max(diff, d4), f"3 test windows and {n} windows of {clips} 4Q clips"
        if diff > args.tol:
            raise SystemExit(f"reexport: error: the re-export differs from {args.model} by {diff:.2e}")
        new_card = json.loads(new.with_suffix(".json").read_text())
        given = sys.argv[1:] if argv is None else argv
        new_card["export"]["reexported_from"] = {
            "sha256": card.get("sha256"), "max_abs_diff": diff, "checked_on": checked,
            "original_export": card.get("export"),
            "command": " ".join(["python -m train.experiments.reexport", *given]),
        }
        new.with_suffix(".json").write_text(json.dumps(new_card, indent=2, ensure_ascii=False) + "\n",
                                            encoding="utf-8")
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(new, out)
        shutil.copyfile(new.with_suffix(".json"), out.with_suffix(".json"))
    print(f"reexport: wrote {out} (max |old - new| {diff:.2e} on {checked})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
