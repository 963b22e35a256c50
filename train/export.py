"""Export a trained torch model to the runtime's ONNX contract, prove parity, write its model card.

Contract (``mer_live/inference/model.py``): input ``audio`` float32 ``[batch, window_samples]`` (dynamic
batch) of mono audio at ``sample_rate``; output ``av`` float32 ``[batch, 2]`` (arousal, valence)
in [0, 1]. All pre-processing (spectrogram, scaling) is inside the graph, so the runtime feeds
raw samples and there is no train/serve skew. The export is only accepted when onnxruntime
matches torch within ``tol`` on varied inputs and ``mer_live.inference.model.Model`` loads the result.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

OUTPUTS = ["arousal", "valence"]
SCALE = "0..1, 0.5 neutral"


class ExportError(RuntimeError):
    """The exported graph is unusable (parity, range, shape); the message is one line."""


def parity_inputs(window_samples: int, sample_rate: int, seed: int = 0) -> np.ndarray:
    """Varied test windows ``[6, window]``: silence, quiet and loud noise, a sine, a chirp, a click train.

    Random noise alone misses the quiet end, where log-spectrogram front ends are most fragile.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(window_samples) / sample_rate
    clicks = np.zeros(window_samples)
    clicks[:: max(1, sample_rate // 8)] = 0.9
    f = 100 * (1 + 40 * t / t[-1]) if window_samples > 1 else t
    rows = [
        np.zeros(window_samples),
        1e-4 * rng.standard_normal(window_samples),
        0.3 * rng.standard_normal(window_samples).clip(-3, 3),
        0.5 * np.sin(2 * np.pi * 440 * t),
        0.4 * np.sin(2 * np.pi * f * t),
        clicks,
    ]
    return np.stack(rows).astype(np.float32)


def count_flops(model: torch.nn.Module, window_samples: int) -> int | None:
    """FLOPs of one window's forward pass (torch's FlopCounterMode: matmuls and convolutions only)."""
    try:
        from torch.utils.flop_counter import FlopCounterMode

        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            model(torch.zeros(1, window_samples))
        return int(fc.get_total_flops())
    except Exception as e:  # an estimate only: never fail an export over it
        log.info("FLOPs not counted: %s", e)
        return None


def run_ort(path: Path, x: np.ndarray) -> np.ndarray:
    """``path``'s output for ``x`` in a one-thread CPU onnxruntime session."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, {sess.get_inputs()[0].name: x})[0])


def _torch_export(model: torch.nn.Module, dummy: torch.Tensor, path: Path, opset: int, dynamo: bool,
                  output_name: str = "av") -> int:
    """Run torch's exporter; return the opset the file really has (dynamo may keep a newer one)."""
    import onnx

    quiet = [logging.getLogger(n) for n in ("onnxscript", "onnx_ir")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.ERROR)
    try:
        _export_quietly(model, dummy, path, opset, dynamo, output_name)
    finally:
        for q, lv in zip(quiet, levels, strict=True):
            q.setLevel(lv)
    proto = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), opset)


def _export_quietly(
    model: torch.nn.Module, dummy: torch.Tensor, path: Path, opset: int, dynamo: bool, output_name: str = "av"
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            batch = torch.export.Dim("batch", min=1, max=4096)
            torch.onnx.export(
                model, (dummy,), str(path), input_names=["audio"], output_names=[output_name],
                dynamic_shapes=({0: batch},), opset_version=opset, dynamo=True, external_data=False,
            )
        else:
            torch.onnx.export(
                model, (dummy,), str(path), input_names=["audio"], output_names=[output_name],
                dynamic_axes={"audio": {0: "batch"}, output_name: {0: "batch"}}, opset_version=opset,
                dynamo=False,
            )


def export_onnx(
    model: torch.nn.Module,
    path: Path,
    *,
    sample_rate: int,
    window_samples: int,
    name: str,
    card_extra: dict[str, Any] | None = None,
    opset: int = 17,
    tol: float = 1e-4,
    dynamo: bool = False,
    outputs: tuple[str, ...] = tuple(OUTPUTS),
    output_name: str = "av",
    scale: str = SCALE,
) -> Path:
    """Write ``path`` (.onnx) and its card (.json), verified; return ``path``.

    ``model`` maps float32 ``[batch, window_samples]`` to ``[batch, 2]`` in [0, 1] (end in a
    sigmoid). ``card_extra`` goes into the card as is: put ``training_data``, ``metrics`` and
    ``protocol`` (how the metrics were measured) there. ``dynamo=True`` uses torch's newer
    exporter (it may keep opset 18; the card records the real one). Raises ExportError (and removes the
    files) when onnxruntime and torch differ by more than ``tol``, the output leaves [0, 1], or
    the runtime's ``mer_live.inference.model.Model`` rejects the result. ``outputs``, ``output_name`` and
    ``scale``: another model's contract (the presence model: ``("music",)``, ``[batch, 1]``).
    """
    from mer_live.common.hashing import sha256_of
    from mer_live.inference.model import Model, ModelCard, ModelError, card_path_for

    path = Path(path)
    if path.suffix != ".onnx":
        raise ExportError(f"{path}: the model file must end in .onnx")
    if not (isinstance(window_samples, int) and window_samples >= 16):
        raise ExportError(f"window_samples must be an integer >= 16, got {window_samples!r}")
    extra = dict(card_extra or {})
    m = copy.deepcopy(model).to("cpu").eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    card_path = card_path_for(path)

    def fail(msg: str) -> ExportError:
        path.unlink(missing_ok=True)
        card_path.unlink(missing_ok=True)
        return ExportError(f"export of {name}: {msg}")

    x = parity_inputs(window_samples, sample_rate)
    with torch.no_grad():
        ref = m(torch.from_numpy(x)).detach().numpy()
    n_out = len(outputs)
    if ref.shape != (len(x), n_out):
        raise fail(f"model returns {ref.shape}, expected [batch, {n_out}]")
    if not np.all(np.isfinite(ref)) or ref.min() < 0 or ref.max() > 1:
        raise fail(f"outputs must be finite and in [0, 1] (got {ref.min():.3g}..{ref.max():.3g}); "
                   "end in a sigmoid")

    actual_opset = _torch_export(m, torch.from_numpy(x[:2]).clone(), path, opset, dynamo, output_name)
    got = run_ort(path, x)
    single = run_ort(path, x[3:4])  # batch 1 too: the runtime usually runs one window
    diff = float(max(np.abs(got - ref).max(), np.abs(single - ref[3:4]).max()))
    if not diff <= tol:
        raise fail(f"onnxruntime differs from torch by {diff:.3g} (> {tol:g})")

    card: dict[str, Any] = {
        "name": name,
        "sample_rate": int(sample_rate),
        "window_samples": int(window_samples),
        "window_seconds": window_samples / sample_rate,
        "input": "audio: float32 [batch, window_samples], mono",
        "outputs": list(outputs),
        "scale": scale,
    }
    clash = sorted(k for k in card if k in extra and extra[k] != card[k])
    if clash:
        raise fail(f"card_extra must not override {clash}")
    card.update(extra)
    card.update({
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "parameters": int(sum(p.numel() for p in m.parameters())),
        "flops_per_window": count_flops(m, window_samples),
        "export": {"opset": actual_opset, "torch": torch.__version__, "dynamo": dynamo,
                   "parity_max_abs_diff": diff, "parity_tol": tol},
        "sha256": sha256_of(path),
    })
    try:
        ModelCard.from_dict(card, source=f"model card {card_path.name}", expect=tuple(outputs))
    except ModelError as e:
        raise fail(str(e)) from None
    card_path.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    try:
        rt = Model(path, provider="cpu", outputs=tuple(outputs))
        y = rt.predict(x)
    except ModelError as e:
        raise fail(f"the runtime rejects it: {e}") from None
    if y.shape != (len(x), n_out) or np.abs(y - ref).max() > tol:
        raise fail("mer_live.inference.model.Model output differs from torch")
    log.info("exported %s: %s params, parity %.2g", path, card["parameters"], diff)
    return path
