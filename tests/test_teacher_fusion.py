"""train/fusion_head.py: the fused CV rows come from a function that never lets a test clip's
label reach its own score (the head, the nested weight), checked on data whose labels are unrelated
to the features, with the very function the results come from."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.conftest import need_module

need_module("sklearn", "train")

from train import fusion_head as fusion  # noqa: E402
from train.data import Clip, artist_folds  # noqa: E402
from train.metrics import auc  # noqa: E402


def synthetic(n: int = 300, d: int = 120, seed: int = 0):
    """Clips of 150 two-clip artists with random quadrants, random 'teacher features' and random
    'CNN scores': nothing here predicts the labels."""
    rng = np.random.default_rng(seed)
    clips = [Clip(id=f"c{i}", artist=f"artist {i // 2}", path=Path(f"/nowhere/{i}.wav"),
                  quadrant=int(rng.integers(1, 5))) for i in range(n)]
    y = np.array([[c.arousal_high, c.valence_high] for c in clips], np.float64)
    feats = rng.standard_normal((n, d))
    p_cnn = rng.uniform(0.2, 0.8, (n, 2))
    return clips, y, feats, p_cnn, artist_folds(clips, k=5, seed=0)


def pooled_auc(y: np.ndarray, s: np.ndarray) -> list[float]:
    return [auc(y[:, j], s[:, j]) for j in range(2)]


def test_honest_cv_of_unrelated_features_is_chance_and_a_leaky_one_is_not() -> None:
    clips, y, feats, p_cnn, folds = synthetic()
    honest = fusion.fusion_cv(feats, feats, p_cnn, y, clips, folds, weight=fusion.W_FIXED)
    nested = fusion.fusion_cv(feats, feats, p_cnn, y, clips, folds, weight=None)
    for s in (honest["teacher"], honest["scores"], nested["scores"]):
        assert all(abs(a - 0.5) < 0.1 for a in pooled_auc(y, s))
    # the same function, handed folds whose training clips include the test clips
    leaky_folds = [(np.arange(len(clips)), te) for _, te in folds]
    leaky = fusion.fusion_cv(feats, feats, p_cnn, y, clips, leaky_folds, weight=fusion.W_FIXED)
    assert all(a > 0.8 for a in pooled_auc(y, leaky["teacher"]))
    assert all(a > 0.6 for a in pooled_auc(y, leaky["scores"]))


def test_a_test_folds_labels_never_change_its_scores() -> None:
    """Flip every label of fold 0's test clips: their fused scores (fixed and nested weight) and the
    weights chosen for fold 0 stay the same; other folds' may move (those labels train them)."""
    clips, y, feats, p_cnn, folds = synthetic(seed=1)
    te = folds[0][1]
    y2 = y.copy()
    y2[te] = 1 - y2[te]
    for weight in (fusion.W_FIXED, None):
        a = fusion.fusion_cv(feats, feats, p_cnn, y, clips, folds, weight=weight)
        b = fusion.fusion_cv(feats, feats, p_cnn, y2, clips, folds, weight=weight)
        assert np.array_equal(a["scores"][te], b["scores"][te])
        assert np.array_equal(a["weights"][0], b["weights"][0])
        assert not np.allclose(a["teacher_logits"][folds[1][1]], b["teacher_logits"][folds[1][1]])


def test_nested_weight_follows_the_training_clips() -> None:
    """Where the teacher's features carry the labels and the CNN's scores do not, the nested weight
    rises to the teacher; with the roles swapped it falls to the CNN."""
    clips, y, _, p_cnn, folds = synthetic(seed=2)
    rng = np.random.default_rng(3)
    signal = y * 2 - 1 + 0.8 * rng.standard_normal(y.shape)
    good = np.concatenate([signal, rng.standard_normal((len(y), 20))], axis=1)
    to_teacher = fusion.fusion_cv(good, good, p_cnn, y, clips, folds, weight=None)
    assert to_teacher["weights"].min() >= 0.7
    good_cnn = np.clip(0.5 + 0.35 * (y * 2 - 1) + 0.1 * rng.standard_normal(y.shape), 0.01, 0.99)
    noise = rng.standard_normal((len(y), 20))
    to_cnn = fusion.fusion_cv(noise, noise, good_cnn, y, clips, folds, weight=None)
    assert to_cnn["weights"].max() <= 0.3


def test_head_is_the_standardised_regression_folded() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    _, y, feats, _, _ = synthetic(n=120, d=12, seed=4)
    feats = feats * np.linspace(0.1, 10, 12) + 3.0  # scales and offsets the folding must undo
    head = fusion.fit_head(feats, y, c=0.1)
    for d in range(2):
        m = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000)).fit(feats, y[:, d])
        np.testing.assert_allclose(head.logits(feats)[:, d], m.decision_function(feats), rtol=1e-6, atol=1e-8)


def test_fuse_formula() -> None:
    p = np.array([[0.2, 0.9]])
    z = np.array([[1.5, -2.0]])
    np.testing.assert_allclose(fusion.fuse(p, z, 0.0), p)
    np.testing.assert_allclose(fusion.fuse(p, z, 1.0), 1 / (1 + np.exp(-z)))
    want = 1 / (1 + np.exp(-(0.7 * np.log(p / (1 - p)) + 0.3 * z)))
    np.testing.assert_allclose(fusion.fuse(p, z, 0.3), want)


def test_cadence_features_pick_the_patches_the_runtime_would_run() -> None:
    """Patch k (starting at k s) holds the value k; clip 1 has 20 patches, clip 0 has 28."""
    pf = np.full((2, 28, 1), np.nan)
    pf[0, :, 0] = np.arange(28)
    pf[1, :20, 0] = np.arange(20)
    starts = np.arange(28, dtype=np.float64)
    assert fusion.cadence_features(pf, starts, "1s")[:, 0].tolist() == [13.5, 9.5]
    assert fusion.cadence_features(pf, starts, "10s")[:, 0].tolist() == [10.0, 5.0]  # 0,10,20 / 0,10
    # phase 5: patches 5, 15, 25 / 5, 15
    assert fusion.cadence_features(pf, starts, "10s", phase=5)[:, 0].tolist() == [15.0, 10.0]
    assert fusion.cadence_features(pf, starts, "15s")[:, 0].tolist() == [7.5, 7.5]
    assert fusion.cadence_features(pf, starts, "1p")[:, 0].tolist() == [13.0, 9.0]
    assert fusion.cadence_features(pf, starts, "1p", phase=100)[:, 0].tolist() == [27.0, 19.0]


def test_paired_bootstrap_sees_a_real_gain_and_no_gain() -> None:
    clips, y, _, p_cnn, _ = synthetic(seed=5)
    q = np.array([c.quadrant for c in clips])
    artists = [c.artist for c in clips]
    same = fusion.paired_bootstrap(y, q, p_cnn, p_cnn, artists, n=50)
    assert all(v == [0.0, 0.0, 0.0] for v in same.values())
    better = np.clip(p_cnn + 0.3 * (y - 0.5), 0, 1)  # scores that lean towards the labels
    got = fusion.paired_bootstrap(y, q, better, p_cnn, artists, n=200)
    assert got["arousal_auc"][1] > 0 and got["valence_auc"][1] > 0  # the whole interval above 0
    assert got["arousal_auc"][1] <= got["arousal_auc"][0] <= got["arousal_auc"][2]
    # its interval is centred on the metrics module's own numbers for the whole set
    from train.metrics import auc as ref_auc
    from train.metrics import macro_f1, quadrant_of
    gain = ref_auc(y[:, 0], better[:, 0]) - ref_auc(y[:, 0], p_cnn[:, 0])
    assert abs(got["arousal_auc"][0] - gain) < 1e-4
    f1 = [macro_f1(q, quadrant_of(s[:, 0], s[:, 1]), (1, 2, 3, 4)) for s in (better, p_cnn)]
    assert abs(got["quadrant_macro_f1"][0] - (f1[0] - f1[1])) < 1e-4
