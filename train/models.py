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

import math
from collections.abc import Callable
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
    # "nnaudio": one STFT (nnAudio) + mel; "multires": fine 64 ms frames below split_hz from a
    # 4x-decimated signal, short frames above it (MultiResLogMel: a fraction of the STFT's cost)
    frontend: str = "nnaudio"
    split_hz: float = 1500.0
    low_n_fft: int = 256  # at sample_rate / low_decim
    low_decim: int = 4
    high_n_fft: int = 256
    # high branch: average the power of this many short frames spread over each hop (1: one frame
    # per hop, which sees only high_n_fft of every hop samples: transients in between are missed)
    high_subframes: int = 1
    # multires band scale: "mel", or "semitone": one band per semitone from semitone_lo_hz up to
    # where a semitone is as wide as a mel band, mel above, mel-spaced below (harmony becomes a
    # pattern the 2D CNN can read: a third is the same shift in any key)
    band_scale: str = "mel"
    semitone_lo_hz: float = 250.0
    # learn the band filters in cached training (specfit): the cache then stores DFT-bin power
    # and every crop goes through the current filters. multires: a log gain per weight inside
    # each band's support, starting from the triangles; nnaudio: nnAudio's trainable mel matrix
    # (needs trainable_mel and a fixed STFT). Either way still one MatMul in the graph
    learn_bands: bool = False
    # remove the window's mean log level: a live rig's input gain is arbitrary
    level_norm: bool = True
    # mel_cnn: a pulse branch beside the CNN (the autocorrelation of the window's onset envelope
    # at beat-period lags, rhythm_lags_s), joined to the embedding: tempo and pulse clarity
    rhythm: bool = False
    rhythm_lags_s: tuple[float, float] = (0.2, 2.0)
    rhythm_dim: int = 16
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
        if self.frontend not in ("nnaudio", "multires"):
            raise ValueError(f"unknown frontend {self.frontend!r}: use nnaudio or multires")
        if self.high_subframes < 1 or self.hop % self.high_subframes:
            raise ValueError(f"high_subframes {self.high_subframes} must be >= 1 and divide hop {self.hop}")
        if self.rhythm and self.arch != "mel_cnn":
            raise ValueError("rhythm (the pulse branch) is for arch mel_cnn")
        if self.band_scale not in ("mel", "semitone"):
            raise ValueError(f"unknown band_scale {self.band_scale!r}: use mel or semitone")
        if self.band_scale != "mel" and self.frontend != "multires":
            raise ValueError("band_scale semitone needs frontend multires")
        nnaudio_fixed = not self.trainable_mel or self.trainable_stft
        if self.learn_bands and self.frontend == "nnaudio" and nnaudio_fixed:
            raise ValueError("learn_bands with frontend nnaudio needs trainable_mel and not trainable_stft")
        if self.frontend == "multires" and not 0 < self.split_hz < self.sample_rate / (2 * self.low_decim):
            raise ValueError(f"split_hz {self.split_hz} must be below the decimated Nyquist "
                             f"({self.sample_rate / (2 * self.low_decim):g} Hz)")

    @property
    def window_samples(self) -> int:
        return int(round(self.window_seconds * self.sample_rate))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        d["raw_kernels"] = list(self.raw_kernels)
        d["rhythm_lags_s"] = list(self.rhythm_lags_s)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        d = dict(d)
        for k in ("channels", "raw_kernels", "rhythm_lags_s"):
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

        self.learns_bands = cfg.learn_bands

    def power_db(self, x: torch.Tensor) -> torch.Tensor:
        """Mel power in dB, ``[B, n_mels, frames]`` (what the feature cache stores)."""
        m = self.mel(x)
        # abs: trainable mel filters may go slightly negative; keep the log defined
        return 10.0 * torch.log10(m.abs() + 1e-8)

    def bins_db(self, x: torch.Tensor) -> torch.Tensor:
        """STFT bin power in dB, ``[B, bins, frames]``: the fixed part below trainable mel filters."""
        spec = self.mel.stft(x, output_format="Magnitude") ** self.mel.power
        return 10.0 * torch.log10(spec + 1e-8)

    def bands_db(self, bins_db: torch.Tensor) -> torch.Tensor:
        """``bins_db`` -> mel dB through the current (trainable) filters: ``power_db`` in two steps."""
        return 10.0 * torch.log10(torch.matmul(self.mel.mel_basis, 10 ** (bins_db / 10)).abs() + 1e-8)

    def normalize(self, db: torch.Tensor) -> torch.Tensor:
        """dB mel -> level-free, per-bin normalised features ``[B, 1, n_mels, frames]``."""
        if self.level_norm:
            db = db - db.mean(dim=(1, 2), keepdim=True)
        return self.bn(db).unsqueeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalize(self.power_db(x))


def _hz_to_mel(f: torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + f / 700.0)


def band_axis(cfg: ModelConfig) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor]:
    """``(warp, points)``: the frequency warp of ``cfg.band_scale`` (Hz -> band units, increasing)
    and the ``n_mels + 2`` equally spaced points on it whose neighbours are each band's edges.

    ``mel``: the HTK mel scale. ``semitone``: with step d (mel units per band), bands are mel
    spaced up to ``semitone_lo_hz``, one semitone wide from there up to the frequency f0 where a
    semitone spans d mel, and mel spaced above f0; d is solved so that there are n_mels bands.
    """
    lo, hi = float(cfg.fmin), float(cfg.fmax)
    if cfg.band_scale == "mel":
        def mel(f: torch.Tensor) -> torch.Tensor:
            return _hz_to_mel(f)
        pts = torch.linspace(float(_hz_to_mel(torch.tensor(lo))), float(_hz_to_mel(torch.tensor(hi))),
                             cfg.n_mels + 2, dtype=torch.float64)
        return mel, pts
    f1 = float(cfg.semitone_lo_hz)

    def make(d: float) -> tuple[Callable[[torch.Tensor], torch.Tensor], float]:
        # f0: semitone width in mel (slope 1127 / (700 + f) per Hz, times f (2^(1/12) - 1)) equals d
        k = 2 ** (1 / 12) - 1
        f0 = max(f1, min(hi, d * 700 / (1127 * k - d))) if 1127 * k > d else hi
        m0, m1 = float(_hz_to_mel(torch.tensor(f0))), float(_hz_to_mel(torch.tensor(f1)))
        w1 = m0 - 12 * math.log2(f0 / f1) * d  # warp value at f1

        def warp(f: torch.Tensor) -> torch.Tensor:
            f = f.double().clamp(min=1e-3)
            mid = m0 - 12 * torch.log2(f0 / f) * d
            low = w1 - (m1 - _hz_to_mel(f))
            return torch.where(f >= f0, _hz_to_mel(f), torch.where(f >= f1, mid, low))

        span = float(warp(torch.tensor(hi)) - warp(torch.tensor(lo)))
        return warp, span / (cfg.n_mels + 1)

    d = 40.0
    for _ in range(60):  # fixed point: the step that fits n_mels bands into [fmin, fmax]
        d = make(d)[1]
    warp = make(d)[0]
    a, b = float(warp(torch.tensor(lo))), float(warp(torch.tensor(hi)))
    return warp, torch.linspace(a, b, cfg.n_mels + 2, dtype=torch.float64)


def _dft_kernels(n_fft: int, bins: torch.Tensor) -> torch.Tensor:
    """Hann-windowed DFT rows ``[2 * len(bins), 1, n_fft]``: cosines then sines of the given bins."""
    n = torch.arange(n_fft, dtype=torch.float64)
    win = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
    ang = 2 * torch.pi * bins.double()[:, None] * n[None, :] / n_fft
    k = torch.cat([torch.cos(ang) * win, -torch.sin(ang) * win])
    return k.float()[:, None, :]


def _lowpass(taps: int, cutoff: float) -> torch.Tensor:
    """Windowed-sinc low-pass FIR ``[1, 1, taps]``; ``cutoff`` in cycles per sample."""
    n = torch.arange(taps, dtype=torch.float64) - (taps - 1) / 2
    h = 2 * cutoff * torch.sinc(2 * cutoff * n) * torch.kaiser_window(taps, periodic=False, beta=6.0,
                                                                       dtype=torch.float64)
    return (h / h.sum()).float()[None, None, :]


def _n(x: torch.Tensor) -> int:
    """The length of ``x``'s last axis as a plain int: an exported graph then holds it as a
    constant (a window's length is fixed) instead of recomputing it from the input's shape."""
    return int(x.shape[-1])


class MultiResLogMel(nn.Module):
    """Log-mel spectrogram from two DFT resolutions, at a fraction of one long STFT's cost.

    Harmony lives low: below ``split_hz`` the signal is low-passed and decimated by ``low_decim``,
    and a ``low_n_fft``-point DFT there gives long frames and fine bins (at 16 kHz, 4x, 256: 64 ms
    and 15.6 Hz). Above it, where mel bands are hundreds of Hz wide, a short ``high_n_fft`` DFT at
    the full rate suffices. Both are centred on the same frames (``hop`` apart, reflect-padded like
    ``center=True``), joined on one frequency axis and summed into triangular mel bands (weighted
    by bin width). Only the bins the mel bands use are computed. Fixed (not trained) kernels.
    Same interface as ``LogMel``: ``power_db``, ``normalize``, ``forward``.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        sr, d = cfg.sample_rate, cfg.low_decim
        self.hop, self.decim = cfg.hop, d
        if cfg.hop % d:
            raise ValueError(f"hop {cfg.hop} must be a multiple of low_decim {d}")
        self.low_n, self.high_n = cfg.low_n_fft, cfg.high_n_fft
        self.subframes = cfg.high_subframes
        lo_step, hi_step = sr / d / self.low_n, sr / self.high_n
        lo_bins = torch.arange(0, int(cfg.split_hz // lo_step) + 1)
        lo_bins = lo_bins[lo_bins * lo_step < cfg.split_hz]
        hi_bins = torch.arange(int(-(-cfg.split_hz // hi_step)), int(cfg.fmax // hi_step) + 1)
        self.n_lo = len(lo_bins)
        # anti-alias: pass below split_hz; what would fold below split_hz (above sr/d - split_hz) is
        # in the ~60 dB stop band; what folds above it is never used
        self.aa_taps = 16 * d + 1
        cutoff = sr / d / 2 / sr
        # the FIR runs as a polyphase convolution: blocks of P input samples in, P / d outputs per
        # block out (a small dense matmul; a 1-channel strided Conv is ~5x slower in onnxruntime)
        h = _lowpass(self.aa_taps, cutoff)[0, 0]
        P = 16 * d  # wide blocks: the FIR spans K = 2 of them, so framing copies little
        self.poly_in, self.poly_out = P, P // d
        K = (d * (self.poly_out - 1) + self.aa_taps - 1) // P + 1
        w = torch.zeros(self.poly_out, P, K)
        for s_ in range(self.poly_out):
            for k in range(K):
                for r in range(P):
                    t = P * k + r - d * s_
                    if 0 <= t < self.aa_taps:
                        w[s_, r, k] = h[t]
        self.register_buffer("aa", w, persistent=True)
        self.register_buffer("k_lo", _dft_kernels(self.low_n, lo_bins), persistent=True)
        self.register_buffer("k_hi", _dft_kernels(self.high_n, hi_bins), persistent=True)
        freqs = torch.cat([lo_bins * lo_step, hi_bins * hi_step]).double()
        widths = torch.cat([torch.full((len(lo_bins),), lo_step),
                            torch.full((len(hi_bins),), hi_step)]).double()
        warp, mel_pts = band_axis(cfg)
        m = warp(freqs)
        lo, ce, hi = mel_pts[:-2, None], mel_pts[1:-1, None], mel_pts[2:, None]
        tri = torch.clamp(torch.minimum((m - lo) / (ce - lo), (hi - m) / (hi - ce)), min=0.0) * widths
        # a band narrower than the bins may catch none: give it its nearest bin
        empty = tri.sum(dim=1) == 0
        if empty.any():
            near = (m[None, :] - ce).abs().argmin(dim=1)
            tri[empty, near[empty]] = 1.0
        fb = (tri / tri.sum(dim=1, keepdim=True)).float()
        self.learns_bands = cfg.learn_bands
        if cfg.learn_bands:  # fixed support and start, learnt shape: fb0 * exp(fb_log)
            self.register_buffer("fb0", fb, persistent=True)
            self.fb_log = nn.Parameter(torch.zeros_like(fb))
        else:
            self.register_buffer("fb", fb, persistent=True)
        self.level_norm = cfg.level_norm
        self.bn = nn.BatchNorm1d(cfg.n_mels)

    def bands(self) -> torch.Tensor:
        """The band filter matrix ``[n_mels, bins]`` (low bins, then high) as it is now."""
        return self.fb0 * torch.exp(self.fb_log.clamp(-6.0, 6.0)) if self.learns_bands else self.fb

    @property
    def support(self) -> int:
        """Samples each frame reaches on either side of its centre (for seamless chunking)."""
        return max(self.low_n * self.decim, self.high_n) // 2 + self.aa_taps

    @staticmethod
    def _framed_matmul(x: torch.Tensor, w: torch.Tensor, n_fft: int, hop: int, frames: int) -> torch.Tensor:
        """``frames(x) @ w``, ``[B, frames, out]``, where frame j is ``x[:, j*hop : j*hop+n_fft]``
        (``x [B, L]`` zero-extended) and ``w [n_fft, out]``.

        No frame matrix is built: ``x`` is reshaped into hop-long blocks and each hop-long slice
        of ``w`` multiplies a shifted view of the blocks. Plain MatMuls on reshapes run several
        times faster in onnxruntime than the same product as a 1-channel strided Conv (im2col).
        A shifted view is a copy in the graph, so where the product is narrower than a block
        (the decimator: 16 outputs per 64-sample block) every block is multiplied and the
        product is shifted instead.
        """
        parts = -(-n_fft // hop)
        rows = frames + parts - 1
        need = rows * hop
        if _n(x) < need:
            x = F.pad(x, (0, need - _n(x)))
        elif _n(x) > need:  # (a slice to the full length would still copy in the graph)
            x = x[:, :need]
        blocks = x.reshape(-1, rows, hop)
        out = None
        for i in range(parts):
            width = min(hop, n_fft - i * hop)
            wi = w[i * hop : i * hop + width]
            if width == hop and w.shape[1] < hop:
                y = blocks @ wi
                y = y if rows == frames else y[:, i : i + frames]
            else:
                view = blocks if rows == frames else blocks[:, i : i + frames]
                y = (view if width == hop else view[..., :width]) @ wi
            out = y if out is None else out + y
        return out

    def _decimate(self, x: torch.Tensor) -> torch.Tensor:
        """Low-pass and keep every ``decim``-th sample: ``[B, N] -> [B, ceil(N / decim)]``, output
        m centred on input sample m * decim (reflect-padded ends). A polyphase FIR: each output
        block of P / d samples is a fixed linear map of K consecutive P-sample input blocks."""
        n = _n(x)
        half = (self.aa_taps - 1) // 2
        P, K = self.poly_in, self.aa.shape[-1]
        n_out = -(-n // self.decim)
        out_blocks = -(-n_out // self.poly_out)
        w = self.aa.permute(2, 1, 0).reshape(K * P, self.poly_out)  # [(k, r), s]
        y = self._framed_matmul(F.pad(x, (half, half), mode="reflect"), w, K * P, P, out_blocks)
        y = y.reshape(-1, out_blocks * self.poly_out)
        return y if _n(y) == n_out else y[:, :n_out]

    def _dft(self, x: torch.Tensor, k: torch.Tensor, n_fft: int, hop: int, frames: int) -> torch.Tensor:
        """``[B, frames, 2 x bins]``: the real parts, then the imaginary parts, of the DFT of the
        frames centred on j * hop (reflect-padded ends) from one branch."""
        # the blocks _framed_matmul cuts may reach past the last frame: pad that far at once (what
        # lies beyond the last frame's reach is multiplied by nothing, so it may be reflected too)
        half, rows = n_fft // 2, frames + -(-n_fft // hop) - 1
        right = max(half, rows * hop - half - _n(x))
        right = right if right < _n(x) else half  # (reflect needs a longer input; _framed_matmul zero-fills)
        xp = F.pad(x, (half, right), mode="reflect")
        return self._framed_matmul(xp, k[:, 0, :].t(), n_fft, hop, frames)

    def _bin_power(self, x: torch.Tensor, k: torch.Tensor, n_fft: int, hop: int, frames: int) -> torch.Tensor:
        """``[B, frames, bins]``: DFT bin power (re² + im²) of ``_dft``'s frames."""
        y = self._dft(x, k, n_fft, hop, frames)
        p, n = y * y, _n(y) // 2
        return p[..., :n] + p[..., n:]

    def _low_bin_power(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """``[B, frames, low bins]``: the decimated branch's bin power."""
        return self._bin_power(self._decimate(x), self.k_lo, self.low_n, self.hop // self.decim, frames)

    def _high_bin_power(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """``[B, frames, high bins]``: the full-rate branch's bin power; with sub-frames, ``s``
        frames hop/s apart, centred on j * hop as a group, averaged."""
        s = self.subframes
        if s == 1:
            return self._bin_power(x, self.k_hi, self.high_n, self.hop, frames)
        sub = self.hop // s
        half = (s - 1) * sub // 2  # odd s: offsets -half..half; even s: +-sub/2, +-3sub/2, ...
        xs = F.pad(x[:, None, :], (half, half), mode="reflect")[:, 0] if half else x
        hp = self._bin_power(xs, self.k_hi, self.high_n, sub, frames * s)
        return hp.reshape(hp.shape[0], frames, s, -1).mean(dim=2)

    def bin_power(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, frames, bins]``: both branches' bin power on one axis (low bins, then high):
        what the band filters sum."""
        frames = _n(x) // self.hop + 1
        return torch.cat([self._low_bin_power(x, frames), self._high_bin_power(x, frames)], dim=2)

    def bins_db(self, x: torch.Tensor) -> torch.Tensor:
        """Bin power in dB, ``[B, bins, frames]``: what cached training stores when bands learn."""
        return 10.0 * torch.log10(self.bin_power(x).transpose(1, 2) + 1e-8)

    def bands_db(self, bins_db: torch.Tensor) -> torch.Tensor:
        """``bins_db`` -> band dB through the current filters: ``power_db`` in two steps."""
        return 10.0 * torch.log10(torch.matmul(self.bands(), 10 ** (bins_db / 10)) + 1e-8)

    def power_db(self, x: torch.Tensor) -> torch.Tensor:
        """Mel power in dB, ``[B, n_mels, frames]``; frame j centred on sample j * hop.
        A sinusoid has the same bin power in both branches, so their mel parts simply add."""
        if self.learns_bands:
            return 10.0 * torch.log10((self.bin_power(x) @ self.bands().t()).transpose(1, 2) + 1e-8)
        # fixed filters: each branch's slice of the matrix (the graph the shipped model was exported as)
        frames = _n(x) // self.hop + 1
        lo, hi = self.fb[:, : self.n_lo], self.fb[:, self.n_lo :]
        m = self._low_bin_power(x, frames) @ lo.t() + self._high_bin_power(x, frames) @ hi.t()
        return 10.0 * torch.log10(m.transpose(1, 2) + 1e-8)

    def normalize(self, db: torch.Tensor) -> torch.Tensor:
        """dB mel -> level-free, per-bin normalised features ``[B, 1, n_mels, frames]``."""
        if self.level_norm:
            db = db - db.mean(dim=(1, 2), keepdim=True)
        return self.bn(db).unsqueeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalize(self.power_db(x))


def make_frontend(cfg: ModelConfig) -> nn.Module:
    """The spectrogram front end ``cfg.frontend`` names."""
    return MultiResLogMel(cfg) if cfg.frontend == "multires" else LogMel(cfg)


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


class Pulse(nn.Module):
    """Tempo and pulse clarity of a window, from its spectrogram ``[B, 1, F, T]``.

    Onset envelope = the positive change of each band from frame to frame, summed over bands,
    standardised over the window; its autocorrelation at every lag between ``lags_s`` (in
    frames) peaks at the beat period and is as high as the pulse is clear. A 2D CNN with a ~1.5 s
    receptive field sees rhythm only locally; this gives the heads the window's periodicity
    directly (the classic arousal cue), for a few thousand FLOPs."""

    def __init__(self, frame_rate: float, lags_s: tuple[float, float], dim: int) -> None:
        super().__init__()
        lo = max(1, int(round(lags_s[0] * frame_rate)))
        hi = max(lo, int(round(lags_s[1] * frame_rate)))
        self.lags = list(range(lo, hi + 1))
        self.proj = nn.Sequential(nn.Linear(len(self.lags), dim), nn.ReLU(inplace=True))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = feats[:, 0]  # [B, F, T]
        onset = F.relu(x[:, :, 1:] - x[:, :, :-1]).sum(dim=1)  # [B, T-1]
        onset = onset - onset.mean(dim=1, keepdim=True)
        onset = onset / (onset.std(dim=1, keepdim=True) + 1e-5)
        t = onset.shape[1]
        ac = torch.stack([(onset[:, : t - lag] * onset[:, lag:]).mean(dim=1) for lag in self.lags], dim=1)
        return self.proj(ac)


class MelCNN(EmotionModel):
    """Trainable log-mel front end + 2D CNN, pooled over frequency (mean) and time (mean + max);
    optionally a ``Pulse`` branch (tempo, pulse clarity) joined to the embedding."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.frontend = make_frontend(cfg)
        layers, cin = [], 1
        for c in cfg.channels:
            layers.append(_conv2d_block(cin, c, (2, 2)))
            cin = c
        self.body = nn.Sequential(*layers)
        self.pulse = (Pulse(cfg.sample_rate / cfg.hop, cfg.rhythm_lags_s, cfg.rhythm_dim) if cfg.rhythm
                      else None)
        self.heads = Heads(2 * cin + (cfg.rhythm_dim if cfg.rhythm else 0), cfg.embed_dim, cfg.dropout)

    def embed(self, feats: torch.Tensor) -> torch.Tensor:
        h = self.body(feats).mean(dim=2)  # [B, C, T']
        parts = [h.mean(dim=2), h.amax(dim=2)]
        if self.pulse is not None:
            parts.append(self.pulse(feats))
        return torch.cat(parts, dim=1)


class CRNN(EmotionModel):
    """Log-mel + CNN that pools frequency away (keeps more time), a bidirectional GRU over time,
    then mean + max over the GRU outputs."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.frontend = make_frontend(cfg)
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

