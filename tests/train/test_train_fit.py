"""Training package: model contract, augmentations, a short real fit, checkpoint resume.

Small and synthetic on purpose (no shared data, no GPU): the clips are generated here, so the
file runs anywhere in well under a minute on 2 cores.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import need_module  # noqa: E402

torch = need_module("torch", "train")
need_module("nnAudio", "train")

from train.augment import (  # noqa: E402
    OTHER_STEPS,
    WAVE_STEPS,
    AugmentConfig,
    Augmenter,
    mixup,
    spec_augment,
    time_stretch,
)
from train.data import Clip  # noqa: E402
from train.fit import FitConfig, clip_metrics, fit_model, predict_clips  # noqa: E402
from train.models import ARCHS, ModelConfig, build_model, count_flops  # noqa: E402

SR = 8000


def small_cfg(arch: str) -> ModelConfig:
    return ModelConfig(arch=arch, sample_rate=SR, window_seconds=1.0, n_fft=256, hop=256, n_mels=24,
                       fmax=4000.0, channels=(8, 16), embed_dim=16, gru_hidden=8,
                       raw_kernels=(40, 160), raw_stride=80, raw_branch_channels=8)


def synthetic_clips(n: int = 24, seconds: float = 2.0, seed: int = 0) -> tuple[list[Clip], list[np.ndarray]]:
    """Bright-and-busy clips (arousal high) vs dark-and-sparse ones, at random levels, with
    valence tied to major-ish (high) vs low, detuned partials: an easy but real audio task."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    clips, audio = [], []
    for i in range(n):
        hi_a, hi_v = i % 2, (i // 2) % 2
        f0 = rng.uniform(150, 300)
        if hi_a:  # bright: noise bursts at 8 Hz + high partials
            env = (np.sin(2 * np.pi * 8 * t) > 0.3).astype(float)
            x = env * rng.standard_normal(len(t)) * 0.5 + np.sin(2 * np.pi * f0 * 8 * t)
        else:  # dark: slow low sine
            x = np.sin(2 * np.pi * f0 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
        x = x + 0.3 * np.sin(2 * np.pi * f0 * (1.5 if hi_v else 1.06) * t)
        x = x / np.abs(x).max() * 10 ** (rng.uniform(-30, -3) / 20)
        q = {(1, 1): 1, (1, 0): 2, (0, 0): 3, (0, 1): 4}[(hi_a, hi_v)]
        clips.append(Clip(id=f"c{i}", artist=f"artist{i}", path=Path(f"c{i}.wav"), quadrant=q))
        audio.append(x.astype(np.float32))
    return clips, audio


@pytest.mark.parametrize("arch", ARCHS)
def test_forward_contract(arch: str) -> None:
    cfg = small_cfg(arch)
    m = build_model(cfg).eval()
    x = torch.randn(3, cfg.window_samples) * 0.1
    y = m(x)
    assert y.shape == (3, 2)
    assert torch.all((y >= 0) & (y <= 1))
    av, quad = m.logits(x)
    assert av.shape == (3, 2) and quad.shape == (3, 4)
    assert count_flops(m) > 0


def test_level_norm_makes_mel_model_gain_invariant() -> None:
    cfg = small_cfg("mel_cnn")
    m = build_model(cfg).eval()
    x = torch.randn(2, cfg.window_samples) * 0.05
    with torch.no_grad():
        assert torch.allclose(m(x), m(x * 4.0), atol=1e-4)  # +12 dB changes nothing


def test_augmentations_keep_shape_and_finiteness_and_switch_off() -> None:
    win = SR
    g = torch.Generator().manual_seed(0)
    full = Augmenter(AugmentConfig(p_eq=1, p_reverb=1, p_noise=1, p_compress=1, p_band=1, p_clip=1), SR, win)
    x = torch.randn(6, full.source_len) * 0.1
    x[0] = 0.0  # silence must stay finite
    y = full(x, g)
    assert y.shape == (6, win) and torch.isfinite(y).all()
    assert not torch.allclose(y[1:], x[1:, :win])
    off = Augmenter(AugmentConfig.none(), SR, win)
    assert torch.equal(off(x, g), x[:, :win])  # every step off: only the trim
    for step in WAVE_STEPS:  # each step alone changes the signal, and is switchable
        cfg = replace(AugmentConfig().only(step), p_eq=1, p_reverb=1, p_noise=1, p_compress=1, p_band=1,
                      p_clip=1)
        a = Augmenter(cfg, SR, win)
        z = a(x[1:3, : a.source_len], torch.Generator().manual_seed(1))
        assert z.shape == (2, win) and torch.isfinite(z).all(), step
        assert not torch.allclose(z, x[1:3, :win], atol=1e-6), step
    assert set(AugmentConfig().without(*OTHER_STEPS).enabled()) == set(WAVE_STEPS)
    with pytest.raises(ValueError, match="unknown augmentation"):
        AugmentConfig().without("wobble")


def test_gain_step_moves_level_within_range() -> None:
    a = Augmenter(AugmentConfig().only("gain"), SR, SR)
    x = torch.full((200, SR), 0.01)
    y = a(x, torch.Generator().manual_seed(0))
    db = 20 * torch.log10(y.abs().mean(dim=1) / 0.01)
    assert db.min() >= -12.01 and db.max() <= 12.01 and db.std() > 4


def test_feature_and_batch_steps() -> None:
    g = torch.Generator().manual_seed(0)
    s = torch.randn(4, 1, 24, 40)
    for out in (spec_augment(s, 6, 8, g), time_stretch(s, 0.2, g)):
        assert out.shape == s.shape and torch.isfinite(out).all()
    x, y = torch.randn(8, 100), torch.randint(0, 2, (8, 2)).float()
    xm, ym = mixup(x, y, alpha=0.4, g=g)
    assert xm.shape == x.shape and ym.shape == y.shape
    assert torch.all((ym >= 0) & (ym <= 1)) and not torch.equal(xm, x)


@pytest.mark.timeout(600)  # 155 s on 2 shared, loaded cores (2026-12-07): the suite's slowest test
def test_short_fit_learns_easy_task() -> None:
    clips, audio = synthetic_clips(24)
    cfg = small_cfg("mel_cnn")
    model = build_model(cfg)
    aug = AugmentConfig().only("crop", "gain")
    fc = FitConfig(epochs=8, batch_size=8, lr=1e-2, crops_per_clip=3, val_fraction=0.0, threads=2,
                   progress=False, seed=0)
    res = fit_model(model, clips, audio, fc, aug)
    losses = [h["loss"] for h in res.history]
    assert losses[-1] < losses[0] * 0.8
    test_clips, test_audio = synthetic_clips(16, seed=1)  # unseen clips, new levels
    scores = predict_clips(res.model, test_audio, hop_seconds=0.5)
    y = np.array([[c.arousal_high, c.valence_high] for c in test_clips])
    m = clip_metrics(y, scores, np.array([c.quadrant for c in test_clips]))
    assert m["arousal_auc"] > 0.8 and m["arousal_acc"] > 0.6


def test_checkpoint_resume_restores_state(tmp_path: Path) -> None:
    clips, audio = synthetic_clips(12)
    cfg = small_cfg("raw_cnn")
    aug = AugmentConfig().only("crop", "gain")
    base = dict(batch_size=6, lr=5e-3, crops_per_clip=1, val_fraction=0.3, patience=10, threads=2,
                progress=False, seed=3, checkpoint_dir=str(tmp_path / "ck"))
    def fresh():  # the same initial weights for every run
        torch.manual_seed(11)
        return build_model(cfg)

    full = fit_model(fresh(), clips, audio, FitConfig(epochs=3, **base), aug)
    ck = torch.load(tmp_path / "ck" / "last.pt", weights_only=True)
    assert ck["epoch"] == 3 and len(ck["history"]) == 3
    # a run that stops after 2 of 3 epochs ("crash"), then resumes from its last.pt: the same
    # history and weights as the straight run
    two = fit_model(fresh(), clips, audio, FitConfig(epochs=3, **{**base, "checkpoint_dir":
                    str(tmp_path / "ck3")}), aug, stop_after=2)
    assert len(two.history) == 2
    resumed = fit_model(fresh(), clips, audio, FitConfig(epochs=3, resume=True, **{
        **base, "checkpoint_dir": str(tmp_path / "ck3")}), aug)
    assert len(resumed.history) == 3
    assert [h["loss"] for h in resumed.history] == pytest.approx([h["loss"] for h in full.history], rel=1e-4)
    sd_a, sd_b = full.model.state_dict(), resumed.model.state_dict()
    for k in sd_a:
        assert torch.allclose(sd_a[k].float(), sd_b[k].float(), atol=1e-5), k


def test_fit_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError):
        FitConfig(val_fraction=0.7)
    with pytest.raises(ValueError):
        FitConfig(loss="hinge")
    with pytest.raises(ValueError):
        ModelConfig(arch="transformer")
