import json

import numpy as np
import pytest

from mer_live.inference.model import Model, ModelError


def test_loudness_model_runs_and_orders_by_level(loudness_model):
    m = Model(loudness_model, provider="cpu")
    assert m.active_provider == "CPUExecutionProvider"
    rng = np.random.default_rng(0)
    loud = (0.5 * rng.standard_normal((1, m.window_samples))).astype(np.float32)
    quiet = (0.003 * rng.standard_normal((1, m.window_samples))).astype(np.float32)
    y = m.predict(np.concatenate([loud, quiet]))
    assert y.shape == (2, 2)
    assert np.all((y >= 0) & (y <= 1))
    assert y[0, 0] > 0.9 > 0.1 > y[1, 0]


def test_broken_model_file_is_one_line_error(tmp_path, loudness_model):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not onnx")
    card = json.loads(loudness_model.with_suffix(".json").read_text())
    card.pop("sha256")
    bad.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ModelError) as e:
        Model(bad)
    assert "\n" not in str(e.value) and "bad.onnx" in str(e.value)


def test_card_sha_mismatch_is_caught(tmp_path, loudness_model):
    p = tmp_path / "m.onnx"
    p.write_bytes(loudness_model.read_bytes())
    card = json.loads(loudness_model.with_suffix(".json").read_text())
    card["sha256"] = "0" * 64
    p.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="does not match its card"):
        Model(p)


def test_missing_card_and_missing_file(tmp_path, loudness_model):
    p = tmp_path / "nocard.onnx"
    p.write_bytes(loudness_model.read_bytes())
    with pytest.raises(ModelError, match="model card not found"):
        Model(p)
    with pytest.raises(ModelError, match="model file not found"):
        Model(tmp_path / "nope.onnx")
