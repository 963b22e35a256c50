"""train/distill_bank.py + train/distill.py: the teacher hears exactly the student's augmented crop,
a fold's bank never holds a test clip, a crop's teacher logit never comes from a head that saw its
own clip's label, and the bank stream's teacher targets reach the student.

Small and real: synthetic 16 kHz clips, the shipped ONNX teacher (models/musicnn-msd.onnx) through
onnxruntime, a small multires CNN with 3-s windows (one teacher patch per crop), CPU, one thread.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import need_module

torch = need_module("torch", "train")
need_module("onnxruntime", "train")
need_module("sklearn", "train")

from train import teacher  # noqa: E402
from train.data import Clip, artist_folds  # noqa: E402
from train.distill import DistillConfig, cross_fitted_logits, fit_distill, fold_bank  # noqa: E402
from train.distill_bank import CONTEXT, BankConfig, build_bank, draw_clip, teacher_windows  # noqa: E402
from train.exampleset import synth_clip  # noqa: E402
from train.fusion_head import fit_head  # noqa: E402
from train.metrics import auc  # noqa: E402
from train.models import ModelConfig, build_model  # noqa: E402
from train.specfit import SpecFitConfig, mel_cache  # noqa: E402

SR = 16000
CLEAN = BankConfig(k=2, mixup_k=0, p_speed=0, p_eq=0, p_band=0, p_reverb=0, p_noise=0, p_compress=0,
                   gain_db=0)


def student_cfg() -> ModelConfig:
    return ModelConfig(frontend="multires", sample_rate=SR, hop=800, n_mels=24, window_seconds=3.0,
                       channels=(8, 16), embed_dim=16, band_scale="semitone", trainable_mel=False)


def clips_and_audio(n: int = 10, seconds: float = 4.0) -> tuple[list[Clip], list[np.ndarray]]:
    """Quadrant-labelled synthetic clips (major/minor, loud/soft), two per artist."""
    clips, audio = [], []
    for i in range(n):
        a, v = (0.8 if i % 2 else 0.2), (0.8 if i % 4 in (1, 2) else 0.2)  # both classes in each artist
        audio.append(synth_clip(a, v, seconds, SR, seed=i))
        clips.append(Clip(id=f"c{i}", artist=f"artist{i // 2}", path=Path(f"/nowhere/c{i}.wav"),
                          arousal_high=int(a > 0.5), valence_high=int(v > 0.5)))
    return clips, audio


@pytest.fixture(scope="module")
def small_bank():
    clips, audio = clips_and_audio()
    cfg = BankConfig(k=4, mixup_k=1, p_eq=0.5, p_band=0.5, p_speed=0.5, seed=3)
    bank = build_bank(audio, [c.id for c in clips], student_cfg(), cfg, progress=False)
    return clips, audio, cfg, bank


def test_without_effects_the_teacher_hears_the_students_window_and_the_256_samples_before_it() -> None:
    clips, audio = clips_and_audio(n=3)
    mcfg = student_cfg()
    bank = build_bank(audio, [c.id for c in clips], mcfg, CLEAN, progress=False)
    sess = teacher.session()
    fe = build_model(mcfg).frontend.eval()
    win = mcfg.window_samples
    for r in range(len(bank)):
        y, st = audio[bank.clip[r]], int(bank.start[r])
        crop0 = st + CONTEXT  # the student's window starts 256 samples into the segment
        want = teacher.run_onnx(sess, teacher.patch_windows(y, np.array([crop0])))["features"]
        assert np.abs(bank.features[r] - want).max() < 1e-4
        with torch.no_grad():
            spec = fe.power_db(torch.from_numpy(np.ascontiguousarray(y[crop0: crop0 + win]))[None])[0]
        assert np.abs(bank.spec[r].astype(np.float32) - spec.numpy()).max() < 0.05  # float16 storage
    assert (bank.partner == -1).all() and (bank.lam == 1).all() and (bank.augs == 0).all()


def test_the_teacher_hears_the_augmented_and_mixed_audio(small_bank) -> None:
    clips, audio, cfg, bank = small_bank
    window = student_cfg().window_samples
    sess = teacher.session()
    for i in (0, 7):
        seg, drawn = draw_clip(audio, i, cfg, window)  # seeded per clip: the bank's own draw again
        rows = np.flatnonzero(bank.clip == i)
        got = teacher.run_onnx(sess, teacher_windows(seg.numpy(), window)[:, 0])["features"]
        assert np.abs(bank.features[rows, 0] - got).max() < 1e-4
        np.testing.assert_array_equal(bank.partner[rows], drawn["partner"])
    mixed = bank.partner >= 0
    assert mixed.sum() == len(clips) * cfg.mixup_k and (bank.partner[mixed] != bank.clip[mixed]).all()
    assert ((bank.lam[mixed] >= 0.5) & (bank.lam[mixed] <= 1)).all()
    # the effects changed what the teacher heard: an augmented view is not its clean crop
    clean = build_bank(audio, [c.id for c in clips], student_cfg(), dataclasses.replace(
        CLEAN, k=cfg.k, seed=cfg.seed), progress=False)
    hit = bank.augs > 0
    assert hit.any()
    diff = np.abs(bank.features - clean.features).max(axis=(1, 2))
    assert (diff[hit & ~mixed] > 1e-3).all()


def test_a_fold_bank_holds_training_clips_only_and_never_a_crops_own_label(small_bank) -> None:
    clips, _, _, bank = small_bank
    (tr, te) = artist_folds(clips, k=5, seed=0)[0]
    dcfg = DistillConfig(inner_k=4)
    fb = fold_bank(bank, clips, tr, dcfg)
    assert len(fb) and (fb.clip >= 0).all() and (fb.clip < len(tr)).all()
    assert (fb.partner < len(tr)).all()
    kept_ids = {clips[tr[j]].id for j in fb.clip} | {clips[tr[j]].id for j in fb.partner[fb.partner >= 0]}
    assert not kept_ids & {clips[i].id for i in te}
    # the test clips' labels never reach the targets
    test_set = set(te.tolist())
    flipped = [dataclasses.replace(c, arousal_high=1 - c.arousal_high, valence_high=1 - c.valence_high,
                                   quadrant=None) if i in test_set else c for i, c in enumerate(clips)]
    np.testing.assert_array_equal(fold_bank(bank, flipped, tr, dcfg).logits, fb.logits)
    # flipping one TRAINING clip's label moves other clips' teacher logits but not its own crops'
    j = int(tr[0])
    one = [dataclasses.replace(c, arousal_high=1 - c.arousal_high, valence_high=1 - c.valence_high,
                               quadrant=None) if i == j else c for i, c in enumerate(clips)]
    fb2 = fold_bank(bank, one, tr, dcfg)
    own = (fb.clip == 0) | (fb.partner == 0)
    np.testing.assert_array_equal(fb2.logits[own], fb.logits[own])
    assert not np.allclose(fb2.logits[~own], fb.logits[~own])


def test_cross_fitted_teacher_logits_of_unrelated_features_are_chance_and_in_sample_ones_are_not() -> None:
    rng = np.random.default_rng(0)
    n, per, d = 200, 4, 100
    clips = [Clip(id=f"c{i}", artist=f"a{i // 2}", path=Path("/nowhere"), quadrant=int(rng.integers(1, 5)))
             for i in range(n)]
    y = np.array([[c.arousal_high, c.valence_high] for c in clips], np.float64)
    clip = np.repeat(np.arange(n), per)
    partner = np.full(len(clip), -1)
    feats = rng.standard_normal((n, d))[clip] + 0.3 * rng.standard_normal((len(clip), d))
    z = cross_fitted_logits(feats, clip, partner, y, clips)
    zin = fit_head(feats, y[clip]).logits(feats)
    for dim in range(2):
        honest = auc(y[:, dim], np.array([z[clip == i, dim].mean() for i in range(n)]))
        leaky = auc(y[:, dim], np.array([zin[clip == i, dim].mean() for i in range(n)]))
        assert abs(honest - 0.5) < 0.1
        assert leaky > 0.8


def test_the_bank_streams_teacher_targets_reach_the_student(small_bank) -> None:
    """Same seed, same crops; the teacher says 'high' on every bank crop in one run and 'low' in the
    other (distill 1): the first student ends higher on the bank crops than the second."""
    clips, audio, _, bank = small_bank
    tr = np.arange(len(clips))
    mcfg = student_cfg()
    mels = mel_cache(build_model(mcfg), audio)
    fcfg = SpecFitConfig(epochs=4, batch_size=4, crops_per_clip=2, threads=1, augs=("eq", "band"),
                         tag_weight=0.0, progress=False)
    dcfg = DistillConfig(distill=1.0, bank_per_step=8, inner_k=4, feature_weight=1.0)
    fb = fold_bank(bank, clips, tr, dcfg)
    outs, hists = [], []
    for sign in (1.0, -1.0):
        torch.manual_seed(0)
        model = build_model(mcfg)
        fbs = dataclasses.replace(fb, logits=np.full_like(fb.logits, 4.0 * sign))
        res = fit_distill(model, clips, mels, fbs, fcfg, dcfg)
        with torch.no_grad():
            feats = model.frontend.normalize(fb.spec.float())
            outs.append(torch.sigmoid(model.heads(model.embed(feats))[0]).mean(0).numpy())
        hists.append(res.history)
    assert (outs[0] > outs[1] + 0.05).all()
    h = hists[0]
    assert all(np.isfinite(r["loss"]) for r in h) and h[-1]["feature_mse"] < 0.95 * h[0]["feature_mse"]


def test_configs_refuse_bad_values() -> None:
    with pytest.raises(ValueError):
        BankConfig(k=2, mixup_k=3)
    with pytest.raises(ValueError):
        BankConfig(p_eq=1.5)
    with pytest.raises(ValueError):
        DistillConfig(distill=1.5)
    with pytest.raises(ValueError):
        DistillConfig(temperature=0)
