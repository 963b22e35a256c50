"""docs/licences.md against what is really installed: a dependency, or a licence, not in the table fails.

Why a test: aubio's GPL sat under an MIT label for months because nobody read the metadata. This
reads it (``importlib.metadata``) for every requirement in pyproject.toml: the runtime dependencies
recursively, each extra's own packages.
"""

from __future__ import annotations

import importlib.metadata as md
import re
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "licences.md"
SPDX_OPS = {"AND", "OR", "WITH"}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def tables() -> dict[str, list[list[str]]]:
    """``{heading: rows}`` of docs/licences.md's tables (cells stripped, header and rule dropped)."""
    out: dict[str, list[list[str]]] = {}
    head = ""
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            head = line[3:].strip()
        elif line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            out.setdefault(head, []).append(cells)
    return {h: rows[1:] for h, rows in out.items()}  # the first row of each is its header


def package_rows() -> dict[str, tuple[str, str]]:
    """package -> (metadata says, licence) from the runtime and extras tables."""
    rows: dict[str, tuple[str, str]] = {}
    for head, body in tables().items():
        if head.startswith(("Runtime dependencies", "Extras")):
            for cells in body:
                m = re.match(r"`([^`]+)`", cells[0])
                assert m, f"docs/licences.md [{head}]: row without a `package`: {cells[0]!r}"
                rows[norm(m.group(1))] = (cells[1], cells[2])
    return rows


def allowed() -> set[str]:
    return {cells[0] for cells in tables()["The licences and what they ask"]}


def spdx_ids(expr: str) -> set[str]:
    return {t for t in re.split(r"[\s()]+", expr) if t and t not in SPDX_OPS}


def declared(dist: md.Distribution) -> list[str]:
    """What the metadata says, in order of precedence: License-Expression, else the licence
    classifiers, else the first line of the License field."""
    m = dist.metadata
    if m.get("License-Expression"):
        return [m["License-Expression"].strip()]
    cls = [c.split("::")[-1].strip() for c in (m.get_all("Classifier") or []) if c.startswith("License ::")]
    if cls:
        return cls
    text = (m.get("License") or "").strip()
    return [text.splitlines()[0].strip()] if text else []


def _reqs(strings: list[str], extra: str = "") -> list[Requirement]:
    out = []
    for s in strings:
        r = Requirement(s)
        if r.marker is None or r.marker.evaluate({"extra": extra}):
            out.append(r)
    return out


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def runtime_closure() -> tuple[dict[str, md.Distribution], list[str]]:
    """Installed runtime dependencies, recursively (``{name: dist}``), and those not installed."""
    found: dict[str, md.Distribution] = {}
    absent: list[str] = []
    todo = [r.name for r in _reqs(project()["dependencies"])]
    while todo:
        name = todo.pop()
        key = norm(name)
        if key in found or key in absent:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            absent.append(key)
            continue
        found[key] = dist
        todo += [r.name for r in _reqs(dist.requires or [])]
    return found, absent


def extra_packages() -> dict[str, str]:
    """Each extra's own packages -> the extra (``mer-live[x]`` self-references expanded)."""
    extras = project()["optional-dependencies"]
    out: dict[str, str] = {}
    for extra, reqs in extras.items():
        for r in _reqs(reqs, extra):
            if norm(r.name) == "mer-live":
                for sub in r.extras:
                    for r2 in _reqs(extras[sub], sub):
                        out.setdefault(norm(r2.name), sub)
            else:
                out.setdefault(norm(r.name), extra)
    return out


def test_the_package_says_gpl3_in_pyproject_and_readme():
    assert project()["license"] == "GPL-3.0-or-later"
    rows = package_rows()
    assert rows["mer-live"][1] == "GPL-3.0-or-later"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "GPL-3.0-or-later" in readme and "docs/licences.md" in readme


def test_every_licence_in_the_table_is_in_the_allow_list():
    ok = allowed()
    for name, (_says, licence) in package_rows().items():
        unknown = spdx_ids(licence) - ok
        assert not unknown, f"docs/licences.md: {name}'s licence {licence!r} names {unknown}, not allowed"


@pytest.mark.parametrize("scope", ["runtime", "extras"])
def test_installed_metadata_matches_the_table(scope):
    rows, ok = package_rows(), allowed()
    if scope == "runtime":
        dists, absent = runtime_closure()
        dists.pop("mer-live", None)
        # a runtime dependency must be installed: the package cannot run without it
        assert not absent, f"runtime dependencies not installed: {absent}"
    else:
        dists = {}
        for name in extra_packages():
            try:
                dists[name] = md.distribution(name)
            except md.PackageNotFoundError:  # e.g. onnxruntime-gpu beside [cpu]: the row is checked below
                continue
    assert dists
    problems = []
    for name, dist in sorted(dists.items()):
        if name not in rows:
            problems.append(f"{name}: installed ({scope}) but not in docs/licences.md")
            continue
        says, licence = rows[name]
        for d in declared(dist):
            if d not in says:
                problems.append(f"{name} {dist.version}: metadata says {d!r}, the table's row says {says!r}")
            if d == dist.metadata.get("License-Expression", "").strip():
                if spdx_ids(d) - ok:
                    problems.append(f"{name}: metadata licence {spdx_ids(d) - ok} is not in the allow-list")
        if not declared(dist):
            problems.append(f"{name} {dist.version}: its metadata names no licence; check it by hand")
    assert not problems, "\n".join(problems)


def test_every_extra_package_has_a_row():
    rows = package_rows()
    missing = sorted(set(extra_packages()) - set(rows))
    assert not missing, f"extras' packages without a row in docs/licences.md: {missing}"


def test_every_shipped_model_has_a_row():
    text = DOC.read_text(encoding="utf-8")
    shipped = sorted(p.name for p in (ROOT / "models").iterdir() if p.suffix in (".onnx",)
                     or p.name.endswith("-head.json"))
    assert shipped
    missing = [n for n in shipped if f"`{n}`" not in text]
    assert not missing, f"shipped model files without a licence row: {missing}"
    import json

    card = json.loads((ROOT / "models" / "musicnn-msd.json").read_text(encoding="utf-8"))
    assert card["licence"] == "ISC" and "| `musicnn-msd.onnx` |" in text and "| ISC |" in text
