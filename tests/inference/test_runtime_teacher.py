"""mer_live/inference/teacher.py: the shipped teacher + head at runtime (real onnxruntime sessions, the
shipped files), and the one-line errors for files that do not belong together."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mer_live.common.fusion import fuse
from mer_live.inference.model import ModelError
from mer_live.inference.teacher import Teacher, TeacherHead
from mer_live.sources.demo import demo_audio

ROOT = Path(__file__).resolve().parents[2]
ONNX = ROOT / "models" / "musicnn-msd.onnx"
HEAD = ROOT / "models" / "musicnn-msd-head.json"


@pytest.fixture(scope="module")
def teacher() -> Teacher:
    return Teacher.load(ONNX, head=HEAD)


def windows_every_second(y: np.ndarray, win: int) -> np.ndarray:
    """Windows ending every second, as a live thread would cut them from its buffer."""
    ends = np.arange(win, len(y) + 1, 16000)
    return np.stack([y[e - win: e] for e in ends])


def test_the_demo_piece_gets_energetic_for_the_teacher_too(teacher) -> None:
    """The demo piece is calm for its first 45 % and energetic from 60 %: the shipped head's arousal
    logit must say so (a head fitted on noise or a wrong front end would not)."""
    y = demo_audio(teacher.sample_rate)
    z = teacher.logits(windows_every_second(y, teacher.window_samples))
    t_end = np.arange(len(z)) + teacher.window_samples / 16000
    calm, energetic = z[t_end < 17, 0], z[t_end > 27, 0]
    assert calm.max() < -1.0 and energetic.min() > 2.0
    p = fuse(np.full(len(z), 0.5), z[:, 0], teacher.head.w)
    assert p[t_end < 17].max() < 0.4 and p[t_end > 27].min() > 0.6


def test_head_belongs_to_the_teacher(teacher) -> None:
    card = json.loads(HEAD.read_text())
    assert card["teacher_sha256"] == json.loads(ONNX.with_suffix(".json").read_text())["sha256"]
    assert teacher.head.weight.shape == (2, 200) and teacher.head.w == 0.3
    assert set(card["cv"]["rows"]) >= {"fusion-w03-1s", "fusion-w03-3s", "fusion-w03-1p"}


def test_fuse_is_the_cross_validated_formula() -> None:
    """The one fusion formula that training cross-validated and the runtime applies."""
    from train import fusion_head as fusion

    assert fusion.fuse is fuse  # training scores with the runtime's own function
    rng = np.random.default_rng(0)
    p, z = rng.uniform(0.01, 0.99, (50, 2)), rng.normal(0, 3, (50, 2))
    expect = 1 / (1 + np.exp(-(0.7 * np.log(p / (1 - p)) + 0.3 * z)))
    np.testing.assert_allclose(fuse(p, z, 0.3), expect, rtol=1e-12)
    np.testing.assert_allclose(fuse(p, z, 0.0), p, rtol=1e-9)
    np.testing.assert_allclose(fuse(p, z, [0.0, 1.0])[:, 1], 1 / (1 + np.exp(-z[:, 1])), rtol=1e-12)


def test_wrong_window_length_is_one_line(teacher) -> None:
    with pytest.raises(ModelError, match="48128 samples"):
        teacher.features(np.zeros((1, 96000), np.float32))


def test_a_head_of_another_teacher_is_refused(tmp_path) -> None:
    shutil.copy(ONNX, tmp_path / "t.onnx")
    shutil.copy(ONNX.with_suffix(".json"), tmp_path / "t.json")
    card = json.loads(HEAD.read_text())
    card["teacher_sha256"] = "0" * 64
    (tmp_path / "h.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="another teacher"):
        Teacher(tmp_path / "t.onnx", head=tmp_path / "h.json")
    (tmp_path / "t.onnx").write_bytes((tmp_path / "t.onnx").read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ModelError, match="does not match its card"):
        Teacher(tmp_path / "t.onnx", head=HEAD)


@pytest.mark.parametrize("bad, match", [
    ({"weight": [[0.0] * 200], "bias": [0.0, 0.0]}, r"must be \[2, d\]"),
    ({"bias": [0.0, 0.0]}, "needs 'weight'"),
    ({"weight": [[0.0] * 200] * 2, "bias": [0.0, 0.0], "fusion": {"w": 1.5}}, "outside"),
])
def test_bad_heads_are_one_line_errors(tmp_path, bad, match) -> None:
    f = tmp_path / "h.json"
    f.write_text(json.dumps(bad))
    with pytest.raises(ModelError, match=match):
        TeacherHead.from_file(f)
