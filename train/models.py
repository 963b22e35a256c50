"""The three model families, all with the runtime's contract: mono float32 ``[batch, samples]``
at the card's rate in, ``[batch, 2]`` (arousal, valence) sigmoids in [0, 1] out.

Every pre-processing step (spectrogram, log, level and per-frequency normalisation) is part of
the module, so the ONNX export is the whole pipeline and the runtime feeds raw samples.

Each model also exposes what training needs and the export does not: ``frontend(x)`` (waveform
-> features), ``embed(features)`` (-> embedding), and ``logits(x)`` -> ``(av [B, 2], quad [B, 4])``:
the two binary logits plus an auxiliary 4-way quadrant head (multi-task), which ``forward``
drops.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

ARCHS = ("mel_cnn", "crnn", "raw_cnn")


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of every family (each uses the fields that apply to it)."""

    arch: str = "mel_cnn"
    sample_rate: int = 16000
    window_seconds: float = 3.0
    # spectrogram front end (mel_cnn, crnn)
    n_fft: int = 400
    hop: int = 400
    n_mels: int = 48
    fmin: float = 30.0
    fmax: float = 8000.0
    trainable_mel: bool = True
    trainable_stft: bool = False
    # remove the window's mean log level: a live rig's input gain is arbitrary
    level_norm: bool = True
    # body
    channels: tuple[int, ...] = (16, 32, 64, 128)
    embed_dim: int = 128
    dropout: float = 0.3
    gru_hidden: int = 64
    # raw_cnn
    raw_kernels: tuple[int, ...] = (160, 400, 1024)
    raw_stride: int = 160
    raw_branch_channels: int = 32

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"unknown arch {self.arch!r}: use one of {', '.join(ARCHS)}")
        if not 1000 <= self.sample_rate <= 96000:
            raise ValueError(f"sample_rate {self.sample_rate} is outside 1000..96000")
        if not 0.5 <= self.window_seconds <= 30:
            raise ValueError(f"window_seconds {self.window_seconds} is outside 0.5..30")
        if self.fmax > self.sample_rate / 2:
            raise ValueError(f"fmax {self.fmax} is above Nyquist ({self.sample_rate / 2})")
        if not self.channels:
            raise ValueError("channels must not be empty")

    @property
    def window_samples(self) -> int:
        return int(round(self.window_seconds * self.sample_rate))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        d["raw_kernels"] = list(self.raw_kernels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        d = dict(d)
        for k in ("channels", "raw_kernels"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


class LogMel(nn.Module):
    """nnAudio mel spectrogram (trainable filters) -> dB -> optional mean-level removal ->
    BatchNorm per mel bin (a learnt per-frequency normalisation kept in the graph).
    Output ``[B, 1, n_mels, frames]``."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        from nnAudio.features import MelSpectrogram

        self.mel = MelSpectrogram(
            sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop, n_mels=cfg.n_mels,
            fmin=cfg.fmin, fmax=cfg.fmax, trainable_mel=cfg.trainable_mel,
            trainable_STFT=cfg.trainable_stft, center=True, pad_mode="reflect", verbose=False,
        )
        self.level_norm = cfg.level_norm
        self.bn = nn.BatchNorm1d(cfg.n_mels)

    def power_db(self, x: torch.Tensor) -> torch.Tensor:
        """Mel power in dB, ``[B, n_mels, frames]`` (what the feature cache stores)."""
        m = self.mel(x)
        # abs: trainable mel filters may go slightly negative; keep the log defined
        return 10.0 * torch.log10(m.abs() + 1e-8)

    def normalize(self, db: torch.Tensor) -> torch.Tensor:
        """dB mel -> level-free, per-bin normalised features ``[B, 1, n_mels, frames]``."""
        if self.level_norm:
            db = db - db.mean(dim=(1, 2), keepdim=True)
        return self.bn(db).unsqueeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalize(self.power_db(x))


class Heads(nn.Module):
    """Shared embedding -> two binary logits (arousal, valence) + auxiliary quadrant logits."""

    def __init__(self, in_dim: int, embed_dim: int, dropout: float) -> None:
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(in_dim, embed_dim), nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.av = nn.Linear(embed_dim, 2)
        self.quad = nn.Linear(embed_dim, 4)

    def forward(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.fc(e)
        return self.av(h), self.quad(h)


class EmotionModel(nn.Module):
    """Base: ``forward`` = sigmoid of the arousal/valence logits (the exported contract)."""

    cfg: ModelConfig
    frontend: nn.Module
    heads: Heads

    def embed(self, feats: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.heads(self.embed(self.frontend(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x)[0])


def _conv2d_block(cin: int, cout: int, pool: tuple[int, int]) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.MaxPool2d(pool),
    )


class MelCNN(EmotionModel):
    """Trainable log-mel front end + 2D CNN, pooled over frequency (mean) and time (mean + max)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.frontend = LogMel(cfg)
        layers, cin = [], 1
        for c in cfg.channels:
            layers.append(_conv2d_block(cin, c, (2, 2)))
            cin = c
        self.body = nn.Sequential(*layers)
        self.heads = Heads(2 * cin, cfg.embed_dim, cfg.dropout)

    def embed(self, feats: torch.Tensor) -> torch.Tensor:
        h = self.body(feats).mean(dim=2)  # [B, C, T']
        return torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)


class CRNN(EmotionModel):
    """Log-mel + CNN that pools frequency away (keeps more time), a bidirectional GRU over time,
    then mean + max over the GRU outputs."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.frontend = LogMel(cfg)
        layers, cin, f = [], 1, cfg.n_mels
        for i, c in enumerate(cfg.channels):
            pool = (2, 2) if i < 2 else (2, 1)
            layers.append(_conv2d_block(cin, c, pool))
            cin, f = c, f // pool[0]
        self.body = nn.Sequential(*layers)
        self.freq_out = f
        self.proj = nn.Linear(cin * f, cfg.gru_hidden * 2)
        self.gru = nn.GRU(cfg.gru_hidden * 2, cfg.gru_hidden, batch_first=True, bidirectional=True)
        self.heads = Heads(4 * cfg.gru_hidden, cfg.embed_dim, cfg.dropout)

    def embed(self, feats: torch.Tensor) -> torch.Tensor:
        h = self.body(feats)  # [B, C, F', T']
        b, c, f, t = h.shape
        h = h.permute(0, 3, 1, 2).reshape(b, t, c * f)
        h, _ = self.gru(F.relu(self.proj(h)))
        return torch.cat([h.mean(dim=1), h.amax(dim=1)], dim=1)


class WaveNorm(nn.Module):
    """Scale each window to unit RMS (gain invariance for the raw-waveform model)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.squeeze(1)
        rms = torch.sqrt((x * x).mean(dim=1, keepdim=True) + 1e-8)
        return (x / rms).unsqueeze(1)


class RawCNN(EmotionModel):
    """Raw waveform: parallel strided conv1d branches with short, medium and long kernels
    (onsets vs. pitch/timbre), log-compressed, concatenated, then a 1D CNN over time."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.frontend = WaveNorm()
        s, bc = cfg.raw_stride, cfg.raw_branch_channels
        self.branches = nn.ModuleList(
            nn.Conv1d(1, bc, k, stride=s, padding=max(0, (k - s) // 2), bias=False) for k in cfg.raw_kernels
        )
        cin = bc * len(cfg.raw_kernels)
        self.bn0 = nn.BatchNorm1d(cin)
        layers = []
        for c in cfg.channels:
            layers += [nn.Conv1d(cin, c, 3, padding=1, bias=False), nn.BatchNorm1d(c), nn.ReLU(inplace=True),
                       nn.MaxPool1d(2)]
            cin = c
        self.body = nn.Sequential(*layers)
        self.heads = Heads(2 * cin, cfg.embed_dim, cfg.dropout)

    def embed(self, feats: torch.Tensor) -> torch.Tensor:
        outs = [b(feats) for b in self.branches]
        n = min(o.shape[-1] for o in outs)
        h = torch.cat([o[..., :n] for o in outs], dim=1)
        h = self.bn0(torch.log1p(h.abs() * 10.0))
        h = self.body(h)
        return torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)


def build_model(cfg: ModelConfig) -> EmotionModel:
    """The model family named by ``cfg.arch``."""
    return {"mel_cnn": MelCNN, "crnn": CRNN, "raw_cnn": RawCNN}[cfg.arch](cfg)


def count_flops(model: EmotionModel) -> int:
    """Floating-point operations (2 x multiply-adds) of one window at batch 1, inference mode.

    torch's FlopCounterMode counts convolutions and matmuls; the GRU (a fused op it does not
    count) is added by hand: 3 gates x (input + hidden) x hidden x 2 directions per frame.
    """
    from torch.utils.flop_counter import FlopCounterMode

    was = model.training
    model.eval()
    x = torch.zeros(1, model.cfg.window_samples)
    extra = 0
    frames: list[int] = []
    hooks = []
    for m in model.modules():
        if isinstance(m, nn.GRU):
            hooks.append(m.register_forward_hook(lambda mod, inp, out: frames.append(inp[0].shape[1])))
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(x)
    for h in hooks:
        h.remove()
    for m in model.modules():
        if isinstance(m, nn.GRU) and frames:
            dirs = 2 if m.bidirectional else 1
            extra += 2 * frames.pop(0) * dirs * 3 * (m.input_size + m.hidden_size) * m.hidden_size
    model.train(was)
    return int(fc.get_total_flops() + extra)

