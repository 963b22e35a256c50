"""train/export.py: parity torch vs onnxruntime, the model card, and the runtime loading the result."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mer_live.common.hashing import sha256_of
from mer_live.inference.model import Model, ModelCard
from train.export import ExportError, export_onnx

SR = 16000
WIN = 8000


class MelNet(torch.nn.Module):
    """A small real model: trainable nnAudio mel front end -> log -> conv -> sigmoid head."""

    def __init__(self, sr: int = SR) -> None:
        super().__init__()
        from nnAudio.features import MelSpectrogram

        self.mel = MelSpectrogram(sr=sr, n_fft=512, hop_length=256, n_mels=32, trainable_mel=True,
                                  trainable_STFT=True, verbose=False)
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.head = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = torch.log(self.mel(x) + 1e-6).unsqueeze(1)
        h = torch.relu(self.conv(m)).mean(dim=(2, 3))
        return torch.sigmoid(self.head(h))


class Unbounded(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([x.sum(1), x.sum(1)], dim=1) * 100


class Drifts(torch.nn.Module):
    """Differs between torch and ONNX: a python-side branch baked in at trace time."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        v = 0.9 if self.calls > 1 else 0.1
        return torch.full((x.shape[0], 2), v) + 0 * x[:, :2]


@pytest.mark.parametrize("dynamo", [False, True])
def test_export_mel_model_parity_card_and_runtime(tmp_path: Path, dynamo: bool) -> None:
    torch.manual_seed(0)
    net = MelNet()
    with torch.no_grad():
        net.mel.mel_basis.mul_(1.1)  # a "trained" front end differs from nnAudio's init
    extra = {"training_data": "fixture", "metrics": {"arousal_auc": 0.5}, "protocol": "none"}
    p = export_onnx(net, tmp_path / "m.onnx", sample_rate=SR, window_samples=WIN, name="mel-test",
                    card_extra=extra, dynamo=dynamo)
    card = json.loads(p.with_suffix(".json").read_text())
    assert card["sha256"] == sha256_of(p)
    assert card["window_seconds"] == WIN / SR and card["outputs"] == ["arousal", "valence"]
    assert card["metrics"] == {"arousal_auc": 0.5} and card["training_data"] == "fixture"
    assert card["parameters"] == sum(q.numel() for q in net.parameters())
    assert card["export"]["parity_max_abs_diff"] <= 1e-4
    assert ModelCard.from_dict(card).window_samples == WIN

    rt = Model(p, provider="cpu")
    rng = np.random.default_rng(1)
    x = (0.2 * rng.standard_normal((5, WIN))).astype(np.float32)
    y = rt.predict(x)
    assert y.shape == (5, 2) and np.all((y >= 0) & (y <= 1))
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    assert np.abs(y - ref).max() <= 1e-4
    assert rt.predict(x[:1]).shape == (1, 2)


def test_export_refuses_outputs_outside_unit_range(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"\[0, 1\]"):
        export_onnx(Unbounded(), tmp_path / "u.onnx", sample_rate=SR, window_samples=WIN, name="u")
    assert not (tmp_path / "u.onnx").exists() and not (tmp_path / "u.json").exists()


def test_export_raises_on_parity_failure(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="differs"):
        export_onnx(Drifts(), tmp_path / "d.onnx", sample_rate=SR, window_samples=WIN, name="d")
    assert not (tmp_path / "d.onnx").exists()


def test_card_extra_cannot_override_the_contract(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="sample_rate"):
        export_onnx(MelNet(), tmp_path / "c.onnx", sample_rate=SR, window_samples=WIN, name="c",
                    card_extra={"sample_rate": 22050})
