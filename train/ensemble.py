"""Several fitted spectrogram models as ONE exported graph, sharing the mel front end.

Seeds of the same recipe disagree most where the data is thin (sad versus calm); the mean of
their probabilities is steadier than any one of them. Members trained by ``specfit`` share the
same frozen mel filters, so the graph computes the mel spectrogram once and only the per-bin
normalisation, the CNN and the heads run per member.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .models import EmotionModel


class SharedMelEnsemble(nn.Module):
    """``[B, samples] -> [B, 2]``: mean of the members' sigmoid outputs (the runtime contract)."""

    def __init__(self, members: Sequence[EmotionModel]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        first = members[0]
        if not hasattr(first.frontend, "power_db"):
            raise ValueError("SharedMelEnsemble needs log-mel spectrogram members (LogMel or MultiResLogMel)")

        def fixed(m: EmotionModel) -> dict[str, torch.Tensor]:  # the front end less its BatchNorm
            return {k: v for k, v in m.frontend.state_dict().items() if not k.startswith("bn.")}

        ref = fixed(first)
        for m in members[1:]:
            if m.cfg.to_dict() != first.cfg.to_dict():
                raise ValueError("ensemble members must share one ModelConfig")
            for k, v in fixed(m).items():
                if not torch.equal(v, ref[k]):
                    raise ValueError(f"ensemble members' spectrogram front ends differ ({k}): fit them "
                                     "with specfit (frozen filters, not learn_bands)")
        self.cfg = first.cfg
        self.mel = first.frontend
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        db = self.mel.power_db(x)
        outs = [torch.sigmoid(m.heads(m.embed(m.frontend.normalize(db)))[0]) for m in self.members]
        return torch.stack(outs, dim=0).mean(dim=0)
