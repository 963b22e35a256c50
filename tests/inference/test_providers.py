"""Execution-provider choice on a CPU-only onnxruntime: the CUDA path is tested by its fallback.

Why: a performer who asks for the GPU on a machine without one must still get a working show
(with a warning), unless they asked to *require* the GPU, in which case they need a clear error
before the show starts rather than a silently slower CPU run.
"""

from __future__ import annotations

import logging

import numpy as np
import onnxruntime as ort
import pytest

from mer_live.inference.model import Model, ModelError

pytestmark = pytest.mark.skipif(
    "CUDAExecutionProvider" in ort.get_available_providers(),
    reason="this onnxruntime has CUDA: the CPU-fallback tests do not apply",
)


def test_cuda_request_falls_back_to_cpu_with_warning(loudness_model, caplog):
    with caplog.at_level(logging.WARNING, logger="mer_live.inference.model"):
        m = Model(loudness_model, provider="cuda")
    assert m.active_provider == "CPUExecutionProvider"
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings, "falling back from CUDA to CPU must warn"
    msg = warnings[0].getMessage()
    assert "CUDA" in msg and "CPU" in msg and "\n" not in msg
    # the fallback session really runs
    y = m.predict(np.zeros((1, m.window_samples), np.float32))
    assert y.shape == (1, 2) and np.all((y >= 0) & (y <= 1))


def test_auto_uses_cpu_without_warning(loudness_model, caplog):
    with caplog.at_level(logging.WARNING, logger="mer_live.inference.model"):
        m = Model(loudness_model, provider="auto")
    assert m.active_provider == "CPUExecutionProvider"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("provider", ["cuda", "auto", "cpu"])
def test_require_gpu_raises_one_line(loudness_model, provider):
    with pytest.raises(ModelError) as e:
        Model(loudness_model, provider=provider, require_gpu=True)
    msg = str(e.value)
    assert "\n" not in msg
    assert "CPUExecutionProvider" in msg and "CUDA" in msg


@pytest.mark.parametrize("provider", ["bogus", "", "CUDA ", "tensorrt"])
def test_unknown_provider_raises(loudness_model, provider):
    with pytest.raises(ModelError) as e:
        Model(loudness_model, provider=provider)
    msg = str(e.value)
    assert "\n" not in msg and "unknown provider" in msg and repr(provider) in msg
