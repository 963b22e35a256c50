"""The two-rate fusion's teacher at runtime: ``models/musicnn-msd.onnx`` and its linear head give
arousal/valence logits of a 3-s patch, which ``fuse`` blends with the fast CNN's outputs.

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

from mer_live.model import ModelError, _ort, _providers_for, sha256_of

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
    fitted on the 4Q clips (train/experiments/fusion.py), and the fusion weight ``w``."""

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
        ort = _ort()
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
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=so,
                                                providers=_providers_for(provider))
        except ModelError:
            raise
        except Exception as e:  # onnxruntime's own exception types for broken files
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelError(f"cannot load teacher {self.path}: {first}") from None
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


def fuse(p_cnn: np.ndarray | float, z_teacher: np.ndarray | float, w: float = DEFAULT_WEIGHT) -> np.ndarray:
    """``sigmoid((1 - w) logit(p_cnn) + w z_teacher)``: the CNN's probabilities (clipped to
    [1e-6, 1 - 1e-6]) and the teacher's logits blended in logit space; ``w`` 0 is the CNN alone."""
    p = np.clip(np.asarray(p_cnn, np.float64), 1e-6, 1 - 1e-6)
    z = (1 - w) * np.log(p / (1 - p)) + w * np.asarray(z_teacher, np.float64)
    return 1 / (1 + np.exp(-z))
