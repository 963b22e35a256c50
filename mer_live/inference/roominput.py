"""The ``--room`` input path: which model to run and how to read its outputs for a room microphone.

``[model] input = "line"`` (the default) is the desk feed: the model as shipped, untouched.
``input = "room"`` (``mer-live --room``, ``mer-analyze --room``) is a laptop or room microphone in
front of a PA (issue #19): the room model (``models/mer-room.onnx``, trained on simulated rooms
and PA chains) unless another model is given. Its card may RE-CENTRE it: the logit offsets in
``room.offsets`` (measured on out-of-fold scores of simulated rooms, see docs/room.md) are added
to each window's arousal and valence, which undoes the shift a room causes (everything read as
tenser and sadder) without changing how the model ranks music. The shipped room model's offsets
are 0 (trained on rooms, it is not shifted); a model whose card carries non-zero ones (a line
model calibrated for rooms: docs/room.md's re-centring rows) gets them.

With a fused model (a card ``fusion`` entry, ``mer_live.inference.fusion``) the teacher's logits are
re-centred too, by the card's ``room.teacher_offsets`` (``Fusion.of`` reads them from the model),
and then fused: ``sigmoid(0.7 (logit(p_cnn) + o_cnn) + 0.3 (z + o_teacher))``. The CNN's offsets
alone centre ``--no-teacher``; the teacher's were fitted after them, so the fusion is centred too.
Fusion is linear in the logits, so re-centring before fusing equals one offset after it.

``load_for_input(input, path, **model_kw)`` returns a ``Model``: a plain one for ``line``, a
``RoomModel`` for ``room``; both have the same interface (and ``input_kind``, the label the
terminal and the window show), so the pipeline and ``mer-analyze`` run either without knowing which.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from mer_live.inference.model import Model, ModelCard, ModelError, default_model_path

log = logging.getLogger(__name__)

INPUTS = ("line", "room")
ROOM_MODEL_NAME = "mer-room"


def room_model_path() -> Path:
    """The shipped room model (``models/mer-room.onnx``), wherever the package is installed."""
    return Path(str(resources.files("mer_live.models").joinpath(f"{ROOM_MODEL_NAME}.onnx")))


def _logit_pair(v: Any, what: str, card: ModelCard) -> tuple[float, float]:
    if (not isinstance(v, (list, tuple)) or len(v) != 2
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
                       and abs(x) <= 8 for x in v)):
        raise ModelError(f"model card {card.name}: room.{what} must be two finite logits in [-8, 8]")
    return float(v[0]), float(v[1])


@dataclass(frozen=True)
class RoomCalibration:
    """A model's room re-centring: logit offsets for arousal and valence (the CNN's windows), and
    for its teacher's logits when the model is fused (None: the teacher is not re-centred)."""

    offsets: tuple[float, float]
    teacher_offsets: tuple[float, float] | None = None

    @classmethod
    def from_card(cls, card: ModelCard) -> RoomCalibration | None:
        """The card's ``room.offsets`` (and ``room.teacher_offsets``), or None when the card has
        none; ModelError if malformed."""
        room = card.extra.get("room")
        if room is not None and not isinstance(room, dict):
            raise ModelError(f"model card {card.name}: 'room' must be an object")
        if room is None or room.get("offsets") is None:
            return None
        t = room.get("teacher_offsets")
        return cls(_logit_pair(room["offsets"], "offsets", card),
                   None if t is None else _logit_pair(t, "teacher_offsets", card))


def recentre(av: np.ndarray, offsets: tuple[float, float]) -> np.ndarray:
    """``[batch, 2]`` probabilities with ``offsets`` added to their logits."""
    p = np.clip(np.asarray(av, np.float64), 1e-6, 1 - 1e-6)
    z = np.log(p / (1 - p)) + np.asarray(offsets, np.float64)[None, :]
    return (1 / (1 + np.exp(-z))).astype(np.float32)


class RoomModel(Model):
    """A ``Model`` whose ``predict`` re-centres its outputs for room input (the card's offsets,
    or ``offsets`` if given; none: outputs unchanged, with a warning). ``teacher_offsets`` are
    for a fused model's teacher (``Fusion.of`` applies them)."""

    input_kind = "room"

    def __init__(self, path: str | Path, offsets: tuple[float, float] | None = None, **kw: Any) -> None:
        self.offsets = (0.0, 0.0)  # the probe run in Model.__init__ sees no offsets
        self.teacher_offsets: tuple[float, float] | None = None
        super().__init__(path, **kw)
        cal = RoomCalibration.from_card(self.card)
        if offsets is None:
            if cal is None:
                log.warning("model %s has no room calibration (room.offsets in its card): its outputs "
                            "are not re-centred for a room microphone", self.path.name)
            offsets = cal.offsets if cal is not None else (0.0, 0.0)
        self.offsets = (float(offsets[0]), float(offsets[1]))
        self.teacher_offsets = cal.teacher_offsets if cal is not None else None

    def predict(self, windows: np.ndarray) -> np.ndarray:
        y = super().predict(windows)
        return recentre(y, self.offsets) if self.offsets != (0.0, 0.0) else y


def input_kind(model: Any) -> str:
    """``"room"`` for a model loaded for room input, else ``"line"`` (the terminal's and window's label)."""
    return str(getattr(model, "input_kind", "line"))


def load_for_input(input: str, path: str | Path | None = None, **kw: Any) -> Model:
    """The model for ``input`` ("line" or "room"): ``path`` or the shipped model for that input
    (the room model falls back to the default one, with a warning, when it is not installed)."""
    if input not in INPUTS:
        raise ModelError(f"unknown input {input!r}: use line or room")
    if input == "line":
        return Model(path if path is not None else default_model_path(), **kw)
    if path is None:
        path = room_model_path()
        if not Path(path).is_file():
            log.warning("the room model %s is not installed: using the default model for room input",
                        Path(path).name)
            path = default_model_path()
    return RoomModel(path, **kw)
