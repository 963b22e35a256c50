"""The CPU cuts of issue #28 change no output: each cut path against the plain one, with the shipped
models in real onnxruntime sessions.

- ``mer-analyze`` prepares files (decode, music gate, teacher) on its decoding threads while the
  CNN runs on the main thread: the records equal those of one file at a time (``analyze_file``).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import need_module

ort = need_module("onnxruntime", "cpu")

from mer_live.analyze import analyze_file, run  # noqa: E402
from mer_live.assemble import load_model, load_presence  # noqa: E402
from mer_live.inference.fusion import Fusion  # noqa: E402
from mer_live.sources.demo import demo_audio  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> list[Path]:
    """Three recordings that take different paths: music at 22.05 kHz, stereo music at 44.1 kHz
    with a silent stretch, and one shorter than a window."""
    d = tmp_path_factory.mktemp("perf-equal")
    x = demo_audio(22050)
    y = demo_audio(44100)[: 44100 * 25]
    y[44100 * 8 : 44100 * 14] = 0.0
    out = [d / "a.wav", d / "b.flac", d / "c.wav"]
    sf.write(out[0], x, 22050)
    sf.write(out[1], np.stack([y, 0.5 * y], axis=1), 44100)
    sf.write(out[2], x[: 22050 * 4], 22050)
    return out


@pytest.mark.parametrize("decoders", [1, 2])
def test_threaded_preparation_gives_the_records_of_one_file_at_a_time(files: list[Path],
                                                                       decoders: int) -> None:
    model = load_model(None, "cpu", 1)
    presence, fusion = load_presence(), Fusion.of(model, threads=1)
    assert fusion is not None and presence is not None  # the shipped model is fused and gated
    want = [analyze_file(p, model, presence=presence, fusion=fusion) for p in files]
    buf = io.StringIO()
    assert run([str(p) for p in files], model, out=buf, decoders=decoders, presence=presence,
               fusion=fusion) == 0
    got = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert [r["file"] for r in got] == [str(p) for p in files]
    assert got == want  # every field, every timeline point: the same numbers
    assert got[1]["music"] < 1.0 and got[0]["music"] > 0.5  # the silent stretch is left out
