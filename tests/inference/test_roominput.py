"""The --room input path (mer_live/inference/roominput.py) on real onnxruntime sessions: re-centring from the
card, the line path untouched, bad cards refused."""

from __future__ import annotations

import json
import logging
import math
import shutil

import numpy as np
import pytest

from mer_live.inference.model import Model, ModelError
from mer_live.inference.roominput import RoomCalibration, RoomModel, load_for_input, recentre, room_model_path


def _logit(p):
    p = np.clip(np.asarray(p, np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


@pytest.fixture()
def room_card_model(loudness_model, tmp_path):
    """The loudness model with a card that carries room offsets."""
    onnx = tmp_path / "m.onnx"
    shutil.copy(loudness_model, onnx)
    card = json.loads(loudness_model.with_suffix(".json").read_text())
    card["room"] = {"offsets": [-0.7, 1.2]}
    onnx.with_suffix(".json").write_text(json.dumps(card))
    return onnx


def _windows(n: int = 6) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.stack([rng.standard_normal(16000) * 10 ** (-k / 4) for k in range(n)]).astype(np.float32)


def test_room_model_adds_the_card_offsets_to_the_logits(room_card_model):
    x = _windows()
    plain = Model(room_card_model).predict(x)
    room = RoomModel(room_card_model)
    got = room.predict(x)
    assert room.offsets == (-0.7, 1.2)
    np.testing.assert_allclose(_logit(got) - _logit(plain), np.tile([-0.7, 1.2], (len(x), 1)), atol=2e-3)
    # ranking is unchanged (re-centring is monotonic), the mean moves
    assert np.array_equal(np.argsort(got[:, 0]), np.argsort(plain[:, 0]))
    assert got[:, 0].mean() < plain[:, 0].mean() - 0.05


def test_line_input_is_the_plain_model(room_card_model):
    x = _windows()
    line = load_for_input("line", room_card_model)
    assert type(line) is Model
    np.testing.assert_array_equal(line.predict(x), Model(room_card_model).predict(x))
    room = load_for_input("room", room_card_model)
    assert isinstance(room, RoomModel) and not np.allclose(room.predict(x), line.predict(x))


def test_model_without_calibration_warns_and_passes(loudness_model, caplog):
    x = _windows()
    with caplog.at_level(logging.WARNING, logger="mer_live.inference.roominput"):
        m = RoomModel(loudness_model)
    assert "no room calibration" in caplog.text
    np.testing.assert_array_equal(m.predict(x), Model(loudness_model).predict(x))


@pytest.mark.parametrize("bad", [[1.0], [0.0, math.inf], ["a", 1], [20.0, 0.0]])
def test_bad_offsets_are_refused(loudness_model, tmp_path, bad):
    onnx = tmp_path / "m.onnx"
    shutil.copy(loudness_model, onnx)
    card = json.loads(loudness_model.with_suffix(".json").read_text())
    card["room"] = {"offsets": bad}
    onnx.with_suffix(".json").write_text(json.dumps(card).replace("Infinity", "1e999"))
    with pytest.raises(ModelError, match="room.offsets"):
        RoomModel(onnx)


def test_unknown_input_is_refused(loudness_model):
    with pytest.raises(ModelError, match="unknown input"):
        load_for_input("desk", loudness_model)


def test_recentre_is_exact_and_bounded():
    p = np.array([[0.5, 0.5], [0.1, 0.9], [0.0, 1.0]])
    r = recentre(p, (math.log(3), -math.log(3)))
    assert r[0] == pytest.approx([0.75, 0.25], abs=1e-6)
    assert np.all((r > 0) & (r < 1))


def test_shipped_room_model_card_is_calibrated():
    path = room_model_path()
    if not path.is_file():
        pytest.skip("models/mer-room.onnx is not built")
    m = RoomModel(path)
    cal = RoomCalibration.from_card(m.card)
    assert cal is not None and m.offsets == cal.offsets
