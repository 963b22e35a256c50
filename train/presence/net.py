"""The presence network: the front end (multires log-mel, level removed), a small CNN, one sigmoid.

``presence_config`` fixes the spectrogram (what the shipped ONNX computes), ``build_model`` the
seeded net with its fixed DFT and band filters frozen.
"""

from __future__ import annotations

import torch
from torch import nn

from ..models import ModelConfig, make_frontend

SR = 16000


def presence_config(window_seconds: float = 2.0) -> ModelConfig:
    """The front end: multires log-mel, 40 mel bands 30 Hz..8 kHz, 40-ms frames, short DFTs
    (128 points at 4 kHz below 1.5 kHz, 128 at 16 kHz above): presence needs no fine pitch, and
    the whole model stays ~8 MFLOPs a window."""
    return ModelConfig(
        arch="mel_cnn",
        sample_rate=SR,
        window_seconds=window_seconds,
        hop=640,
        n_mels=40,
        fmin=30.0,
        fmax=8000.0,
        trainable_mel=False,
        frontend="multires",
        split_hz=1500.0,
        low_n_fft=128,
        low_decim=4,
        high_n_fft=128,
        band_scale="mel",
        level_norm=True,
        channels=(8, 16, 32),
        embed_dim=32,
        dropout=0.2,
    )


class PresenceNet(nn.Module):
    """Log-mel (level removed, per-band BatchNorm) -> 3 conv blocks -> mean over frequency ->
    mean and max over time -> a small MLP -> one logit. ``forward`` = sigmoid, ``[B, 1]``."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.frontend = make_frontend(cfg)
        layers: list[nn.Module] = []
        cin = 1
        for c in cfg.channels:
            layers += [
                nn.Conv2d(cin, c, 3, padding=1, bias=False),
                nn.BatchNorm2d(c),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            cin = c
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Linear(2 * cin, cfg.embed_dim),
            nn.ReLU(inplace=True),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.embed_dim, 1),
        )

    def logits_from_db(self, db: torch.Tensor) -> torch.Tensor:
        """Band power in dB ``[B, n_mels, frames]`` -> logits ``[B]`` (cached training)."""
        h = self.body(self.frontend.normalize(db)).mean(dim=2)
        return self.head(torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1))[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits_from_db(self.frontend.power_db(x)))[:, None]


def build_model(cfg: ModelConfig | None = None, seed: int = 0) -> PresenceNet:
    torch.manual_seed(seed)
    m = PresenceNet(cfg or presence_config())
    for p in m.frontend.parameters():  # the DFT and band filters are fixed; only the BatchNorm learns
        if p is not m.frontend.bn.weight and p is not m.frontend.bn.bias:
            p.requires_grad_(False)
    return m
