"""train/specfit.py + train/ensemble.py: spectrogram-domain augmentation, the mel cache, a short real
fit, and a two-member ensemble that exports and scores files exactly as the runtime does.

Small and synthetic (no shared data, no GPU): 8 kHz, 1 s windows, channels (8, 16).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import need_module  # noqa: E402

torch = need_module("torch", "train")
need_module("nnAudio", "train")

import soundfile as sf  # noqa: E402

from tests.fixtures_train import synth_clip  # noqa: E402
from tests.train.test_train_fit import SR, small_cfg, synthetic_clips  # noqa: E402
from train.data import Clip  # noqa: E402
from train.ensemble import SharedMelEnsemble  # noqa: E402
from train.fit import clip_metrics, predict_clips  # noqa: E402
from train.models import build_model  # noqa: E402
from train.specfit import (  # noqa: E402
    SPEC_AUGS,
    PatchFeatures,
    SpecFitConfig,
    _patch_target,
    augment_db,
    fit_spec,
    mel_cache,
)

# the steps augment_db applies itself; stretch, specaug and mixup act later, in fit_spec
DB_STEPS = ("pitch", "eq", "band", "reverb", "noise", "compress")
FRAME_RATE = SR / 256


def spec_cfg() -> object:
    return dataclasses.replace(small_cfg("mel_cnn"), trainable_mel=False)


def mel_db_batch(seed: int = 0) -> torch.Tensor:
    """Realistic mel dB crops [4, 24, 40]: music-like levels between the -80 dB floor and 0 dB,
    one crop of pure silence (the floor), as the cache holds them."""
    g = torch.Generator().manual_seed(seed)
    db = -60 + 50 * torch.rand(4, 24, 40, generator=g) - torch.linspace(0, 20, 24)[None, :, None]
    db[0] = -80.0
    return db


def test_each_db_augmentation_alone_keeps_shape_finite_and_changes_the_crop() -> None:
    db = mel_db_batch()
    for step in DB_STEPS:
        cfg = SpecFitConfig(augs=(step,), p_aug=1.0, progress=False)
        out = augment_db(db.clone(), cfg, FRAME_RATE, torch.Generator().manual_seed(1))
        assert out.shape == db.shape, step
        assert torch.isfinite(out).all(), step
        assert (out[1:] - db[1:]).abs().max() > 0.05, f"{step} left the crops unchanged"


def test_all_db_augmentations_together_keep_shape_and_finite() -> None:
    db = mel_db_batch()
    cfg = SpecFitConfig(augs=SPEC_AUGS, p_aug=1.0, progress=False)
    for seed in range(5):
        out = augment_db(db.clone(), cfg, FRAME_RATE, torch.Generator().manual_seed(seed))
        assert out.shape == db.shape and torch.isfinite(out).all()
        assert out.min() > -120 and out.max() < 60  # dB stays in a sane range


def test_no_augmentation_is_the_identity_up_to_the_power_floor() -> None:
    """augs=() (and the steps fit_spec applies elsewhere) leave a crop as it is: augment_db still
    round-trips through power + 1e-10, which moves the -80 dB floor by 0.04 dB and nothing audible."""
    db = mel_db_batch()
    for augs in ((), ("stretch", "specaug", "mixup")):
        out = augment_db(db.clone(), SpecFitConfig(augs=augs, p_aug=1.0, progress=False), FRAME_RATE,
                         torch.Generator().manual_seed(0))
        assert out.shape == db.shape
        loud = db > -60
        assert (out - db)[loud].abs().max() < 1e-3
        assert (out - db).abs().max() < 0.05
    with pytest.raises(ValueError, match="unknown augmentation"):
        SpecFitConfig(augs=("wobble",))


def test_mel_cache_matches_the_models_window_front_end_on_interior_frames() -> None:
    """Training crops of the cache must look like what the exported graph computes per window;
    only the frames at a window's edges differ (reflect padding there, real audio in the cache)."""
    cfg = spec_cfg()
    model = build_model(cfg).eval()
    x = synth_clip(0.7, 0.3, 3.0, SR, seed=5)
    cache = mel_cache(model, [x])[0]
    assert cache.dtype == torch.float16 and cache.shape[0] == cfg.n_mels
    assert cache.shape[1] == math.ceil(len(x) / cfg.hop)
    win = cfg.window_samples
    edge = math.ceil(cfg.n_fft / 2 / cfg.hop)
    for start in (0, 3 * cfg.hop, len(x) - win - (len(x) - win) % cfg.hop):
        with torch.no_grad():
            w = model.frontend.power_db(torch.from_numpy(x[start : start + win])[None])[0]
        k = start // cfg.hop
        inner = slice(edge, w.shape[1] - edge)
        got = cache[:, k + inner.start : k + inner.stop].float()
        want = w[:, inner]
        assert got.shape == want.shape and got.shape[1] >= 2
        # float16 storage: ~0.03 dB resolution at -60 dB
        assert (got - want).abs().max() < 0.1, start


def test_mel_cache_has_no_seams_between_chunks() -> None:
    cfg = spec_cfg()
    model = build_model(cfg).eval()
    x = synth_clip(0.6, 0.4, 5.0, SR, seed=1)
    chunked = mel_cache(model, [x], chunk_s=2.0)[0].float()
    whole = mel_cache(model, [x], chunk_s=100.0)[0].float()
    assert chunked.shape == whole.shape
    assert (chunked - whole).abs().max() < 0.1


def _fit_seeded(clips, mels, cfg, **fit):
    """A fresh model of ``cfg`` fitted with torch seeded at 0 (same start for every variant)."""
    torch.manual_seed(0)
    model = build_model(cfg)
    return model, fit_spec(model, clips, mels, SpecFitConfig(progress=False, threads=2, **fit))


def _unseen_metrics(model) -> dict:
    """Clip metrics of ``model`` on 16 unseen synthetic clips at new levels."""
    test_clips, test_audio = synthetic_clips(16, seed=1)
    y = np.array([[c.arousal_high, c.valence_high] for c in test_clips])
    return clip_metrics(y, predict_clips(model, test_audio, hop_seconds=0.5),
                        np.array([c.quadrant for c in test_clips]))


def test_fit_spec_lowers_loss_and_beats_chance_on_unseen_clips() -> None:
    clips, audio = synthetic_clips(24)
    cfg = spec_cfg()
    torch.manual_seed(0)
    model = build_model(cfg)
    mels = mel_cache(model, audio)
    fc = SpecFitConfig(epochs=8, batch_size=8, lr=1e-2, crops_per_clip=2, threads=2, progress=False, seed=0,
                       augs=("eq", "noise", "compress", "band", "specaug"))
    res = fit_spec(model, clips, mels, fc)
    losses = [h["loss"] for h in res.history]
    assert len(losses) == 8 and all(math.isfinite(v) for v in losses)
    # the floor is well above 0 (label smoothing + the auxiliary 4-way quadrant term)
    assert min(losses[-3:]) < losses[0] * 0.85
    m = _unseen_metrics(res.model)
    assert m["arousal_auc"] > 0.8 and m["arousal_acc"] > 0.6


@pytest.fixture(scope="module")
def ensemble() -> SharedMelEnsemble:
    """Two members of the spec recipe, fitted briefly with different seeds (so they disagree)."""
    clips, audio = synthetic_clips(16)
    cfg = spec_cfg()
    members = []
    mels = mel_cache(build_model(cfg), audio)
    for seed in (0, 1):
        torch.manual_seed(seed)
        m = build_model(cfg)
        fit_spec(m, clips, mels, SpecFitConfig(epochs=2, batch_size=8, crops_per_clip=2, seed=seed,
                                               progress=False, threads=2))
        members.append(m.eval())
    return SharedMelEnsemble(members).eval()


def test_ensemble_is_the_mean_of_its_members(ensemble: SharedMelEnsemble) -> None:
    x = torch.from_numpy(np.stack([synth_clip(a, v, 1.0, SR, seed=i) for i, (a, v) in
                                   enumerate([(0.1, 0.9), (0.9, 0.2), (0.5, 0.5)])]))
    with torch.no_grad():
        each = [m(x) for m in ensemble.members]
        got = ensemble(x)
    assert got.shape == (3, 2)
    assert torch.allclose(got, (each[0] + each[1]) / 2, atol=1e-6)
    assert (each[0] - each[1]).abs().max() > 1e-4  # the members really differ


def test_ensemble_rejects_members_with_other_front_ends() -> None:
    a = build_model(spec_cfg())
    b = build_model(dataclasses.replace(spec_cfg(), n_mels=16))
    with pytest.raises(ValueError, match="ModelConfig"):
        SharedMelEnsemble([a, b])
    with pytest.raises(ValueError, match="log-mel"):
        SharedMelEnsemble([build_model(small_cfg("raw_cnn"))])


def test_exported_ensemble_scores_files_as_the_runtime_does(ensemble: SharedMelEnsemble, tmp_path: Path
                                                            ) -> None:
    """No train/serve skew: files at 22050 Hz (not the model's 8 kHz) decoded and resampled by the
    training cache and scored by torch (fit.predict_clips) equal mer-analyze's scores of the same
    files through the exported ONNX file (runtime decode, soxr, framing, onnxruntime)."""
    import json

    from mer_live.analyze import analyze_file
    from mer_live.inference.model import Model
    from train.cache import load_audio
    from train.export import export_onnx

    path = export_onnx(ensemble, tmp_path / "ens.onnx", sample_rate=SR, window_samples=SR, name="ens-test",
                       card_extra={"training_data": "synthetic", "protocol": "none"})
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["export"]["parity_max_abs_diff"] <= 1e-4
    assert card["parameters"] == sum(p.numel() for p in ensemble.parameters())

    file_sr = 22050
    clips = []
    # a long clip, one whose length is no multiple of the hop, one shorter than a window (0.6 s)
    for i, (a, v, sec) in enumerate([(0.8, 0.7, 4.0), (0.2, 0.3, 2.37), (0.6, 0.2, 0.6)]):
        f = tmp_path / f"c{i}.wav"
        x = synth_clip(a, v, sec, file_sr, seed=10 + i)
        sf.write(f, np.stack([x, 0.8 * x], axis=1) if i == 0 else x, file_sr)  # stereo too
        clips.append(Clip(id=f"c{i}", artist="x", path=f, arousal=a, valence=v))
    audio = load_audio(clips, SR, cache_dir=None, progress=False)
    assert len(audio) == 3
    torch_scores = predict_clips(ensemble, list(audio), hop_seconds=1.0)

    rt = Model(path, provider="cpu")
    for i, c in enumerate(clips):
        rec = analyze_file(c.path, rt, hop=1.0)
        got = np.array([rec["arousal"], rec["valence"]])  # rounded to 4 decimals by mer-analyze
        assert np.abs(got - torch_scores[i]).max() <= 2e-4, (c.id, got, torch_scores[i])


def test_ema_keeps_the_averaged_weights_and_the_frozen_filters_bit_exact() -> None:
    """ema > 0 returns the moving average of the trained weights (not the last step's), and never
    touches the frozen spectrogram filters, so EMA members still share one front end."""
    clips, audio = synthetic_clips(16)
    cfg = spec_cfg()
    mels = mel_cache(build_model(cfg), audio)
    fitted = {}
    for ema in (0.0, 0.9):
        fitted[ema], _ = _fit_seeded(clips, mels, cfg, epochs=3, batch_size=8, crops_per_clip=2, seed=0,
                                     ema=ema, augs=())
    plain, avg = fitted[0.0].state_dict(), fitted[0.9].state_dict()
    fixed = [k for k in plain if k.startswith("frontend.") and not k.startswith("frontend.bn.")]
    assert fixed and all(torch.equal(plain[k], avg[k]) for k in fixed)
    trained = [k for k in plain if k.startswith("body.") and plain[k].dtype.is_floating_point]
    # same seed and data, so the only difference is the averaging
    assert max(float((plain[k] - avg[k]).abs().max()) for k in trained) > 1e-4
    SharedMelEnsemble([fitted[0.0], fitted[0.9]])  # front ends still identical
    with pytest.raises(ValueError, match="ema"):
        SpecFitConfig(ema=1.0)


def test_distillation_pulls_the_student_towards_its_teachers() -> None:
    """With distill=1 the targets are the teachers' probabilities alone: a student fitted on them
    ends up closer to the teachers than the same student fitted on the labels."""
    clips, audio = synthetic_clips(16)
    cfg = spec_cfg()
    mels = mel_cache(build_model(cfg), audio)
    torch.manual_seed(5)
    teacher = build_model(cfg)  # an untrained teacher: its outputs are nothing like the labels
    with torch.no_grad():
        teacher.heads.av.bias.fill_(2.0)  # confident "high, high" everywhere
    test_audio = synthetic_clips(6, seed=3)[1]
    t_scores = predict_clips(teacher.eval(), test_audio, hop_seconds=0.5)
    gaps = {}
    for distill in (0.0, 1.0):
        torch.manual_seed(0)
        student = build_model(cfg)
        fc = SpecFitConfig(epochs=8, batch_size=8, crops_per_clip=2, seed=0, lr=1e-2, distill=distill,
                           augs=(), progress=False, threads=2)
        fit_spec(student, clips, mels, fc,
                 teachers=[teacher] if distill else ())
        gaps[distill] = float(np.abs(predict_clips(student, test_audio, hop_seconds=0.5) - t_scores).mean())
    assert gaps[1.0] < gaps[0.0] * 0.7, gaps
    with pytest.raises(ValueError, match="teachers"):
        fit_spec(build_model(cfg), clips, mels, SpecFitConfig(epochs=1, distill=0.5, progress=False))


def test_stage_degradation_is_deterministic_and_changes_the_clip() -> None:
    from train.augment import stage_degrade

    x = synth_clip(0.7, 0.6, 3.0, SR, seed=2)
    a, b, c = stage_degrade(x, SR, seed=1), stage_degrade(x, SR, seed=1), stage_degrade(x, SR, seed=2)
    assert a.shape == x.shape and a.dtype == np.float32 and np.isfinite(a).all()
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.corrcoef(a, x)[0, 1] < 0.98  # really degraded, not just rescaled


def test_stage_training_versions_are_other_draws_than_the_stage_test(tmp_path: Path) -> None:
    """``load_stage_audio(version=r)``: the stage chain's TRAINING versions (run_spec --stage-train)
    are deterministic, cached apart from the test's, and never the test's own draw of a clip."""
    from train.cache import load_stage_audio

    clips, audio = synthetic_clips(3)
    clips = [dataclasses.replace(c, path=tmp_path / f"{c.id}.wav") for c in clips]
    for c, x in zip(clips, audio, strict=True):  # the cache keys on the file behind each clip
        sf.write(c.path, x, SR)
    cache = tmp_path / "cache"
    test = load_stage_audio(clips, audio, SR, cache, progress=False)
    v0 = load_stage_audio(clips, audio, SR, cache, progress=False, version=0)
    v1 = load_stage_audio(clips, audio, SR, cache, progress=False, version=1)
    again = load_stage_audio(clips, audio, SR, None, progress=False, version=0)
    for t, a, b, c, x in zip(test, v0, v1, again, audio, strict=True):
        assert a.shape == x.shape and np.isfinite(a).all()
        assert not np.allclose(a, t, atol=1e-2) and not np.allclose(a, b, atol=1e-2)
        assert np.allclose(a, c, atol=2e-3)  # the cache (float16) holds the same draw
    folders = sorted(d.name for d in cache.iterdir() if d.is_dir())
    assert len(folders) == 3 and sum("stage-train0" in f for f in folders) == 1
    assert sum("stage-train1" in f for f in folders) == 1


def test_tag_head_trains_the_embedding_and_stays_out_of_the_model() -> None:
    """tag_weight > 0 adds a multi-label tag loss (4Q: genres) on the shared embedding: the fitted
    weights differ from a fit without it, and the model itself gains no parameters (the head is
    never exported)."""
    clips, audio = synthetic_clips(16)
    tagged = [dataclasses.replace(c, tags=("bright",) if c.arousal_high else ("dark",)) for c in clips]
    cfg = spec_cfg()
    mels = mel_cache(build_model(cfg), audio)
    fitted = {}
    for w in (0.0, 1.0):
        torch.manual_seed(0)
        m = build_model(cfg)
        n_params = sum(p.numel() for p in m.parameters())
        res = fit_spec(m, tagged, mels, SpecFitConfig(epochs=2, batch_size=8, crops_per_clip=2, seed=0,
                                                      tag_weight=w, min_tag_count=2, augs=("mixup",),
                                                      progress=False, threads=2))
        assert all(math.isfinite(h["loss"]) for h in res.history)
        assert sum(p.numel() for p in m.parameters()) == n_params
        fitted[w] = m.state_dict()
    diff = max(float((fitted[0.0][k] - fitted[1.0][k]).abs().max()) for k in fitted[0.0]
               if k.startswith("body.") and fitted[0.0][k].dtype.is_floating_point)
    assert diff > 1e-4


def test_clip_pooled_loss_learns_the_easy_task() -> None:
    """clip_pool=4: groups of 4 crops of one clip share one prediction (their mean) in the loss;
    the fit still lowers the loss and separates unseen clips, with and without mixup."""
    clips, audio = synthetic_clips(24)
    cfg = spec_cfg()
    mels = mel_cache(build_model(cfg), audio)
    for augs in ((), ("mixup",)):
        _, res = _fit_seeded(clips, mels, cfg, epochs=8, batch_size=8, lr=1e-2, crops_per_clip=4, clip_pool=4,
                             augs=augs, seed=0)
        losses = [h["loss"] for h in res.history]
        assert all(math.isfinite(v) for v in losses) and min(losses[-3:]) < losses[0] * 0.85, augs
        assert _unseen_metrics(res.model)["arousal_auc"] > 0.8, augs
    with pytest.raises(ValueError, match="clip_pool"):
        SpecFitConfig(batch_size=48, clip_pool=5)


def test_arousal_weight_reweights_the_pair_and_still_learns() -> None:
    """arousal_weight tilts the arousal/valence loss (mean weight kept at 1): the same seeded fit
    gives a different loss curve than the default, and it still learns the easy arousal task."""
    clips, audio = synthetic_clips(24)
    cfg = spec_cfg()
    mels = mel_cache(build_model(cfg), audio)
    curves = {}
    for aw in (1.0, 3.0):
        _, res = _fit_seeded(clips, mels, cfg, epochs=6, batch_size=8, lr=1e-2, crops_per_clip=2,
                             arousal_weight=aw, augs=(), seed=0)
        curves[aw] = [h["loss"] for h in res.history]
    assert curves[1.0] != curves[3.0]
    assert min(curves[3.0][-2:]) < curves[3.0][0] * 0.85
    assert _unseen_metrics(res.model)["arousal_auc"] > 0.8
    for bad in (0.0, -1.0, 11.0):
        with pytest.raises(ValueError, match="arousal_weight"):
            SpecFitConfig(arousal_weight=bad)


def test_feature_head_learns_a_pretrained_models_clip_features() -> None:
    """feature_weight trains an auxiliary head to predict each clip's given feature vector (a
    pretrained tagger's embedding in the real recipe): its standardised error falls well below 1
    (the mean's error), with plain and pooled crops, and under mixup; at weight 0 they are unused."""
    clips, audio = synthetic_clips(24)
    cfg = spec_cfg()
    mels = mel_cache(build_model(cfg), audio)
    rng = np.random.default_rng(0)
    # what the audio says (the arousal half) on a foreign scale, plus a mix with the valence half
    feats = np.stack([[5.0 + 3 * c.arousal_high + 0.1 * rng.standard_normal(),
                       -2.0 * c.valence_high + c.arousal_high] for c in clips])
    kw = dict(epochs=6, batch_size=8, lr=1e-2, crops_per_clip=2, seed=0)
    for extra in ({"augs": ()}, {"augs": (), "clip_pool": 2}):
        torch.manual_seed(0)
        model = build_model(cfg)
        res = fit_spec(model, clips, mels, SpecFitConfig(progress=False, threads=2, feature_weight=1.0,
                                                          **kw, **extra), clip_features=feats)
        mse = [h["feature_mse"] for h in res.history]
        assert all(math.isfinite(v) for v in mse)
        assert min(mse[-2:]) < 0.5 and min(mse[-2:]) < mse[0] * 0.7, (extra, mse)
    torch.manual_seed(0)  # mixed-up crops get mixed-up targets: harder, still far below the mean's 1.0
    res = fit_spec(build_model(cfg), clips, mels, SpecFitConfig(progress=False, threads=2, feature_weight=1.0,
                                                                augs=("mixup",), **kw), clip_features=feats)
    assert max(h["feature_mse"] for h in res.history[-2:]) < 0.8
    _, plain = _fit_seeded(clips, mels, cfg, augs=(), **kw)
    torch.manual_seed(0)
    unused = fit_spec(build_model(cfg), clips, mels, SpecFitConfig(progress=False, threads=2, augs=(), **kw),
                      clip_features=feats)
    assert [h["loss"] for h in unused.history] == [h["loss"] for h in plain.history]
    assert "feature_mse" not in unused.history[0]


def test_feature_weight_checks_its_features() -> None:
    clips, audio = synthetic_clips(8)
    cfg = spec_cfg()
    mels = mel_cache(build_model(cfg), audio)
    fc = SpecFitConfig(progress=False, epochs=1, batch_size=4, feature_weight=0.5, augs=())
    with pytest.raises(ValueError, match="needs clip_features"):
        fit_spec(build_model(cfg), clips, mels, fc)
    for bad in (np.zeros((7, 3)), np.zeros(8), np.full((8, 3), np.nan)):
        with pytest.raises(ValueError, match="clip_features must be finite"):
            fit_spec(build_model(cfg), clips, mels, fc, clip_features=bad)
    with pytest.raises(ValueError, match="feature_weight"):
        SpecFitConfig(feature_weight=-0.1)


def test_patch_target_is_the_mean_of_the_patches_inside_the_crop() -> None:
    pf = torch.arange(5, dtype=torch.float32)[:, None] * torch.tensor([[1.0, 10.0]])
    starts = np.arange(5.0)  # 3-s patches starting every second
    got = _patch_target(pf, 5, starts, 3.0, 0.0, 6.05)  # holds patches 0-3 (3 + 3 <= 6.3)
    assert got.tolist() == pytest.approx([1.5, 15.0])
    got = _patch_target(pf, 5, starts, 3.0, 1.0, 5.0)  # only patches 1 and 2 fit inside 4 s
    assert got.tolist() == pytest.approx([1.5, 15.0])
    assert _patch_target(pf, 3, starts, 3.0, 1.0, 3.5).tolist() == pytest.approx([1.0, 10.0])  # 0-2 overlap
    assert _patch_target(pf, 2, starts, 3.0, 20.0, 26.0).tolist() == pytest.approx([0.5, 5.0])  # clip mean
    with pytest.raises(ValueError, match="PatchFeatures"):
        PatchFeatures(np.zeros((2, 3, 4)), np.arange(2.0), 1.0)
    with pytest.raises(ValueError, match="finite first patch"):
        PatchFeatures(np.full((2, 3, 4), np.nan), np.arange(3.0), 1.0)


def test_time_resolved_feature_head_learns_what_each_crop_holds() -> None:
    """With PatchFeatures each crop regresses the patches it covers. Every clip is half a bright,
    busy sound and half a dark one (in random order); the feature says which, patch by patch, so
    every clip has the same mean and a clip-level target carries nothing. The time-resolved head
    still learns it: its error falls far below the mean's (1.0)."""
    base, audio = synthetic_clips(32, seconds=1.5)
    rng = np.random.default_rng(1)
    clips, joined, values = [], [], []
    starts = np.arange(0.0, 2.51, 0.25)  # 0.5-s patches every 0.25 s over 3 s
    for i in range(16):
        hi, lo = audio[2 * i + 1], audio[2 * i]  # synthetic_clips alternates dark, bright
        first_hi = bool(rng.integers(0, 2))
        joined.append(np.concatenate([hi, lo] if first_hi else [lo, hi]))
        clips.append(base[2 * i + (0 if first_hi else 1)])
        in_first = np.clip((1.5 - starts) / 0.5, 0, 1)  # share of each patch in the first half
        f = (2 * in_first - 1) * (1 if first_hi else -1)
        values.append(np.stack([f, -f], axis=1))
    pf = PatchFeatures(np.array(values, np.float32), starts, 0.5)
    assert np.allclose(pf.values.mean(axis=1), 0, atol=1e-6)  # nothing to learn at clip level
    cfg = spec_cfg()
    mels = mel_cache(build_model(cfg), joined)
    torch.manual_seed(0)
    fc = SpecFitConfig(progress=False, threads=2, feature_weight=1.0, augs=(), epochs=8, batch_size=8,
                       lr=1e-2, crops_per_clip=4, seed=0)
    res = fit_spec(build_model(cfg), clips, mels, fc, clip_features=pf)
    mse = [h["feature_mse"] for h in res.history]
    assert all(math.isfinite(v) for v in mse)
    assert min(mse[-2:]) < 0.5 and min(mse[-2:]) < mse[0] * 0.7, mse
    with pytest.raises(ValueError, match="must have 8 clips"):
        fit_spec(build_model(cfg), clips[:8], mels[:8], dataclasses.replace(fc, epochs=1), clip_features=pf)


def test_run_spec_loads_clip_features_in_clip_order(tmp_path: Path) -> None:
    from train.cv_spec import feature_rows, load_clip_features

    clips, _ = synthetic_clips(4)
    f = tmp_path / "feats.npz"
    ids = np.array(["c3", "c0", "extra", "c2", "c1"])
    np.savez(f, ids=ids, features=np.arange(10, dtype=np.float32).reshape(5, 2))
    got = load_clip_features(f, clips)  # c0, c1, c2, c3
    assert got.tolist() == [[2, 3], [8, 9], [6, 7], [0, 1]]
    np.savez(f, ids=ids[:3], features=np.zeros((3, 2)))
    with pytest.raises(SystemExit, match="no features for 2 clips"):
        load_clip_features(f, clips)
    f.write_bytes(b"not an npz")
    with pytest.raises(SystemExit, match="not an npz with ids and features"):
        load_clip_features(f, clips)
    np.savez(f, ids=ids, features=np.zeros((5, 2)), patch_features=np.arange(30.0).reshape(5, 3, 2),
             patch_starts=np.array([0.0, 1.0, 2.0]), patch_seconds=np.float32(3.0))
    pf = load_clip_features(f, clips, patches=True)
    assert pf.values.shape == (4, 3, 2) and pf.values[0, 0].tolist() == [6, 7] and pf.seconds == 3.0
    assert feature_rows(pf, [3]).values[0, 2].tolist() == [4, 5]
    np.savez(f, ids=ids, features=np.zeros((5, 2)))
    with pytest.raises(SystemExit, match="patch_features"):
        load_clip_features(f, clips, patches=True)


def test_clip_probs_teacher_replaces_the_labels_at_distill_one() -> None:
    """clip_probs is a clip-level distillation teacher: at distill=1 the model learns the teacher's
    opinion, not the labels; here the teacher says the opposite arousal, and the model follows it."""
    clips, audio = synthetic_clips(24)
    cfg = spec_cfg()
    mels = mel_cache(build_model(cfg), audio)
    y = np.array([[c.arousal_high, c.valence_high] for c in clips], np.float32)
    flipped = np.c_[1 - y[:, 0], y[:, 1]] * 0.9 + 0.05
    torch.manual_seed(0)
    model = build_model(cfg)
    fc = SpecFitConfig(progress=False, threads=2, epochs=6, batch_size=8, lr=1e-2, crops_per_clip=2, augs=(),
                       aux_weight=0.0, distill=1.0, seed=0)
    fit_spec(model, clips, mels, fc, clip_probs=flipped)
    assert _unseen_metrics(model)["arousal_auc"] < 0.2
    fc = SpecFitConfig(progress=False, epochs=1, batch_size=4, distill=0.5, augs=())
    with pytest.raises(ValueError, match="needs teachers or clip_probs"):
        fit_spec(build_model(cfg), clips, mels, fc)
    for bad in (flipped[:5], flipped * 2, np.full_like(flipped, np.nan)):
        with pytest.raises(ValueError, match="clip_probs must be probabilities"):
            fit_spec(build_model(cfg), clips, mels, fc, clip_probs=bad)


def test_clip_teacher_probs_are_cross_fitted() -> None:
    """The logistic-regression teacher scores each clip with a fit that never saw its artist: on
    informative features it is right, on pure noise it is at chance (an in-sample fit of 60
    dimensions to 40 clips would be perfect)."""
    from sklearn.metrics import roc_auc_score

    from train.cv_spec import clip_teacher_probs

    clips, _ = synthetic_clips(40)
    rng = np.random.default_rng(0)
    y = np.array([[c.arousal_high, c.valence_high] for c in clips])
    good = np.c_[y + 0.3 * rng.standard_normal(y.shape), rng.standard_normal((40, 3))]
    p = clip_teacher_probs(good, clips)
    assert p.shape == (40, 2)
    assert roc_auc_score(y[:, 0], p[:, 0]) > 0.9 and roc_auc_score(y[:, 1], p[:, 1]) > 0.9
    noise = clip_teacher_probs(rng.standard_normal((40, 60)), clips, c=100.0)
    assert roc_auc_score(y[:, 0], noise[:, 0]) < 0.8


def test_probe_features_scores_features_and_blends_in_the_artist_folds(shared_data: Path, tmp_path: Path,
                                                                        capsys) -> None:
    """probe_features on the real 4Q clips: features that carry the labels score high, and the
    w=0 blend row is exactly the given CV result's own pooled arousal AUC."""
    import json
    import re

    from train.data import load_4q
    from train.experiments.probe_features import main

    clips = load_4q(shared_data / "4q")
    rng = np.random.default_rng(0)
    y = np.array([[c.arousal_high, c.valence_high] for c in clips], float)
    f = tmp_path / "f.npz"
    np.savez(f, ids=np.array([c.id for c in clips]), features=y + 0.5 * rng.standard_normal(y.shape))
    result = Path(__file__).resolve().parents[2] / "train/experiments/results/abl-eq+band.json"
    assert main([str(f), "--with", str(result)]) == 0
    out = capsys.readouterr().out
    a, v = map(float, re.search(r"probe .*arousal AUC ([\d.]+), valence AUC ([\d.]+)", out).groups())
    assert a > 0.9 and v > 0.9
    w0 = float(re.search(r"w=0\.0: arousal AUC ([\d.]+)", out).group(1))
    assert w0 == pytest.approx(json.loads(result.read_text())["pooled"]["arousal_auc"], abs=1e-4)


def test_report_shared_errors_counts_the_clips_every_result_misjudges(shared_data: Path) -> None:
    """report --shared-errors on the real clip ids: a result that is right on every clip but two,
    one that is right on all but those two and three more; the counts follow, and a result over
    other clips is refused."""
    from train.data import load_4q
    from train.report import shared_errors

    clips = load_4q()
    y = np.array([[c.arousal_high, c.valence_high] for c in clips], np.float64)
    a, b = 0.2 + 0.6 * y, 0.2 + 0.6 * y
    a[[0, 1], 0] = 1 - a[[0, 1], 0]
    b[[0, 1, 2, 3, 4], 0] = 1 - b[[0, 1, 2, 3, 4], 0]
    ids = [c.id for c in clips]
    res = [{"name": "a", "ids": ids, "oof": a.tolist()}, {"name": "b", "ids": ids, "oof": b.tolist()}]
    got = shared_errors(res)
    assert got["wrong_in_all"] == 2 and got["wrong_in_half"] == 5 and got["per_result"] == 3.5
    assert got["wrong_in_none"] == len(clips) - 5
    assert shared_errors(res, dim=1)["wrong_in_half"] == 0
    with pytest.raises(SystemExit, match="other clips"):
        shared_errors([res[0], {"name": "c", "ids": ids[::-1], "oof": a.tolist()}])


def _band_cfg(frontend: str):
    """A small front end whose band filters learn in cached training (``learn_bands``)."""
    if frontend == "multires":  # at 8 kHz: fine bins below 600 Hz from a 4x-decimated signal
        return dataclasses.replace(small_cfg("mel_cnn"), frontend="multires", split_hz=600.0, low_n_fft=128,
                                   high_n_fft=128, trainable_mel=False, learn_bands=True)
    return dataclasses.replace(small_cfg("mel_cnn"), trainable_mel=True, learn_bands=True)


@pytest.mark.parametrize("frontend", ["multires", "nnaudio"])
def test_learnt_bands_are_cached_as_bins_and_start_as_the_fixed_filters(frontend: str) -> None:
    """The cache of a learn_bands front end holds DFT-bin power; the current filters applied to it
    (``bands_db``) give what the window graph computes (``power_db``), and before training a
    multires front end's learnt filters are its fixed triangles."""
    cfg = _band_cfg(frontend)
    model = build_model(cfg).eval()
    x = torch.from_numpy(synth_clip(0.7, 0.3, 2.0, SR, seed=3))[None]
    with torch.no_grad():
        bins = model.frontend.bins_db(x)
        want = model.frontend.power_db(x)
        assert bins.shape[1] > cfg.n_mels and bins.shape[2] == want.shape[2]
        # float32 dB round trip and the per-bin power floor: well under float16's 0.03 dB in the cache
        assert (model.frontend.bands_db(bins) - want).abs().max() < 0.01
        cache = mel_cache(model, [x[0].numpy()])[0]
    assert cache.shape[0] == bins.shape[1]  # bins, not bands
    if frontend == "multires":
        fixed = build_model(dataclasses.replace(cfg, learn_bands=False)).eval()
        with torch.no_grad():
            assert (fixed.frontend.power_db(x) - want).abs().max() < 1e-3
    with pytest.raises(ValueError, match="learn_bands"):
        dataclasses.replace(small_cfg("mel_cnn"), trainable_mel=False, learn_bands=True)


@pytest.mark.parametrize("frontend", ["multires", "nnaudio"])
def test_fit_spec_learns_the_band_filters_and_exports_them(frontend: str, tmp_path: Path) -> None:
    """The band filters move in training (the DFT kernels do not), the task is still learnt, and
    the exported graph scores windows as torch does."""
    import onnx

    from mer_live.inference.model import Model
    from train.export import export_onnx

    clips, audio = synthetic_clips(24)
    cfg = _band_cfg(frontend)
    torch.manual_seed(0)
    model = build_model(cfg)
    before = {k: v.detach().clone() for k, v in model.frontend.state_dict().items()}
    mels = mel_cache(model, audio)
    res = fit_spec(model, clips, mels, SpecFitConfig(epochs=8, batch_size=8, lr=1e-2, crops_per_clip=2,
                                                     threads=2, progress=False, augs=("eq", "band")))
    after = res.model.frontend.state_dict()
    band = "fb_log" if frontend == "multires" else "mel.mel_basis"
    assert (after[band] - before[band]).abs().max() > 1e-3
    dft = [k for k in before if k.startswith(("k_", "aa", "mel.stft."))]
    assert dft and all(torch.equal(before[k], after[k]) for k in dft)
    m = _unseen_metrics(res.model)
    assert m["arousal_auc"] > 0.8

    path = export_onnx(res.model, tmp_path / "lb.onnx", sample_rate=SR, window_samples=cfg.window_samples,
                       name="lb-test", card_extra={"training_data": "synthetic", "protocol": "none"})
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "MatMul" in ops and "Conv" in ops
    x = np.stack([synth_clip(0.8, 0.6, 1.0, SR, seed=s) for s in (4, 5)]).astype(np.float32)
    with torch.no_grad():
        want = res.model(torch.from_numpy(x)).numpy()
    got = Model(path, provider="cpu").predict(x)
    assert np.abs(got - want).max() <= 1e-4


def test_learn_bands_refuses_teachers_that_would_share_the_students_bands() -> None:
    clips, audio = synthetic_clips(8)
    cfg = _band_cfg("multires")
    model, teacher = build_model(cfg), build_model(cfg)
    with pytest.raises(ValueError, match="learn_bands"):
        fit_spec(model, clips, mel_cache(model, audio), SpecFitConfig(epochs=1, batch_size=4, progress=False,
                                                                      distill=0.5), teachers=[teacher])


def test_self_distillation_softens_targets_the_model_disagrees_with() -> None:
    """self_distill mixes the model's previous-epoch opinion of each clip into its targets, rising
    from 0: on clips whose arousal label is wrong (a quarter, flipped), the model memorises the
    wrong label less than without it, and it still learns the task."""
    clips, audio = synthetic_clips(24)
    flip = set(range(0, 24, 4))  # 6 clips, 3 of each arousal class
    swap = {1: 4, 4: 1, 2: 3, 3: 2}  # the same valence, the other arousal
    noisy = [dataclasses.replace(c, quadrant=swap[c.quadrant], arousal_high=None, valence_high=None)
             if i in flip else c
             for i, c in enumerate(clips)]
    cfg = spec_cfg()
    mels = mel_cache(build_model(cfg), audio)
    fit = dict(epochs=25, batch_size=8, lr=1e-2, crops_per_clip=4, augs=(), aux_weight=0.0, seed=0)
    plain, _ = _fit_seeded(noisy, mels, cfg, **fit)
    soft, res = _fit_seeded(noisy, mels, cfg, self_distill=0.8, **fit)
    alphas = [h["self_distill"] for h in res.history]
    assert alphas[0] == 0 and alphas[-1] == pytest.approx(0.8) and alphas == sorted(alphas)
    wrong = np.array([noisy[i].arousal_high for i in sorted(flip)], np.float64)
    flipped_audio = [audio[i] for i in sorted(flip)]

    def pull(model) -> float:  # how far the model followed the wrong labels (1: exactly, 0.5: undecided)
        p = predict_clips(model, flipped_audio, hop_seconds=0.5)[:, 0]
        return float(np.mean(1 - np.abs(p - wrong)))

    assert pull(soft) < pull(plain)
    assert _unseen_metrics(soft)["arousal_auc"] > 0.8
    with pytest.raises(ValueError, match="not with mixup"):
        SpecFitConfig(self_distill=0.5, augs=("mixup",))
    with pytest.raises(ValueError, match="self_distill must be in"):
        SpecFitConfig(self_distill=1.5)


def test_artist_subset_keeps_whole_artists_of_the_training_fold() -> None:
    from train.cv_spec import artist_subset

    clips = [Clip(id=f"c{i}", artist=f"a{i // 3}", path=Path(f"c{i}.wav"), quadrant=1 + i % 4)
             for i in range(60)]  # 20 artists, 3 clips each
    tr = np.arange(6, 60)  # 18 artists
    half = artist_subset(clips, tr, 0.5, seed=3)
    artists = {clips[i].artist for i in half}
    assert len(artists) == 9 and set(half) <= set(tr.tolist())
    assert all(clips[i].artist in artists for i in half) and len(half) == 27  # every clip of each artist
    assert np.array_equal(half, artist_subset(clips, tr, 0.5, seed=3))
    assert not np.array_equal(half, artist_subset(clips, tr, 0.5, seed=4))
    assert np.array_equal(artist_subset(clips, tr, 1.0, seed=0), tr)


def test_learning_curve_sizes_and_trend() -> None:
    from train.experiments.learning_curve import means, training_sizes, trend

    clips = [Clip(id=f"c{i}", artist=f"a{i // 3}", path=Path(f"c{i}.wav"), quadrant=1 + i % 4)
             for i in range(60)]  # 20 artists, 3 clips each: 16 training artists per fold
    assert training_sizes({}, clips) == [48] * 5  # a run without --train-artists used them all
    assert training_sizes({"train_artists": 0.5}, clips) == [24] * 5  # 8 whole artists of 3 clips
    # a metric rising exactly 0.01 per doubling, 0.95 at 500 clips: the line meets 0.965 at 500 * 2**1.5
    pts = [{"clips": n, "pooled": {"arousal AUC": 0.95 + 0.01 * np.log2(n / 500)}} for n in (125, 250, 500)]
    slope, last, at = trend(pts, "arousal AUC")
    assert slope == pytest.approx(0.01) and last == pytest.approx(0.95)
    assert at == pytest.approx(500 * 2 ** 1.5, rel=1e-6)
    flat = [{"clips": n, "pooled": {"arousal AUC": 0.96 - 0.001 * i}} for i, n in enumerate((100, 200))]
    assert trend(flat, "arousal AUC")[2] == float("inf")  # a falling line never reaches the floor
    seeds = [{"name": n, "fraction": 0.5, "clips": 24.0, "pooled": {"arousal AUC": a, "valence AUC": 0.8,
                                                                  "quadrant macro-F1": 0.6}}
             for n, a in (("s1", 0.94), ("s2", 0.96))]
    (m,) = means(seeds)
    assert m["runs"] == 2 and m["pooled"]["arousal AUC"] == pytest.approx(0.95) and m["name"] == "s1+s2"
