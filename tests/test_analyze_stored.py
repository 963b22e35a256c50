"""``mer-analyze`` with the shipped models gives the stored records, value for value.

Why: moving or rewriting the code between files (issue #27), batching it differently or
profiling it (issue #28) must not change what a user gets. The records of the demo piece, a quiet
part of it, digital silence and four 4Q clips (one per quadrant; skipped without
../shared/data) were stored from the CLI; this runs the CLI again and compares every field.
Strings, counts and flags must be identical; numbers may differ by one unit of their rounding
(1e-4 for values, 1e-3 for times), because onnxruntime's kernels differ in the last bits between
processor types (AVX2 and AVX-512) and a value that lies on a rounding edge may flip.

A deliberate change of a shipped model changes the records: write them again with
``MER_WRITE_STORED=1 python -m pytest tests/test_analyze_stored.py`` and say so in the commit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from mer_live.sources.demo import demo_audio

ROOT = Path(__file__).resolve().parents[1]
STORED = ROOT / "tests" / "data" / "analyze-stored"
CLIPS = ("MT0000040632", "MT0000011357", "MT0000088320", "MT0000054705")  #: Q1, Q2, Q3, Q4


def _analyze(paths: list[Path], *extra: str) -> list[dict[str, Any]]:
    r = subprocess.run([sys.executable, "-m", "mer_live.analyze", *map(str, paths), *extra], cwd=ROOT,
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def _close(got: Any, want: Any, where: str) -> None:
    if isinstance(want, float) or isinstance(got, float):
        tol = 1.5e-3 if where.endswith("[0]") or where.endswith("duration") else 1.5e-4
        assert isinstance(got, (int, float)) and abs(got - want) <= tol, f"{where}: {got} != {want}"
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: length {len(got)} != {len(want)}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _close(g, w, f"{where}[{i}]")
    elif isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want), f"{where}: keys {list(got)} != {list(want)}"
        for k in want:
            _close(got[k], want[k], f"{where}.{k}")
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


def _check(name: str, records: list[dict[str, Any]]) -> None:
    for r in records:
        r["file"] = Path(r["file"]).name  # the stored records name files, not temp folders
    path = STORED / f"{name}.jsonl"
    if os.environ.get("MER_WRITE_STORED"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    want = [json.loads(line) for line in path.read_text().splitlines()]
    _close(records, want, name)


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> list[Path]:
    d = tmp_path_factory.mktemp("stored")
    x = demo_audio(22050)
    files = [d / "demo.wav", d / "quiet.flac", d / "silence.wav"]
    sf.write(files[0], x, 22050)
    sf.write(files[1], (x[: 10 * 22050] * 10 ** (-26 / 20)).astype(np.float32), 22050)
    sf.write(files[2], np.zeros(10 * 16000, np.float32), 16000)
    return files


def test_made_files_give_the_stored_records(made: list[Path]) -> None:
    _check("made", _analyze(made))


def test_made_files_give_the_stored_records_without_teacher_or_gate(made: list[Path]) -> None:
    _check("made-plain", _analyze(made, "--no-teacher", "--no-music-gate"))


def test_real_clips_give_the_stored_records(shared_data: Path) -> None:
    clips = [shared_data / "4q" / "audio" / f"{c}.mp3" for c in CLIPS]
    _check("4q", _analyze(clips))
