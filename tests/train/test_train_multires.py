"""The two-resolution log-mel front end (train/models.py MultiResLogMel): what it computes is
right (decimation, band placement, continuity at the split) and it exports with parity."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import need_module  # noqa: E402

torch = need_module("torch", "train")
need_module("nnAudio", "train")

import torch.nn.functional as F  # noqa: E402

from train.export import export_onnx  # noqa: E402
from train.models import ModelConfig, _hz_to_mel, _lowpass, build_model  # noqa: E402

SR = 16000


def cfg(**kw) -> ModelConfig:
    base = dict(frontend="multires", sample_rate=SR, window_seconds=2.0, hop=640, n_mels=48,
                channels=(8, 16), embed_dim=16, trainable_mel=False)
    return ModelConfig(**{**base, **kw})


def tone(f: float, seconds: float = 2.0, amp: float = 0.5) -> torch.Tensor:
    t = np.arange(int(seconds * SR)) / SR
    return torch.tensor(amp * np.sin(2 * np.pi * f * t), dtype=torch.float32)[None]


def test_polyphase_decimation_equals_the_strided_fir() -> None:
    fe = build_model(cfg()).eval().frontend
    half = (fe.aa_taps - 1) // 2
    h = _lowpass(fe.aa_taps, 0.5 / fe.decim)
    for n in (32000, 32003, 5000):
        x = torch.randn(2, 1, n)
        ref = F.conv1d(F.pad(x, (half, half), mode="reflect"), h, stride=fe.decim)
        got = fe._decimate(x[:, 0])[:, None, :]
        assert got.shape == ref.shape
        assert float((got - ref).abs().max()) < 1e-5


@pytest.mark.parametrize("f", [110.0, 440.0, 1000.0, 1400.0, 1600.0, 3000.0, 6000.0])
def test_a_tone_lands_in_its_mel_band(f: float) -> None:
    c = cfg()
    fe = build_model(c).eval().frontend
    db = fe.power_db(tone(f))[0].mean(dim=1)
    edges = torch.linspace(float(_hz_to_mel(torch.tensor(c.fmin))), float(_hz_to_mel(torch.tensor(c.fmax))),
                           c.n_mels + 2)
    centre = int((edges[1:-1] - _hz_to_mel(torch.tensor(f))).abs().argmin())
    assert abs(int(db.argmax()) - centre) <= 1
    assert db.max() - db.median() > 20  # a tone, not a smear


def test_level_is_continuous_across_the_split_and_nothing_aliases_below_it() -> None:
    fe = build_model(cfg()).eval().frontend
    below = float(fe.power_db(tone(1480.0))[0].mean(dim=1).max())
    above = float(fe.power_db(tone(1520.0))[0].mean(dim=1).max())
    assert abs(below - above) < 3.0
    # 2500 Hz would fold to 1500 Hz after 4x decimation without the anti-alias filter
    db = fe.power_db(tone(2500.0))[0].mean(dim=1)
    low_bands = fe.fb[:, : fe.n_lo].sum(dim=1) > 0.99  # bands fed only by the decimated branch
    assert float(db.max() - db[low_bands].max()) > 40


def test_frames_are_centred_like_the_window_framing() -> None:
    c = cfg()
    fe = build_model(c).eval().frontend
    x = torch.randn(1, c.window_samples)
    assert fe.power_db(x).shape == (1, c.n_mels, c.window_samples // c.hop + 1)


def test_exports_with_parity(tmp_path) -> None:
    c = cfg()
    torch.manual_seed(0)
    m = build_model(c).eval()
    path = export_onnx(m, tmp_path / "mr.onnx", sample_rate=SR, window_samples=c.window_samples, name="mr")
    assert path.is_file()


def test_rejects_a_split_above_the_decimated_nyquist() -> None:
    with pytest.raises(ValueError, match="split_hz"):
        cfg(split_hz=2500.0)


def test_semitone_band_scale_is_one_semitone_apart_in_the_middle() -> None:
    """band_scale=semitone: n_mels bands from fmin to fmax, monotone, one semitone apart between
    semitone_lo_hz and the frequency where a semitone is as wide as a band above it."""
    from train.models import band_axis

    c = cfg(band_scale="semitone", n_mels=72, hop=800, window_seconds=6.0)
    warp, pts = band_axis(c)
    assert len(pts) == 74 and bool((torch.diff(pts) > 0).all())
    f = torch.linspace(20, 8000, 400001, dtype=torch.float64)
    wf = warp(f)
    assert bool((torch.diff(wf) >= 0).all())
    centres = f[torch.searchsorted(wf, pts[1:-1]).clamp(max=len(f) - 1)]
    ratios = (centres[1:] / centres[:-1]).numpy()
    mid = (centres[:-1].numpy() > 300) & (centres[1:].numpy() < 1000)
    assert mid.sum() >= 15
    assert np.allclose(ratios[mid], 2 ** (1 / 12), atol=2e-3)
    mel_c = cfg(n_mels=72, hop=800, window_seconds=6.0)
    m_warp, m_pts = band_axis(mel_c)
    assert np.allclose(m_pts.numpy(), np.linspace(float(_hz_to_mel(torch.tensor(30.0))),
                                                  float(_hz_to_mel(torch.tensor(8000.0))), 74))
    model = build_model(c).eval()
    with torch.no_grad():
        db = model.frontend.power_db(tone(440.0))  # A4: its band is the loudest
    band = int(db[0, :, 5:-5].mean(dim=1).argmax())
    assert abs(float(centres[band]) - 440.0) < 440.0 * (2 ** (1 / 24) - 1) * 1.5
    with pytest.raises(ValueError, match="band_scale"):
        ModelConfig(band_scale="bark")


def test_high_subframes_see_transients_between_frame_centres() -> None:
    """With one 16 ms frame per 50 ms hop the high branch misses a click half-way between frame
    centres; high_subframes=4 spreads four frames over each hop and catches it, while a steady
    tone keeps exactly its level."""
    one = build_model(cfg(hop=800, high_subframes=1, window_seconds=6.0)).eval().frontend
    four = build_model(cfg(hop=800, high_subframes=4, window_seconds=6.0)).eval().frontend
    x = torch.zeros(1, 96000)
    x[0, 400::800] = 1.0  # a click exactly between every pair of frame centres
    high = slice(-12, None)  # bands well above split_hz (1.5 kHz): the high branch only
    with torch.no_grad():
        d1 = one.power_db(x)[0, high, 5:-5].mean()
        d4 = four.power_db(x)[0, high, 5:-5].mean()
        t1 = one.power_db(tone(3000.0, 6.0))[0, :, 5:-5]
        t4 = four.power_db(tone(3000.0, 6.0))[0, :, 5:-5]
    assert float(d4 - d1) > 20.0, (float(d1), float(d4))
    assert float((t1.max(dim=0).values - t4.max(dim=0).values).abs().max()) < 0.1
    with pytest.raises(ValueError, match="high_subframes"):
        cfg(hop=800, high_subframes=3)


def test_pulse_branch_finds_the_beat_period_and_exports() -> None:
    """rhythm=True: the onset-envelope autocorrelation of a 120 BPM click train peaks at the
    0.5 s lag; the branch joins the embedding and the whole model exports with parity."""
    import math

    c = cfg(hop=800, window_seconds=6.0, rhythm=True)
    m = build_model(c).eval()
    x = torch.zeros(1, 96000)
    x[0, ::8000] = 1.0  # a click every 0.5 s
    x = x + 1e-3 * torch.randn(1, 96000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        feats = m.frontend(x)
        onset = F.relu(feats[:, 0, :, 1:] - feats[:, 0, :, :-1]).sum(dim=1)
        onset = (onset - onset.mean()) / onset.std()
        ac = [float((onset[:, : onset.shape[1] - lag] * onset[:, lag:]).mean()) for lag in m.pulse.lags]
        emb = m.embed(feats)
    best = m.pulse.lags[int(np.argmax(ac))]
    assert math.isclose(best * c.hop / SR, 0.5)
    assert emb.shape == (1, 2 * c.channels[-1] + c.rhythm_dim)
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        export_onnx(m, Path(d) / "pulse.onnx", sample_rate=SR, window_samples=c.window_samples, name="pulse")
    with pytest.raises(ValueError, match="rhythm"):
        ModelConfig(arch="crnn", rhythm=True)


@pytest.mark.parametrize("n_fft,hop,out", [(128, 64, 16), (256, 200, 192), (256, 800, 210), (100, 30, 8)])
@pytest.mark.parametrize("extra", [-37, 0, 411])
def test_framed_matmul_equals_multiplying_every_frame(n_fft: int, hop: int, out: int, extra: int) -> None:
    """Frame j is x[j*hop : j*hop + n_fft] (zeros past the end), whichever way the product is cut
    (shifted input views, or whole blocks multiplied and the product shifted)."""
    frames = 9
    fe = build_model(cfg()).frontend
    gen = torch.Generator().manual_seed(n_fft + hop + extra)
    x = torch.randn(2, (frames - 1) * hop + n_fft + extra, generator=gen)
    w = torch.randn(n_fft, out, generator=gen)
    xz = F.pad(x, (0, n_fft))
    want = torch.stack([xz[:, j * hop : j * hop + n_fft] for j in range(frames)], dim=1) @ w
    got = fe._framed_matmul(x, w, n_fft, hop, frames)
    assert got.shape == (2, frames, out)
    assert float((got - want).abs().max()) < 1e-4


@pytest.mark.parametrize("n", [32000, 32003, 31999, 700])
def test_each_branch_bin_power_equals_a_centred_stft(n: int) -> None:
    """The one reflect pad that also reaches the blocks' tail leaves every frame as torch.stft's
    (centre=True, reflect) frames: bin power of both branches, for lengths on and off the hop."""
    fe = build_model(cfg()).eval().frontend
    x = torch.randn(1, n, generator=torch.Generator().manual_seed(n)).double()
    frames = n // fe.hop + 1
    hi = fe._high_bin_power(x.float(), frames)
    xd = fe._decimate(x.float()).double()
    lo = fe._low_bin_power(x.float(), frames)
    branches = ((hi, x, fe.high_n, fe.hop, fe.k_hi), (lo, xd, fe.low_n, fe.hop // fe.decim, fe.k_lo))
    for got, sig, n_fft, hop, k in branches:
        win = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
        spec = torch.stft(sig[0], n_fft, hop, window=win, center=True, pad_mode="reflect",
                          return_complex=True).abs() ** 2  # [bins, frames]
        nb = k.shape[0] // 2
        angle = torch.atan2(-k[nb:, 0, 1].double(), k[:nb, 0, 1].double())  # 2 pi bin / n_fft
        bins = torch.round(angle * n_fft / (2 * torch.pi))
        bins = torch.remainder(bins, n_fft).long()  # the DFT bin each row pair computes
        want = spec[bins, :frames].t()
        assert got.shape == (1, frames, nb)
        assert float(((got[0].double() - want).abs() / (want.abs().max() + 1e-12)).max()) < 1e-4
