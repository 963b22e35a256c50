"""Music and live-rig augmentation, batched in torch, each step switchable.

A stage model hears music through an unknown chain: a PA in a room with a crowd, a microphone
with a limited band, an input gain somebody set by ear, compression and clipping. Training on
clean studio clips alone would let the model read the level or the mastering, so each batch is
pushed through a random version of that chain (``Augmenter``). ``mixup`` and ``spec_augment``
act on batches and features and are called from the fitting loop.

All randomness comes from the ``torch.Generator`` passed in, so a seeded run is repeatable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np
import torch
import torch.nn.functional as F

# waveform steps, in the order a signal meets them
WAVE_STEPS = ("speed", "eq", "reverb", "noise", "compress", "band", "gain", "clip")
# batch / feature steps (applied by the fitting loop)
OTHER_STEPS = ("crop", "mixup", "specaug", "stretch")


@dataclass(frozen=True)
class AugmentConfig:
    """Switches and ranges. ``p_*`` is the probability a step hits one example."""

    crop: bool = True  # random crop position (off: windows start at fixed, evenly spaced offsets)
    speed: bool = True  # resampling pitch shift (changes tempo with it), +-semitones
    semitones: float = 1.0
    eq: bool = True  # random smooth EQ curve, +-eq_db at log-spaced points
    eq_db: float = 6.0
    p_eq: float = 0.8
    reverb: bool = True  # synthetic exponential-decay room impulse responses
    rt60: tuple[float, float] = (0.2, 1.6)
    p_reverb: float = 0.5
    noise: bool = True  # pink / brown noise and babble-like crowd bursts at a random SNR
    snr_db: tuple[float, float] = (6.0, 30.0)
    p_noise: float = 0.5
    compress: bool = True  # PA compression (fast envelope, ratio 2..8)
    p_compress: float = 0.4
    band: bool = True  # microphone band limits: high-pass 40..300 Hz, low-pass 3..8 kHz
    p_band: float = 0.5
    gain: bool = True  # input gain +-gain_db
    gain_db: float = 12.0
    clip: bool = True  # clipping after the gain (an overdriven input)
    p_clip: float = 0.2
    mixup: bool = True
    mixup_alpha: float = 0.4
    specaug: bool = True  # SpecAugment: frequency and time masks on the log-mel
    freq_mask: int = 8
    time_mask: int = 20
    stretch: bool = True  # time stretch on the spectrogram frames (tempo without pitch), +-stretch_max
    stretch_max: float = 0.12

    def __post_init__(self) -> None:
        if not 0 <= self.semitones <= 4:
            raise ValueError("semitones must be in 0..4")
        if not 0 <= self.gain_db <= 40:
            raise ValueError("gain_db must be in 0..40")
        if not 0 <= self.stretch_max < 0.5:
            raise ValueError("stretch_max must be in [0, 0.5)")
        for f in fields(self):
            if f.name.startswith("p_") and not 0.0 <= getattr(self, f.name) <= 1.0:
                raise ValueError(f"{f.name} must be a probability")

    @classmethod
    def none(cls) -> AugmentConfig:
        """Every step off (crops at fixed offsets)."""
        return cls(**{s: False for s in WAVE_STEPS + OTHER_STEPS})

    def without(self, *steps: str) -> AugmentConfig:
        """This config with the named steps switched off (ablations)."""
        bad = [s for s in steps if s not in WAVE_STEPS + OTHER_STEPS]
        if bad:
            raise ValueError(f"unknown augmentation step(s): {', '.join(bad)}")
        return replace(self, **{s: False for s in steps})

    def only(self, *steps: str) -> AugmentConfig:
        """Only the named steps on."""
        return replace(AugmentConfig.none(), **{s: True for s in steps})

    @property
    def max_speed(self) -> float:
        """Longest source span per output sample: crops must carry this much audio."""
        return 2 ** (self.semitones / 12) if self.speed else 1.0

    def enabled(self) -> list[str]:
        return [s for s in WAVE_STEPS + OTHER_STEPS if getattr(self, s)]


def _rand(n: int, lo: float, hi: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g, device=device)


def _hit(n: int, p: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device) < p


def _rms(x: torch.Tensor) -> torch.Tensor:
    return torch.sqrt((x * x).mean(dim=-1, keepdim=True) + 1e-10)


def speed_change(x: torch.Tensor, window: int, ratio: torch.Tensor) -> torch.Tensor:
    """Play each row ``ratio`` times faster (pitch up by 12*log2(ratio) semitones) by resampling.

    Reads ``window * ratio`` samples from the start of each row and resamples them to ``window``
    (linear interpolation: at ratios within +-7 % its aliasing is far below the music).
    """
    b, n = x.shape
    pos = torch.arange(window, device=x.device, dtype=x.dtype)[None, :] * ratio[:, None].to(x.dtype)
    pos = pos.clamp(max=n - 1.001)
    i0 = pos.floor().long()
    frac = pos - i0
    a = torch.gather(x, 1, i0)
    c = torch.gather(x, 1, i0 + 1)
    return a + (c - a) * frac


def _freq_curve(b: int, nbins: int, sr: int, points_db: torch.Tensor, fmin: float = 40.0) -> torch.Tensor:
    """Interpolate gains (dB) at log-spaced points over rfft bins -> linear gain [b, nbins]."""
    k = points_db.shape[1]
    f = torch.linspace(0, sr / 2, nbins, device=points_db.device)
    lf = torch.log(f.clamp(min=fmin) / fmin) / math.log((sr / 2) / fmin)  # 0..1
    pos = lf * (k - 1)
    i0 = pos.floor().long().clamp(max=k - 2)
    frac = (pos - i0).clamp(0, 1)
    g = points_db[:, i0] * (1 - frac) + points_db[:, i0 + 1] * frac
    return 10 ** (g / 20)


def random_eq(x: torch.Tensor, sr: int, db: float, g: torch.Generator) -> torch.Tensor:
    """A random smooth EQ curve (+-db at 6 log-spaced points), applied in the frequency domain."""
    b, n = x.shape
    pts = (torch.rand(b, 6, generator=g, device=x.device) * 2 - 1) * db
    spec = torch.fft.rfft(x)
    curve = _freq_curve(b, spec.shape[1], sr, pts)
    return torch.fft.irfft(spec * curve, n=n)


def band_limit(x: torch.Tensor, sr: int, g: torch.Generator) -> torch.Tensor:
    """Microphone / cheap-PA band: a random 2nd-order-like high-pass (40..300 Hz) and low-pass
    (3..8 kHz, capped below Nyquist), as magnitude responses in the frequency domain."""
    b, n = x.shape
    spec = torch.fft.rfft(x)
    f = torch.linspace(0, sr / 2, spec.shape[1], device=x.device)[None, :]
    hp = torch.exp(_rand(b, math.log(40), math.log(300), g, x.device))[:, None]
    lp = torch.exp(_rand(b, math.log(3000), math.log(8000), g, x.device))[:, None].clamp(max=sr * 0.45)
    h = (f / hp) ** 2 / torch.sqrt(1 + (f / hp) ** 4) / torch.sqrt(1 + (f / lp) ** 4)
    return torch.fft.irfft(spec * h, n=n)


def synthetic_rir(b: int, sr: int, g: torch.Generator, device: torch.device,
                  rt60: tuple[float, float] = (0.2, 1.6)) -> torch.Tensor:
    """Room impulse responses: a direct impulse plus exponentially decaying noise (RT60 in the
    range), darker as it decays (a one-pole low-pass applied by frequency-domain weighting)."""
    t60 = _rand(b, rt60[0], rt60[1], g, device)
    length = int(sr * min(rt60[1], 1.0))
    t = torch.arange(length, device=device)[None, :] / sr
    env = torch.exp(-6.9078 * t / t60[:, None])  # -60 dB at t60
    tail = torch.randn(b, length, generator=g, device=device) * env
    pre = int(0.005 * sr)
    tail[:, :pre] = 0
    wet = 10 ** (_rand(b, -12, 0, g, device) / 20)[:, None]  # tail level relative to direct
    tail = tail / _rms(tail) / math.sqrt(length) * 8.0 * wet
    tail[:, 0] = 1.0
    return tail


def reverb(x: torch.Tensor, sr: int, g: torch.Generator, rt60: tuple[float, float]) -> torch.Tensor:
    """Convolve each row with its own synthetic RIR (FFT), keep the length, restore the RMS."""
    b, n = x.shape
    rir = synthetic_rir(b, sr, g, x.device, rt60)
    m = n + rir.shape[1]
    y = torch.fft.irfft(torch.fft.rfft(x, n=m) * torch.fft.rfft(rir, n=m), n=m)[:, :n]
    return y * (_rms(x) / _rms(y))


def colored_noise(b: int, n: int, g: torch.Generator, device: torch.device,
                  exponent: torch.Tensor) -> torch.Tensor:
    """Noise with power ~ 1/f**exponent (1: pink, 2: brown), unit RMS."""
    spec = torch.fft.rfft(torch.randn(b, n, generator=g, device=device))
    f = torch.arange(spec.shape[1], device=device).clamp(min=1)[None, :].float()
    spec = spec / f ** (exponent[:, None] / 2)
    y = torch.fft.irfft(spec, n=n)
    return y / _rms(y)


def babble(b: int, n: int, sr: int, g: torch.Generator, device: torch.device) -> torch.Tensor:
    """Crowd-like bursts: speech-band noise (300..3000 Hz) gated by a random 2..6 Hz syllable
    envelope and random louder bursts (cheers), unit RMS."""
    spec = torch.fft.rfft(torch.randn(b, n, generator=g, device=device))
    f = torch.linspace(0, sr / 2, spec.shape[1], device=device)[None, :]
    spec = spec * ((f > 300) & (f < 3000))
    y = torch.fft.irfft(spec, n=n)
    t = torch.arange(n, device=device)[None, :] / sr
    rate = _rand(b, 2, 6, g, device)[:, None]
    phase = _rand(b, 0, 2 * math.pi, g, device)[:, None]
    env = 0.3 + 0.7 * torch.relu(torch.sin(2 * math.pi * rate * t + phase))
    burst_c = _rand(b, 0, n / sr, g, device)[:, None]
    env = env + 2.0 * torch.exp(-(((t - burst_c) / 0.4) ** 2))
    y = y * env
    return y / _rms(y)


def add_noise(x: torch.Tensor, sr: int, g: torch.Generator, snr_db: tuple[float, float]) -> torch.Tensor:
    """Venue noise at a random SNR: pink-to-brown noise or crowd babble, chosen per example."""
    b, n = x.shape
    expo = _rand(b, 1.0, 2.0, g, x.device)
    noise = colored_noise(b, n, g, x.device, expo)
    use_babble = _hit(b, 0.4, g, x.device)[:, None]
    noise = torch.where(use_babble, babble(b, n, sr, g, x.device), noise)
    snr = _rand(b, snr_db[0], snr_db[1], g, x.device)[:, None]
    return x + noise * _rms(x) * 10 ** (-snr / 20)


def compress(x: torch.Tensor, sr: int, g: torch.Generator) -> torch.Tensor:
    """A PA compressor: 10 ms RMS envelope, threshold 6..24 dB below the peak envelope, ratio
    2..8, gain smoothed over ~30 ms, make-up gain back to the input RMS."""
    b, n = x.shape
    blk = max(1, int(0.01 * sr))
    nb = n // blk
    if nb < 2:
        return x
    env = torch.sqrt((x[:, : nb * blk].reshape(b, nb, blk) ** 2).mean(-1) + 1e-10)
    env_db = 20 * torch.log10(env)
    thr = env_db.amax(dim=1, keepdim=True) - _rand(b, 6, 24, g, x.device)[:, None]
    ratio = _rand(b, 2, 8, g, x.device)[:, None]
    over = (env_db - thr).clamp(min=0)
    gr_db = -over * (1 - 1 / ratio)
    gr_db = F.avg_pool1d(gr_db[:, None, :], 3, stride=1, padding=1, count_include_pad=False)[:, 0]
    gain = 10 ** (gr_db / 20)
    gain = F.interpolate(gain[:, None, :], size=n, mode="linear", align_corners=False)[:, 0]
    y = x * gain
    return y * (_rms(x) / _rms(y))


def clip(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Hard clipping at 1.5..12 dB below the window's peak (an overdriven input stage)."""
    peak = x.abs().amax(dim=1, keepdim=True) + 1e-8
    level = peak * 10 ** (-_rand(x.shape[0], 1.5, 12, g, x.device)[:, None] / 20)
    return torch.maximum(torch.minimum(x, level), -level)


class Augmenter:
    """Random live-rig chain over a batch of crops.

    ``__call__(x, g)`` takes ``[B, n]`` crops with ``n >= ceil(window * cfg.max_speed)`` and
    returns ``[B, window]``. In eval mode (``cfg`` with every step off) it only trims.
    """

    def __init__(self, cfg: AugmentConfig, sample_rate: int, window: int) -> None:
        self.cfg, self.sr, self.window = cfg, sample_rate, window

    @property
    def source_len(self) -> int:
        return int(math.ceil(self.window * self.cfg.max_speed)) + 2

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        c, sr, dev = self.cfg, self.sr, x.device
        b = x.shape[0]

        def some(p: float, fn, y: torch.Tensor) -> torch.Tensor:
            hit = _hit(b, p, g, dev)
            if not bool(hit.any()):
                return y
            out = y.clone()
            out[hit] = fn(y[hit])
            return out

        if c.speed:
            ratio = 2 ** (_rand(b, -c.semitones, c.semitones, g, dev) / 12)
            x = speed_change(x, self.window, ratio)
        else:
            x = x[:, : self.window]
        x = x.contiguous()
        if c.eq:
            x = some(c.p_eq, lambda y: random_eq(y, sr, c.eq_db, g), x)
        if c.reverb:
            x = some(c.p_reverb, lambda y: reverb(y, sr, g, c.rt60), x)
        if c.noise:
            x = some(c.p_noise, lambda y: add_noise(y, sr, g, c.snr_db), x)
        if c.compress:
            x = some(c.p_compress, lambda y: compress(y, sr, g), x)
        if c.band:
            x = some(c.p_band, lambda y: band_limit(y, sr, g), x)
        if c.gain:
            x = x * 10 ** (_rand(b, -c.gain_db, c.gain_db, g, dev)[:, None] / 20)
        if c.clip:
            x = some(c.p_clip, lambda y: clip(y, g), x)
        return torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


def mixup(x: torch.Tensor, *targets: torch.Tensor, alpha: float, g: torch.Generator
          ) -> tuple[torch.Tensor, ...]:
    """Mix each example with a shuffled partner (lambda ~ Beta(alpha, alpha), the larger share
    kept on the original); targets (probabilities) mix with the same weights."""
    b = x.shape[0]
    # Beta draws from numpy, seeded from g, so the whole step follows the caller's generator
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g, device=x.device))
    lam = torch.from_numpy(np.random.default_rng(seed).beta(alpha, alpha, b).astype(np.float32)).to(x.device)
    lam = torch.maximum(lam, 1 - lam)
    perm = torch.randperm(b, generator=g, device=x.device)
    shape = (b,) + (1,) * (x.dim() - 1)
    out = [x * lam.view(shape) + x[perm] * (1 - lam.view(shape))]
    for t in targets:
        ts = (b,) + (1,) * (t.dim() - 1)
        out.append(t * lam.view(ts) + t[perm] * (1 - lam.view(ts)))
    return tuple(out)


def spec_augment(s: torch.Tensor, freq_mask: int, time_mask: int, g: torch.Generator) -> torch.Tensor:
    """One frequency mask (< freq_mask bins) and two time masks (< time_mask frames) per example,
    filled with the example's mean, on features ``[B, 1, F, T]``."""
    b, _, nf, nt = s.shape
    dev = s.device
    out = s.clone()
    fill = s.mean(dim=(1, 2, 3), keepdim=True)
    fi = torch.arange(nf, device=dev)[None, :]
    ti = torch.arange(nt, device=dev)[None, :]
    w = (torch.rand(b, 1, generator=g, device=dev) * freq_mask).long()
    f0 = (torch.rand(b, 1, generator=g, device=dev) * (nf - w)).long()
    mask = ((fi >= f0) & (fi < f0 + w))[:, None, :, None]
    for _ in range(2):
        w = (torch.rand(b, 1, generator=g, device=dev) * min(time_mask, nt // 4)).long()
        t0 = (torch.rand(b, 1, generator=g, device=dev) * (nt - w)).long()
        mask = mask | ((ti >= t0) & (ti < t0 + w))[:, None, None, :]
    return torch.where(mask, fill.expand_as(out), out)


def time_stretch(s: torch.Tensor, max_rate: float, g: torch.Generator) -> torch.Tensor:
    """Tempo change without pitch change, on spectrogram frames: resample the time axis by a
    random rate in [1 - max_rate, 1 + max_rate] per example and crop / edge-pad to the same
    number of frames."""
    b, c, nf, nt = s.shape
    rate = 1 + (torch.rand(b, generator=g, device=s.device) * 2 - 1) * max_rate
    pos = torch.arange(nt, device=s.device)[None, :] * rate[:, None]
    pos = pos.clamp(max=nt - 1)
    i0 = pos.floor().long().clamp(max=nt - 2)
    frac = (pos - i0)[:, None, None, :]
    idx0 = i0[:, None, None, :].expand(b, c, nf, nt)
    a = torch.gather(s, 3, idx0)
    bb = torch.gather(s, 3, idx0 + 1)
    return a + (bb - a) * frac


#: the fixed "through a PA in a room" test condition (``stage_degrade``), kept apart from training
STAGE_TEST = {"eq_db": 6.0, "rt60": (0.5, 1.2), "snr_db": (10.0, 20.0), "gain_db": 12.0}


def stage_degrade(x: np.ndarray, sr: int, seed: int) -> np.ndarray:
    """``x`` (one whole clip) as a microphone in front of a PA would hear it, for EVALUATION:
    a random smooth EQ (+-6 dB), room reverb (RT60 0.5..1.2 s), venue noise or crowd babble at
    10..20 dB SNR, PA compression, a microphone band limit and an input gain of +-12 dB.
    Deterministic for a ``seed`` (use one per clip), so every recipe is scored on the same audio.
    """
    g = torch.Generator().manual_seed(int(seed))
    t = torch.from_numpy(np.ascontiguousarray(x, np.float32))[None, :]
    c = STAGE_TEST
    with torch.no_grad():
        t = random_eq(t, sr, c["eq_db"], g)
        t = reverb(t, sr, g, c["rt60"])
        t = add_noise(t, sr, g, c["snr_db"])
        t = compress(t, sr, g)
        t = band_limit(t, sr, g)
        t = t * 10 ** (_rand(1, -c["gain_db"], c["gain_db"], g, t.device)[:, None] / 20)
    return torch.nan_to_num(t[0]).numpy().astype(np.float32)
