"""Build small, real ONNX models for the runtime tests (no torch needed).

``make_loudness_model`` maps the window's RMS level to arousal (louder -> higher) and its
zero-crossing rate to valence, so end-to-end tests can check that values move the right way.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _const(name: str, value: float | list) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)


def make_loudness_model(
    path: Path,
    sample_rate: int = 16000,
    window_seconds: float = 1.0,
    center_db: float = -30.0,
    width_db: float = 6.0,
    name: str = "loudness-test",
    write_card: bool = True,
) -> Path:
    """Write ``path`` (.onnx) and its card: arousal = sigmoid((dBFS - center) / width)."""
    path = Path(path)
    window = int(round(window_seconds * sample_rate))
    x = helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["batch", window])
    y = helper.make_tensor_value_info("av", TensorProto.FLOAT, ["batch", 2])
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
    nodes = [
        helper.make_node("Mul", ["audio", "audio"], ["sq"]),
        helper.make_node("ReduceMean", ["sq", "axes"], ["ms"], keepdims=1),
        helper.make_node("Add", ["ms", "eps"], ["ms_eps"]),
        helper.make_node("Log", ["ms_eps"], ["ln"]),
        helper.make_node("Mul", ["ln", "db_per_ln"], ["db"]),
        helper.make_node("Sub", ["db", "center"], ["db_c"]),
        helper.make_node("Div", ["db_c", "width"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["arousal"]),
        # valence: mean |x[t] - x[t-1]| relative to mean |x| (brightness), squashed to [0, 1]
        helper.make_node("Abs", ["audio"], ["absx"]),
        helper.make_node("ReduceMean", ["absx", "axes"], ["mabs"], keepdims=1),
        helper.make_node("Slice", ["audio", "s1", "end", "axes"], ["xa"]),
        helper.make_node("Slice", ["audio", "s0", "endm1", "axes"], ["xb"]),
        helper.make_node("Sub", ["xa", "xb"], ["dx"]),
        helper.make_node("Abs", ["dx"], ["absdx"]),
        helper.make_node("ReduceMean", ["absdx", "axes"], ["mdx"], keepdims=1),
        helper.make_node("Add", ["mabs", "eps"], ["mabs_eps"]),
        helper.make_node("Div", ["mdx", "mabs_eps"], ["ratio"]),
        helper.make_node("Sub", ["ratio", "half"], ["ratio_c"]),
        helper.make_node("Mul", ["ratio_c", "four"], ["ratio_s"]),
        helper.make_node("Sigmoid", ["ratio_s"], ["valence"]),
        helper.make_node("Concat", ["arousal", "valence"], ["av"], axis=1),
    ]
    inits = [
        axes,
        _const("eps", 1e-10),
        _const("db_per_ln", 10.0 / np.log(10.0)),
        _const("center", center_db),
        _const("width", width_db),
        _const("half", 0.5),
        _const("four", 4.0),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "s1"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "s0"),
        numpy_helper.from_array(np.array([window], dtype=np.int64), "end"),
        numpy_helper.from_array(np.array([window - 1], dtype=np.int64), "endm1"),
    ]
    graph = helper.make_graph(nodes, name, [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    if write_card:
        card = {
            "name": name,
            "sample_rate": sample_rate,
            "window_samples": window,
            "outputs": ["arousal", "valence"],
            "scale": "0..1, 0.5 neutral",
            "description": "test model: arousal from RMS level, valence from brightness",
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        }
        path.with_suffix(".json").write_text(json.dumps(card, indent=2))
    return path
