"""models/musicnn-msd.onnx, the pretrained teacher: the shipped file computes what musicnn (TensorFlow +
librosa) computes, checked without TensorFlow against outputs stored from it (tests/data), and its
front end against an independent numpy implementation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import need_module

ort = need_module("onnxruntime", "cpu")
onnx = need_module("onnx", "train")

from mer_live.sources.demo import demo_audio  # noqa: E402
from train import teacher  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "tests" / "data" / "musicnn-msd-demo.npz"


@pytest.fixture(scope="module")
def demo_windows() -> tuple[np.ndarray, dict]:
    """The demo piece's patches the reference was made from, cut by the same helper, and the reference."""
    ref = dict(np.load(REF))
    y = demo_audio(int(ref["demo_sr"]))
    return teacher.patch_windows(y, ref["starts"]), ref


@pytest.fixture(scope="module")
def sess():
    return teacher.session(teacher.ONNX_PATH, threads=1)


def test_card_describes_the_file() -> None:
    card = json.loads(teacher.ONNX_PATH.with_suffix(".json").read_text())
    assert card["sha256"] == teacher.sha256_of(teacher.ONNX_PATH)
    assert card["sample_rate"] == 16000 and card["window_samples"] == teacher.WINDOW_SAMPLES == 48128
    assert card["outputs"] == ["features", "tags"] and len(card["tags"]) == 50
    assert card["licence"] == "ISC" and "Universitat Pompeu Fabra" in card["copyright"]
    assert len(card["provenance"]["checkpoint_sha256"]) == 64
    assert card["parity"]["max_abs_diff_features"] <= 1e-4  # recorded by `train.teacher parity`
    assert teacher.ONNX_PATH.stat().st_size < 4_000_000


def test_inputs_and_outputs(sess) -> None:
    (inp,) = sess.get_inputs()
    assert inp.name == "audio" and inp.shape[1] == teacher.WINDOW_SAMPLES
    x = np.zeros((3, teacher.WINDOW_SAMPLES), np.float32)
    f, t = sess.run(["features", "tags"], {"audio": x})
    assert f.shape == (3, 200) and t.shape == (3, 50)
    assert np.all((t >= 0) & (t <= 1))


def test_onnx_matches_tensorflow_on_the_demo_piece(sess, demo_windows) -> None:
    """TF's outputs were stored by ``python -m train.teacher reference`` (librosa mel + musicnn's TF
    graph on the same patches). The calm and the energetic patches differ, so a model that ignores
    its input cannot pass."""
    x, ref = demo_windows
    out = teacher.run_onnx(sess, x)
    assert np.abs(out["features"] - ref["features"]).max() <= 1e-4
    assert np.abs(out["tags"] - ref["tags"]).max() <= 1e-4
    assert np.abs(ref["features"][0] - ref["features"][-1]).max() > 0.5  # calm vs energetic differ


def test_front_end_matches_librosa_and_numpy(demo_windows) -> None:
    """The graph's mel stage against librosa's (stored) and an independent float64-FFT numpy version.
    Both round the mel power to float16 as musicnn does, so a few cells differ by one float16 step
    (at most ~4e-4 after the log); anything else (window, padding, filters, log) would differ widely."""
    x, ref = demo_windows
    fe = ort.InferenceSession(teacher.frontend_model().SerializeToString(),
                              providers=["CPUExecutionProvider"])
    ours = fe.run(["logmel"], {"audio": x})[0]
    for other in (ref["logmel"], teacher.logmel_reference(x)):
        d = np.abs(ours - other)
        assert d.max() < 5e-4 and (d > 1e-5).mean() < 0.005
    assert ours.shape == (len(x), 187, 96) and ours.max() > 2.0  # real music-level values, not zeros


def test_first_frame_reads_the_context_before_the_patch() -> None:
    """Frame 0 is centred on the patch's first sample: it sees the 256 samples before it and no more."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, teacher.WINDOW_SAMPLES)).astype(np.float32) * 0.1
    a = teacher.logmel_reference(x)
    x2 = x.copy()
    x2[0, :teacher.CONTEXT] = 0
    b = teacher.logmel_reference(x2)
    assert np.abs(a[0, 0] - b[0, 0]).max() > 0.1 and np.array_equal(a[0, 1:], b[0, 1:])


def test_patch_windows_pad_the_clip_start_with_zeros() -> None:
    y = np.arange(1, 100_001, dtype=np.float32)
    starts = teacher.patch_starts(len(y), 1.0)
    last_end = starts[-1] + teacher.PATCH_SAMPLES
    assert starts[0] == 0 and last_end <= len(y) < last_end + 16000
    w = teacher.patch_windows(y, starts[:2])
    assert np.all(w[0, :256] == 0) and w[0, 256] == 1 and w[1, 0] == 16000 - 255
    with pytest.raises(ValueError, match="does not fit"):
        teacher.patch_windows(y, np.array([len(y) - 1000]))
    assert len(teacher.patch_starts(teacher.PATCH_SAMPLES - 1)) == 0


def test_run_onnx_rejects_a_wrong_length(sess) -> None:
    with pytest.raises(ValueError, match="48128 samples"):
        teacher.run_onnx(sess, np.zeros((1, 48000), np.float32))


def test_tensorflow_parity_live() -> None:
    """The live comparison (needs the TensorFlow venv of the module docstring, never the project's)."""
    pytest.importorskip("tensorflow", reason="TensorFlow lives only in /tmp/mnn-venv (train/teacher.py)")
    pytest.importorskip("musicnn", reason="musicnn lives only in /tmp/mnn-venv (train/teacher.py)")
    x = teacher.patch_windows(demo_audio(16000), np.array([16000 * 30]))
    ref = teacher.tf_reference(x)
    out = teacher.run_onnx(teacher.session(), x)
    assert np.abs(out["features"] - ref["features"]).max() <= 1e-4
