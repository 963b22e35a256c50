"""One home for training's folders and shared defaults (issue #27 item 4), and the one-way rule
between the library and the research scripts (item 5)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_cache_dir_is_mer_cache_else_the_repository_cache(tmp_path: Path) -> None:
    code = "from train import paths; print(paths.cache_dir()); print(paths.CACHE)"
    env = {k: v for k, v in os.environ.items() if k != "MER_CACHE"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=60, check=True).stdout.split()
    assert out == [str(ROOT / "cache")] * 2
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path,
                         env={**env, "PYTHONPATH": str(ROOT), "MER_CACHE": str(tmp_path / "c")},
                         capture_output=True, text=True, timeout=60, check=True).stdout.split()
    assert out == [str(tmp_path / "c")] * 2


def test_training_clean_up_defaults_are_the_pipelines() -> None:
    """Training decodes with ``mer_live.common.cleanup``'s defaults; the live pipeline with its
    config's: they must be the same numbers, or training hears other audio than the show."""
    from mer_live.common.cleanup import CLEANUP
    from mer_live.live.pipeline import PipelineConfig

    live = PipelineConfig()
    assert (CLEANUP.gain_db, CLEANUP.pick, CLEANUP.dc_cutoff_hz) == (
        live.gain_db, live.pick, live.dc_cutoff_hz)


def _imports(path: Path) -> set[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved inside train/)."""
    pkg = path.relative_to(ROOT).with_suffix("").parts[:-1]
    if path.name == "__init__.py":
        pkg = path.relative_to(ROOT).parts[:-1]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = list(pkg[: len(pkg) - node.level + 1]) if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            names.add(mod)
            names |= {f"{mod}.{a.name}" for a in node.names}
    return names


def test_no_library_module_imports_the_experiments() -> None:
    lib = [p for p in (ROOT / "train").rglob("*.py") if "experiments" not in p.relative_to(ROOT).parts]
    assert len(lib) > 20
    bad = {str(p.relative_to(ROOT)): sorted(n for n in _imports(p) if n.startswith("train.experiments"))
           for p in lib}
    assert not {k: v for k, v in bad.items() if v}


def test_every_library_package_of_train_is_installed() -> None:
    """pyproject lists packages one by one: a subpackage left out (train/presence/) would be missing
    from a plain ``pip install .``, and ``mer-train ship presence`` with it. experiments/ is research,
    not installed."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(["mer_train", *p.parent.relative_to(ROOT / "train").parts])
             for p in (ROOT / "train").rglob("__init__.py") if "experiments" not in p.parts}
    assert found and found <= listed, sorted(found - listed)
