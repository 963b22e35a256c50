"""Packaging: the shipped model folder, console scripts, and no torch in the runtime."""

from __future__ import annotations

import importlib
import importlib.resources
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_models_is_a_package_folder() -> None:
    models = importlib.resources.files("mer_live.models")
    assert models.is_dir()


def test_default_model_loads_when_shipped() -> None:
    from mer_live import Model, default_model_path

    path = default_model_path()
    if not path.is_file():
        pytest.skip("models/mer-default.onnx is not shipped yet")
    model = Model.load(provider="cpu")
    assert model.sample_rate >= 8000
    out = model.predict(__import__("numpy").zeros((2, model.window_samples), "float32"))
    assert out.shape == (2, 2)
    assert ((out >= 0) & (out <= 1)).all()


def test_console_scripts_point_at_callables() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == {"mer-live", "mer-analyze", "mer-train"}
    for name, target in scripts.items():
        module, func = target.split(":")
        if module.startswith("mer_train"):
            if not (ROOT / "train" / "cli.py").is_file():
                continue  # the training package lands separately
        mod = importlib.import_module(module)
        assert callable(getattr(mod, func)), name


def test_runtime_never_imports_torch() -> None:
    """A live machine has only onnxruntime: importing every runtime module must not pull torch."""
    code = (
        "import importlib, pkgutil, sys, mer_live\n"
        "for m in pkgutil.iter_modules(mer_live.__path__):\n"
        "    importlib.import_module('mer_live.' + m.name)\n"
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith('torch.')]\n"
        "print(len(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "0"


def test_version_matches_pyproject() -> None:
    import mer_live

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert mer_live.__version__ == meta["version"]
