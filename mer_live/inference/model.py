"""Load an ONNX emotion model and its model card, pick an execution provider, run windows.

The model contract (shared with ``train/``):

* ``models/<name>.onnx`` takes mono float32 audio ``[batch, samples]`` at the card's sample rate
  (``samples`` = the card's window) and returns ``[batch, 2]``: arousal, valence in [0, 1],
  0.5 neutral. All pre-processing (spectrogram, scaling) lives inside the graph, so the runtime
  feeds raw samples and there is no train/serve skew.
* ``models/<name>.json`` is the model card: sample rate, window, outputs, scale, training data,
  metrics (and how they were measured), and the sha256 of the ``.onnx`` file.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from mer_live.common.hashing import sha256_of

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "mer-default"
OUTPUTS = ("arousal", "valence")


class ModelError(Exception):
    """A model or model card that cannot be used; the message is one line for the user."""


@dataclass(frozen=True)
class ModelCard:
    """What the runtime needs to know about a model (the rest of the card is kept in ``extra``)."""

    name: str
    sample_rate: int
    window_samples: int
    outputs: tuple[str, ...] = OUTPUTS
    scale: str = "0..1, 0.5 neutral"
    sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def window_seconds(self) -> float:
        return self.window_samples / self.sample_rate

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "model card",
                  expect: tuple[str, ...] = OUTPUTS) -> ModelCard:
        """Validate a card dict; raise ModelError naming the first problem. ``expect``: the
        outputs the caller reads (the emotion model's arousal, valence; the presence model's
        music), which the card's ``outputs`` must start with."""
        if not isinstance(d, dict):
            raise ModelError(f"{source}: expected a JSON object")
        try:
            sr = d["sample_rate"]
        except KeyError:
            raise ModelError(f"{source}: missing 'sample_rate'") from None
        if not isinstance(sr, int) or isinstance(sr, bool) or not 1000 <= sr <= 384000:
            raise ModelError(f"{source}: 'sample_rate' must be an integer in 1000..384000")
        if "window_samples" in d:
            win = d["window_samples"]
        elif "window_seconds" in d:
            w = d["window_seconds"]
            if not isinstance(w, (int, float)) or isinstance(w, bool):
                raise ModelError(f"{source}: 'window_seconds' must be a number")
            win = int(round(w * sr))
        else:
            raise ModelError(f"{source}: missing 'window_samples' or 'window_seconds'")
        if not isinstance(win, int) or isinstance(win, bool) or win < 16:
            raise ModelError(f"{source}: window must be at least 16 samples")
        outputs = tuple(d.get("outputs", expect))
        if outputs[: len(expect)] != tuple(expect):
            raise ModelError(f"{source}: 'outputs' must start with {list(expect)}, got {list(outputs)}")
        sha = d.get("sha256")
        if sha is not None and (not isinstance(sha, str) or len(sha) != 64):
            raise ModelError(f"{source}: 'sha256' must be 64 hex characters")
        return cls(
            name=str(d.get("name", "model")),
            sample_rate=sr,
            window_samples=win,
            outputs=outputs,
            scale=str(d.get("scale", "0..1, 0.5 neutral")),
            sha256=sha,
            extra=d,
        )


def default_model_path() -> Path:
    """The shipped default model (``models/mer-default.onnx``), wherever the package is installed."""
    return Path(str(resources.files("mer_live.models").joinpath(f"{DEFAULT_MODEL_NAME}.onnx")))


def card_path_for(onnx_path: Path) -> Path:
    return onnx_path.with_suffix(".json")


def load_card(onnx_path: Path, expect: tuple[str, ...] = OUTPUTS) -> ModelCard:
    """Read and validate the card that sits beside ``onnx_path`` (``expect``: see ``ModelCard.from_dict``)."""
    cp = card_path_for(onnx_path)
    if not cp.is_file():
        raise ModelError(f"model card not found: {cp} (every model needs <name>.json beside it)")
    try:
        d = json.loads(cp.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"model card {cp} is not valid JSON: {e}") from None
    return ModelCard.from_dict(d, source=f"model card {cp.name}", expect=expect)


def _ort() -> Any:
    """The onnxruntime module, or a one-line ModelError saying which extra installs it."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ModelError(f"onnxruntime is not installed ({e}): pip install 'mer-live[cpu]' "
                         "(or 'mer-live[gpu]' for CUDA)") from None
    return ort


def available_providers() -> list[str]:
    return list(_ort().get_available_providers())


def _providers_for(choice: str) -> list[str]:
    if choice == "cpu":
        return ["CPUExecutionProvider"]
    if choice in ("auto", "cuda"):
        have = available_providers()
        if "CUDAExecutionProvider" in have:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        if choice == "cuda":
            log.warning("CUDA requested but this onnxruntime has no CUDA provider (install the "
                        "[gpu] extra); using CPU")
        return ["CPUExecutionProvider"]
    raise ModelError(f"unknown provider {choice!r}: use auto, cuda or cpu")


def open_session(path: Path, fail: str, threads: int | None = 1, provider: str = "cpu",
                 log_severity: int = 3, mem_pattern: bool = True) -> Any:
    """An onnxruntime session on ``path`` (``threads`` intra-op threads, 0/None: onnxruntime's
    choice; one inter-op thread). A file onnxruntime cannot load is a one-line ``ModelError``:
    ``fail``, then onnxruntime's first line (its own exception types say more, over many lines).

    ``mem_pattern=False``: no pre-planned block for all of a run's intermediates; they come from
    the arena one by one instead. For a model with large activations (the teacher) that holds
    ~13 MB less resident at the same speed (docs/benchmarks.md, issue #28's RSS)."""
    ort = _ort()
    so = ort.SessionOptions()
    so.log_severity_level = log_severity
    so.enable_mem_pattern = mem_pattern
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers = _providers_for(provider)
    try:
        return ort.InferenceSession(str(path), sess_options=so, providers=providers)
    except Exception as e:  # onnxruntime raises its own exception types for broken files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"{fail}: {first[:200]}") from None


class Model:
    """An onnxruntime session over one model, with its card.

    ``active_provider`` is read back from the session after it is created: onnxruntime falls
    back to CPU silently when CUDA libraries are missing, so the requested provider is not proof.
    """

    def __init__(
        self,
        path: str | Path,
        provider: str = "auto",
        threads: int | None = 1,
        require_gpu: bool = False,
        verify_sha: bool = True,
        outputs: tuple[str, ...] = OUTPUTS,
    ) -> None:
        _ort()  # say a missing onnxruntime before anything about the file
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"model file not found: {self.path}")
        # the values the caller reads: the graph's first output is [batch, len(outputs)]
        self.outputs = tuple(outputs)
        self.card = load_card(self.path, expect=self.outputs)
        if verify_sha and self.card.sha256 is not None:
            actual = sha256_of(self.path)
            if actual != self.card.sha256:
                raise ModelError(
                    f"model {self.path.name} does not match its card (sha256 {actual[:12]}... != "
                    f"{self.card.sha256[:12]}...): re-export or fix the card"
                )
        self.session = open_session(self.path, f"cannot load model {self.path}", threads, provider)
        self.active_provider = self.session.get_providers()[0]
        if require_gpu and self.active_provider != "CUDAExecutionProvider":
            raise ModelError(
                f"--require-gpu: CUDA is not active (active provider: {self.active_provider}); "
                "install the [gpu] extra with CUDA 13 and cuDNN 9"
            )
        inputs = self.session.get_inputs()
        outputs = self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise ModelError(f"model {self.path.name}: expected one input and one output")
        self.input_name = inputs[0].name
        self.output_name = outputs[0].name
        shape = inputs[0].shape
        if len(shape) != 2:
            raise ModelError(f"model {self.path.name}: input must be [batch, samples], got {shape}")
        if isinstance(shape[1], int) and shape[1] != self.card.window_samples:
            raise ModelError(
                f"model {self.path.name} takes {shape[1]} samples but its card says "
                f"{self.card.window_samples}"
            )
        # One probe run proves the graph executes and returns [batch, 2] before any audio opens.
        n = len(self.outputs)
        probe = self.predict(np.zeros((1, self.card.window_samples), np.float32))
        if probe.shape != (1, n):
            raise ModelError(f"model {self.path.name}: output must be [batch, {n}], got {probe.shape}")

    @classmethod
    def load(cls, path: str | Path | None = None, **kw: Any) -> Model:
        """Load ``path`` or the shipped default model."""
        return cls(path if path is not None else default_model_path(), **kw)

    @property
    def sample_rate(self) -> int:
        return self.card.sample_rate

    @property
    def window_samples(self) -> int:
        return self.card.window_samples

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """Arousal and valence (or the ``outputs`` asked for) for each window: float32
        ``[batch, samples]`` -> ``[batch, 2]`` (``[batch, len(outputs)]``)."""
        x = np.ascontiguousarray(windows, dtype=np.float32)
        if x.ndim == 1:
            x = x[None, :]
        try:
            y = self.session.run([self.output_name], {self.input_name: x})[0]
        except Exception as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelError(f"model {self.path.name} failed to run: {first}") from None
        y = np.asarray(y, dtype=np.float32).reshape(x.shape[0], -1)[:, : len(self.outputs)]
        return y
