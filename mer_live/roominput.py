"""The ``--room`` input path: which model to run and how to read its outputs for a room microphone.

``[model] input = "line"`` (the default) is the desk feed: the model as shipped, untouched.
``input = "room"`` (``mer-live --room``, ``mer-analyze --room``) is a laptop or room microphone in
front of a PA (issue #19): the room model (``models/mer-room.onnx``, trained on simulated rooms)
unless another model is given, with its outputs RE-CENTRED: the logit offsets in its card's
``room.offsets`` (measured on out-of-fold scores of simulated rooms, see docs/room.md) are added
to each window's arousal and valence, which undoes the shift a room causes (everything read as
tenser and sadder) without changing how the model ranks music.

``load_for_input(input, path, **model_kw)`` returns a ``Model``: a plain one for ``line``, a
``RoomModel`` for ``room``; both have the same interface, so the pipeline and ``mer-analyze`` run
either without knowing which.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from mer_live.model import Model, ModelCard, ModelError, default_model_path

log = logging.getLogger(__name__)

INPUTS = ("line", "room")
ROOM_MODEL_NAME = "mer-room"


def room_model_path() -> Path:
    """The shipped room model (``models/mer-room.onnx``), wherever the package is installed."""
    return Path(str(resources.files("mer_live.models").joinpath(f"{ROOM_MODEL_NAME}.onnx")))


@dataclass(frozen=True)
class RoomCalibration:
    """A model's room re-centring: logit offsets for arousal and valence."""

    offsets: tuple[float, float]

    @classmethod
    def from_card(cls, card: ModelCard) -> RoomCalibration | None:
        """The card's ``room.offsets``, or None when the card has none; ModelError if malformed."""
        room = card.extra.get("room")
        if room is None or room.get("offsets") is None:
            return None
        off = room["offsets"]
        if (not isinstance(off, (list, tuple)) or len(off) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                           and abs(v) <= 8 for v in off)):
            raise ModelError(f"model card {card.name}: room.offsets must be two finite logits in [-8, 8]")
        return cls((float(off[0]), float(off[1])))


def recentre(av: np.ndarray, offsets: tuple[float, float]) -> np.ndarray:
    """``[batch, 2]`` probabilities with ``offsets`` added to their logits."""
    p = np.clip(np.asarray(av, np.float64), 1e-6, 1 - 1e-6)
    z = np.log(p / (1 - p)) + np.asarray(offsets, np.float64)[None, :]
    return (1 / (1 + np.exp(-z))).astype(np.float32)


class RoomModel(Model):
    """A ``Model`` whose ``predict`` re-centres its outputs for room input (the card's offsets,
    or ``offsets`` if given; none: outputs unchanged, with a warning)."""

    def __init__(self, path: str | Path, offsets: tuple[float, float] | None = None, **kw: Any) -> None:
        self.offsets = (0.0, 0.0)  # the probe run in Model.__init__ sees no offsets
        super().__init__(path, **kw)
        if offsets is None:
            cal = RoomCalibration.from_card(self.card)
            if cal is None:
                log.warning("model %s has no room calibration (room.offsets in its card): its outputs "
                            "are not re-centred for a room microphone", self.path.name)
            offsets = cal.offsets if cal is not None else (0.0, 0.0)
        self.offsets = (float(offsets[0]), float(offsets[1]))

    def predict(self, windows: np.ndarray) -> np.ndarray:
        y = super().predict(windows)
        return recentre(y, self.offsets) if self.offsets != (0.0, 0.0) else y


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
