"""FLOPs per window from the ONNX graph, this CPU's measured GFLOP/s, and how close the model's
measured time per window comes to FLOPs / (GFLOP/s).

Why: "1.8 ms per window" means little without knowing how much arithmetic a window costs and how
fast this CPU can do arithmetic at all; the ratio says whether the model is compute-bound or spends
its time on overheads (small ops, memory, thread hand-offs).

    python -m bench.bench_flops [--model M ...] [--runs 300]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from bench.common import (
    default_models,
    env_threads,
    md_table,
    model_file,
    positive_int,
    record,
    run_cli,
    stats,
)

# ----------------------------------------------------------------------------- counting


def _dims(vi) -> list[int] | None:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    out = []
    for d in t.shape.dim:
        if d.HasField("dim_value"):
            out.append(int(d.dim_value))
        else:
            return None
    return out


_COUNTED = ("Conv", "ConvTranspose", "MatMul", "Gemm")


def _shapes_by_running(model, names: list[str], batch: int) -> dict[str, list[int]]:
    """Shapes static inference could not resolve (e.g. a Pad whose pads are computed), read from
    one real onnxruntime run on zeros with those tensors exposed as extra outputs."""
    import onnx
    import onnxruntime as ort

    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for n in names:
        if n not in have:
            m.graph.output.append(onnx.ValueInfoProto(name=n))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feeds = {}
    for i in sess.get_inputs():
        dims = [batch if not isinstance(d, int) else d for d in i.shape]
        feeds[i.name] = np.zeros(dims, np.float32)
    outs = sess.run(names, feeds)
    return {n: list(o.shape) for n, o in zip(names, outs, strict=True)}


def count_macs(path: str | Path, batch: int = 1) -> dict[str, int]:
    """Multiply-accumulates of Conv/ConvTranspose/MatMul/Gemm per call at ``batch``, by op type.

    The batch dimension is fixed first so shape inference can resolve every tensor; an op whose
    shapes stay unknown is counted under ``unresolved`` (as a count of ops, not MACs).
    """
    import onnx
    from onnx import shape_inference

    try:
        m = onnx.load(str(path))
    except Exception as e:  # protobuf DecodeError and friends: a corrupt or non-ONNX file
        raise ValueError(f"cannot read ONNX model {path}: {type(e).__name__}: {e}") from None
    for inp in m.graph.input:
        dims = inp.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].Clear()
            dims[0].dim_value = batch
    m = shape_inference.infer_shapes(m, data_prop=True)
    shapes: dict[str, list[int] | None] = {}
    for vi in list(m.graph.value_info) + list(m.graph.input) + list(m.graph.output):
        shapes[vi.name] = _dims(vi)
    for init in m.graph.initializer:
        shapes[init.name] = list(init.dims)
    wanted = {n for node in m.graph.node if node.op_type in _COUNTED for n in [*node.input, node.output[0]]}
    missing = sorted(n for n in wanted if n and shapes.get(n) is None)
    if missing:
        shapes.update(_shapes_by_running(m, missing, batch))

    macs: dict[str, int] = {"Conv": 0, "MatMul": 0, "Gemm": 0, "unresolved": 0}
    for node in m.graph.node:
        op = node.op_type
        if op not in _COUNTED:
            continue
        ins = [shapes.get(n) for n in node.input]
        out = shapes.get(node.output[0])
        if op in ("Conv", "ConvTranspose"):
            w = ins[1]
            if w is None or out is None:
                macs["unresolved"] += 1
                continue
            if op == "Conv":
                # each output element: (Cin/group) * prod(kernel) MACs; w = [Cout, Cin/g, k...]
                macs["Conv"] += int(np.prod(out)) * int(np.prod(w[1:]))
            else:
                x = ins[0]
                if x is None:
                    macs["unresolved"] += 1
                    continue
                # w = [Cin, Cout/g, k...]: each input element feeds Cout/g * prod(k) MACs
                macs["Conv"] += int(np.prod(x)) * int(np.prod(w[1:]))
        elif op == "MatMul":
            a, b = ins[0], ins[1]
            if a is None or b is None or out is None:
                macs["unresolved"] += 1
                continue
            k = a[-1]
            macs["MatMul"] += int(np.prod(out)) * int(k)
        else:  # Gemm: out [M, N], K from A (respecting transA)
            a = ins[0]
            if a is None or out is None:
                macs["unresolved"] += 1
                continue
            trans_a = next((at.i for at in node.attribute if at.name == "transA"), 0)
            k = a[0] if trans_a else a[1]
            macs["Gemm"] += int(np.prod(out)) * int(k)
    return macs


def flops_per_window(path: str | Path) -> int:
    """FLOPs (2 per MAC) of one window, batch 1, counting Conv/MatMul/Gemm only."""
    m = count_macs(path, batch=1)
    return 2 * (m["Conv"] + m["MatMul"] + m["Gemm"])


# ----------------------------------------------------------------------------- CPU peak

_MATMUL_CHILD = r"""
import json, sys, time
import numpy as np
n = int(sys.argv[1]); reps = int(sys.argv[2])
rng = np.random.default_rng(0)
a = rng.standard_normal((n, n), dtype=np.float32); b = rng.standard_normal((n, n), dtype=np.float32)
a @ b
ts = []
for _ in range(reps):
    t0 = time.perf_counter(); a @ b; ts.append(time.perf_counter() - t0)
print(json.dumps(ts))
"""


def matmul_gflops(threads: int, n: int = 1024, reps: int = 40) -> list[float]:
    """GFLOP/s of an n x n float32 numpy matmul in a fresh subprocess pinned to ``threads``
    (BLAS reads its thread count at import, so the pin must be set before numpy loads)."""
    out = subprocess.run(
        [sys.executable, "-c", _MATMUL_CHILD, str(n), str(reps)],
        env=env_threads(threads),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    ts = json.loads(out.stdout)
    return [2.0 * n**3 / t / 1e9 for t in ts]


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    from bench.bench_model import reference_models, time_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", type=model_file,
                    help="model(s) to measure (default: models/)")
    ap.add_argument("--runs", type=positive_int, default=300)
    ap.add_argument("--no-reference", action="store_true", help="skip the torch-built reference CNN")
    args = ap.parse_args(argv)

    peaks = {}
    for th in (1, 2):
        g = stats(matmul_gflops(th))
        peaks[th] = g
        print(f"numpy 1024^2 float32 matmul, {th} thread(s): best {g.max:.1f}, median {g.median:.1f} GFLOP/s",
              flush=True)

    models = list(args.model or default_models())
    if not args.no_reference:
        models += reference_models()
    rows = []
    for p in models:
        f = flops_per_window(p)
        for th in (1, 2):
            s = stats(time_model(p, threads=th, runs=args.runs))
            ideal = f / (peaks[th].max * 1e9)
            rows.append([
                p.name, th, f / 1e6, f"{peaks[th].max:.1f} ({peaks[th].median:.1f})", ideal * 1e3,
                s.median * 1e3,
                f"{(f / s.median / 1e9):.1f}",
                f"{(ideal / s.median * 100):.0f}%" if f else "n/a",
            ])
    body = md_table(
        ["model", "threads", "MFLOPs/window", "matmul GFLOP/s best (median)", "ideal ms",
         "measured ms (median)", "achieved GFLOP/s", "ideal/measured"],
        rows,
    )
    record(
        "FLOPs vs measured time (bench_flops)",
        body,
        notes=[
            "FLOPs = 2 x MACs of Conv/MatMul/Gemm from the ONNX graph (batch 1, shape inference); "
            "elementwise ops, log, pooling not counted.",
            "CPU peak = the best of 40 numpy 1024x1024 float32 matmuls (median in brackets) in a "
            "subprocess with OMP/OPENBLAS_NUM_THREADS pinned (the best, because on a shared machine "
            "the median measures the neighbours); ideal ms = FLOPs / that rate.",
        ],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
