"""Fitted weights on disk, and back into a model to export: what ``mer-train fit --save`` writes
and ``mer-train export`` reads.

Why a checkpoint at all: a fit takes minutes to hours, an export seconds. Keeping the weights lets
a model be exported again (another name, the CV numbers of a later ``evaluate`` on its card, a
newer exporter) without fitting it again. Three files are accepted:

* ``mer-train fit --save FIT.pt``: ``{"format": FORMAT, "model_config", "members": [state dicts],
  "card": {training_data, recipe, command, ...}}`` (one member, or a ``--seeds N`` ensemble);
* the wave recipe's ``--checkpoint-dir`` ``last.pt`` (``model``, ``best_model``, ``model_config``,
  ``epoch``): the best validation epoch's weights by default (what ``fit`` returns), or the last;
* ``mer-train ship``'s ``--members`` file: a list of state dicts with the model config as
  JSON beside it (``members.json``).

Everything is loaded with ``torch.load(weights_only=True)``: a checkpoint is data, never code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .models import ModelConfig, build_model

FORMAT = "mer-train-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or used; the message is one line naming the file."""


@dataclass
class Checkpoint:
    """Fitted weights: one state dict per ensemble member, their ModelConfig, what the card needs."""

    model_config: ModelConfig
    members: list[dict[str, torch.Tensor]]
    card: dict[str, Any] = field(default_factory=dict)  #: training_data, recipe, command (of the fit)
    kind: str = FORMAT  #: which of the accepted layouts it came from

    def build(self) -> torch.nn.Module:
        """The model to export: the member, or a ``SharedMelEnsemble`` of all members (eval mode)."""
        models = []
        for i, state in enumerate(self.members):
            m = build_model(self.model_config)
            try:
                m.load_state_dict(state, strict=True)
            except RuntimeError as e:
                first = str(e).strip().splitlines()[0]
                raise CheckpointError(f"member {i} does not fit its model config: {first}") from None
            models.append(m.eval())
        if len(models) == 1:
            return models[0]
        from .ensemble import SharedMelEnsemble

        return SharedMelEnsemble(models).eval()


def save_checkpoint(path: Path, members: list[torch.nn.Module], model_config: ModelConfig,
                    card: dict[str, Any]) -> Path:
    """Write ``path`` (atomically: a crash never leaves half a file under the real name)."""
    path = Path(path)
    if not members:
        raise CheckpointError("a checkpoint needs at least one fitted model")
    path.parent.mkdir(parents=True, exist_ok=True)
    obj = {"format": FORMAT, "model_config": model_config.to_dict(),
           "members": [{k: v.detach().to("cpu") for k, v in m.state_dict().items()} for m in members],
           "card": card}
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: Path, weights: str = "best") -> Checkpoint:
    """Read any accepted layout (see the module docstring); ``weights`` picks ``best`` or ``last``
    in a ``--checkpoint-dir`` file. Raises CheckpointError (one line) for anything else."""
    path = Path(path)
    if weights not in ("best", "last"):
        raise CheckpointError(f"weights must be 'best' or 'last', got {weights!r}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # not a torch file, truncated, or holding code
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path.name} is not a readable checkpoint: {first}") from None
    try:
        if isinstance(obj, dict) and obj.get("format") == FORMAT:
            return Checkpoint(ModelConfig.from_dict(obj["model_config"]), list(obj["members"]),
                              dict(obj.get("card") or {}), FORMAT)
        if isinstance(obj, dict) and "model" in obj and "model_config" in obj:
            best = obj.get("best_model")
            state = best if weights == "best" and best is not None else obj["model"]
            which = "best" if state is best else "last"
            epoch = obj.get("best_epoch") if which == "best" else obj.get("epoch")
            card = {"training_data": "not recorded in a --checkpoint-dir checkpoint",
                    "recipe": {"recipe": "wave", "weights": f"{which} (epoch {epoch})",
                               "epochs_run": obj.get("epoch"), "model": obj["model_config"]}}
            return Checkpoint(ModelConfig.from_dict(obj["model_config"]), [state], card, "checkpoint-dir")
        if isinstance(obj, list) and obj and all(isinstance(s, dict) for s in obj):
            cfg_path = path.with_suffix(".json")
            if not cfg_path.is_file():
                raise CheckpointError(f"{path.name} holds {len(obj)} state dicts but no model config: "
                                      f"{cfg_path.name} is missing beside it")
            cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
            card = {"training_data": "not recorded in a members file",
                    "recipe": {"recipe": "spec", "seeds": len(obj), "model": cfg}}
            return Checkpoint(ModelConfig.from_dict(cfg), list(obj), card, "members")
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"{path.name}: a damaged checkpoint ({type(e).__name__}: {e})") from None
    raise CheckpointError(f"{path.name} is not a mer-train checkpoint (fit --save, --checkpoint-dir's "
                          "last.pt, or a members file)")
