"""The two-rate fusion's teacher at runtime: ``models/musicnn-msd.onnx`` and its linear head give
arousal/valence logits of a 3-s patch, which ``mer_live.common.fusion.fuse`` blends with the fast
CNN's outputs.

Why a separate model: musicnn (MSD tags, ISC licence) knows more music than the 716 clips the CNN
was trained on, but costs ~40x the CNN per call, so it runs on one patch every few seconds on its
own thread while the CNN runs every hop (docs/teacher.md: the cross-validated rows per cadence).
numpy + onnxruntime only, like the rest of the runtime.

    t = Teacher.load()                       # shipped teacher + head, sha256 checked
    z = t.logits(last_samples[-t.window_samples:][None])   # [1, 2] teacher logits
    p = fuse(p_cnn, z_mean, w=t.head.w)      # sigmoid((1 - w) logit(p_cnn) + w z)

Input: the last ``window_samples`` (48128) samples at 16 kHz: one musicnn patch (2.992 s) and the
256 samples before it (its first frame is centred on the patch's first sample; at the very start
of a stream, zeros).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from mer_live.common.hashing import sha256_of
from mer_live.inference.model import ModelError, _ort, open_session

TEACHER_NAME = "musicnn-msd"
HEAD_NAME = "musicnn-msd-head"
DEFAULT_WEIGHT = 0.3


def default_teacher_path() -> Path:
    return Path(str(resources.files("mer_live.models").joinpath(f"{TEACHER_NAME}.onnx")))


def default_head_path() -> Path:
    return Path(str(resources.files("mer_live.models").joinpath(f"{HEAD_NAME}.json")))


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{what} {path} is not valid JSON: {e}") from None
    if not isinstance(d, dict):
        raise ModelError(f"{what} {path}: expected a JSON object")
    return d


@dataclass(frozen=True)
class TeacherHead:
    """``z = features @ weight.T + bias``: a logistic regression on the teacher's 200-d features,
    fitted on the 4Q clips (train/fusion_head.py), and the fusion weight ``w``."""

    weight: np.ndarray  # [2, 200]
    bias: np.ndarray  # [2]
    w: float
    teacher_sha256: str | None

    @classmethod
    def from_file(cls, path: str | Path) -> TeacherHead:
        d = _read_json(Path(path), "teacher head")
        try:
            weight = np.asarray(d["weight"], np.float64)
            bias = np.asarray(d["bias"], np.float64)
            w = float(d.get("fusion", {}).get("w", DEFAULT_WEIGHT))
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"teacher head {path}: needs 'weight' [2, d] and 'bias' [2] ({e})") from None
        if weight.ndim != 2 or weight.shape[0] != 2 or bias.shape != (2,):
            raise ModelError(f"teacher head {path}: 'weight' must be [2, d] and 'bias' [2], got "
                             f"{list(weight.shape)} and {list(bias.shape)}")
        if not (np.all(np.isfinite(weight)) and np.all(np.isfinite(bias))) or not 0.0 <= w <= 1.0:
            raise ModelError(f"teacher head {path}: non-finite weights or a fusion weight outside [0, 1]")
        return cls(weight, bias, w, d.get("teacher_sha256"))

    def logits(self, features: np.ndarray) -> np.ndarray:
        """``[n, 2]`` teacher logits (arousal, valence) of ``[n, d]`` features."""
        return np.asarray(features, np.float64) @ self.weight.T + self.bias


class Teacher:
    """An onnxruntime session on the teacher and its head (both checked against their sha256)."""

    def __init__(self, path: str | Path | None = None, head: str | Path | None = None, threads: int = 1,
                 provider: str = "cpu", verify_sha: bool = True) -> None:
        _ort()  # say a missing onnxruntime before anything about the file
        self.path = Path(path) if path is not None else default_teacher_path()
        if not self.path.is_file():
            raise ModelError(f"teacher model not found: {self.path}")
        card = _read_json(self.path.with_suffix(".json"), "teacher card")
        try:
            self.sample_rate = int(card["sample_rate"])
            self.window_samples = int(card["window_samples"])
        except (KeyError, TypeError, ValueError):
            raise ModelError(f"teacher card {self.path.with_suffix('.json')}: needs sample_rate and "
                             "window_samples") from None
        sha = sha256_of(self.path) if verify_sha else None
        if verify_sha and card.get("sha256") not in (None, sha):
            raise ModelError(f"teacher {self.path.name} does not match its card (sha256 {sha[:12]}...)")
        self.head = TeacherHead.from_file(head if head is not None else default_head_path())
        if verify_sha and self.head.teacher_sha256 not in (None, sha):
            raise ModelError(f"teacher head was fitted on another teacher file than {self.path.name}")
        # its activations are large (~40x the CNN's work): no pre-planned block for them (RSS)
        self.session = open_session(self.path, f"cannot load teacher {self.path}", threads, provider,
                                    mem_pattern=False)
        f = self.features(np.zeros((1, self.window_samples), np.float32))
        if f.shape[1] != self.head.weight.shape[1]:
            raise ModelError(f"teacher gives {f.shape[1]} features, its head expects "
                             f"{self.head.weight.shape[1]}")

    @classmethod
    def load(cls, path: str | Path | None = None, **kw: Any) -> Teacher:
        return cls(path, **kw)

    def features(self, windows: np.ndarray) -> np.ndarray:
        """``[n, 200]`` features of ``[n, window_samples]`` float32 windows (16 kHz mono)."""
        x = np.ascontiguousarray(np.atleast_2d(windows), dtype=np.float32)
        if x.shape[1] != self.window_samples:
            raise ModelError(f"teacher takes {self.window_samples} samples a window, got {x.shape[1]}")
        return self.session.run(["features"], {"audio": x})[0]

    def logits(self, windows: np.ndarray) -> np.ndarray:
        """``[n, 2]`` arousal/valence teacher logits of ``[n, window_samples]`` windows."""
        return self.head.logits(self.features(windows))
