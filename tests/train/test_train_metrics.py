"""train/metrics.py against hand-computed values (and sklearn where it has the same metric)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from train.metrics import (
    aggregate_windows,
    auc,
    binary_metrics,
    ccc,
    confusion,
    fold_spread,
    format_table,
    macro_f1,
    mcc,
    quadrant_metrics,
    quadrant_of,
    regression_metrics,
    summarize,
)


def test_auc_by_hand_with_ties() -> None:
    # positives 0.8, 0.4; negatives 0.4, 0.1: pairs (0.8>0.4, 0.8>0.1, 0.4=0.4 -> 1/2, 0.4>0.1) = 3.5/4
    assert auc(np.array([1, 1, 0, 0]), np.array([0.8, 0.4, 0.4, 0.1])) == pytest.approx(0.875)
    assert auc(np.array([1, 0]), np.array([0.1, 0.9])) == 0.0
    assert np.isnan(auc(np.array([1, 1]), np.array([0.1, 0.9])))
    rng = np.random.default_rng(0)
    y, s = rng.integers(0, 2, 200), np.round(rng.random(200), 1)
    assert auc(y, s) == pytest.approx(skm.roc_auc_score(y, s))


def test_binary_metrics_by_hand() -> None:
    y = np.array([1, 1, 1, 0, 0, 1])
    s = np.array([0.9, 0.6, 0.2, 0.7, 0.1, 0.5])  # pred at 0.5: 1 1 0 1 0 1 -> tp 3 fn 1 fp 1 tn 1
    m = binary_metrics(y, s)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["balanced_accuracy"] == pytest.approx((3 / 4 + 1 / 2) / 2)
    assert m["mcc"] == pytest.approx((3 * 1 - 1 * 1) / np.sqrt(4 * 4 * 2 * 2))
    assert m["majority_class"] == 1 and m["majority_accuracy"] == pytest.approx(4 / 6)
    assert m["majority_balanced_accuracy"] == 0.5
    # the baseline class comes from the training labels when given
    assert binary_metrics(y, s, train_labels=np.array([0, 0, 1]))["majority_accuracy"] == pytest.approx(2 / 6)
    assert mcc(np.array([1, 1]), np.array([1, 1])) == 0.0


def test_quadrant_metrics_known_confusion() -> None:
    t = np.array([1, 1, 1, 2, 2, 3, 4, 4])
    p = np.array([1, 1, 2, 2, 3, 3, 4, 1])
    m = quadrant_metrics(t, p)
    assert m["confusion"] == [[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [1, 0, 0, 1]]
    assert m["accuracy"] == pytest.approx(5 / 8)
    # per-class F1: Q1 2*2/(3+3)=2/3, Q2 2/(2+2)=1/2, Q3 2/(2+1)=2/3, Q4 2/(1+2)=2/3
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 2 / 3 + 2 / 3) / 4)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 1 + 1 / 2) / 4)
    assert m["majority_class"] == 1 and m["majority_accuracy"] == pytest.approx(3 / 8)
    assert m["majority_macro_f1"] == pytest.approx((2 * 3 / (8 + 3)) / 4)
    assert macro_f1(t, p, (1, 2, 3, 4)) == pytest.approx(skm.f1_score(t, p, average="macro"))
    assert np.array_equal(confusion(t, p, (1, 2, 3, 4)), skm.confusion_matrix(t, p, labels=[1, 2, 3, 4]))


def test_quadrant_of_matches_runtime() -> None:
    from mer_live.live.records import quadrant_of as rt

    a = np.array([0.9, 0.9, 0.1, 0.1, 0.5, 0.49])
    v = np.array([0.9, 0.1, 0.1, 0.9, 0.5, 0.5])
    assert quadrant_of(a, v).tolist() == [rt(x, y) for x, y in zip(a, v, strict=True)] == [1, 2, 3, 4, 1, 4]


def test_regression_metrics_by_hand() -> None:
    t = np.array([0.2, 0.4, 0.6, 0.8])
    assert ccc(t, t) == pytest.approx(1.0)
    m = regression_metrics(t, t + 0.1)  # constant bias: r = 1, R2 and CCC < 1
    assert m["pearson_r"] == pytest.approx(1.0)
    assert m["rmse"] == pytest.approx(0.1) and m["mae"] == pytest.approx(0.1)
    assert m["r2"] == pytest.approx(1 - 4 * 0.01 / 0.2)
    # CCC = 2 cov / (var + var + bias^2) = 2*0.05 / (0.05 + 0.05 + 0.01)
    assert m["ccc"] == pytest.approx(0.1 / 0.11)
    assert regression_metrics(t, np.full(4, t.mean()))["r2"] == pytest.approx(0.0)
    assert np.isnan(regression_metrics(t, np.full(4, 0.5))["pearson_r"])
    assert m["r2"] == pytest.approx(skm.r2_score(t, t + 0.1))


def test_summarize_and_table() -> None:
    cont = np.array([[0.8, 0.7], [0.7, 0.2], [0.2, 0.3], [0.3, 0.8], [0.9, 0.9]])
    pred = np.array([[0.7, 0.6], [0.6, 0.4], [0.3, 0.4], [0.4, 0.6], [0.6, 0.4]])
    s = summarize(pred, continuous=cont)
    assert s["n"] == 5
    assert s["arousal"]["auc"] == 1.0 and s["arousal"]["accuracy"] == 1.0
    assert s["quadrant"]["accuracy"] == pytest.approx(4 / 5)
    assert s["valence"]["regression"]["rmse"] == pytest.approx(
        np.sqrt(np.mean((pred[:, 1] - cont[:, 1]) ** 2)))
    s4 = summarize(pred, quadrant=np.array([1, 2, 3, 4, 1]))
    assert s4["arousal"]["accuracy"] == 1.0 and "regression" not in s4["arousal"]
    table = format_table({"model A": s4}, "5 toy clips", spread={"model A": {"arousal.auc": (1.0, 0.25)}})
    lines = table.splitlines()
    assert lines[0].startswith("| model | arousal AUC") and "R²" not in lines[0]
    assert lines[2].startswith("| majority baseline | 0.500")
    assert "| model A | 1.000 ± 0.250 |" in table
    assert table.rstrip().endswith("How measured: 5 toy clips")
    with pytest.raises(ValueError):
        summarize(np.zeros(3))


def test_aggregate_windows_and_fold_spread() -> None:
    wp = np.array([[0.2, 0.4], [0.4, 0.6], [1.0, 0.0]])
    agg = aggregate_windows(wp, np.array([0, 0, 2]), 3)
    assert agg[0].tolist() == pytest.approx([0.3, 0.5])
    assert np.isnan(agg[1]).all() and agg[2].tolist() == [1, 0]
    sp = fold_spread([{"a": {"auc": 0.6}}, {"a": {"auc": 0.8}}], ["a.auc"])
    assert sp["a.auc"] == pytest.approx((0.7, 0.1))


def test_plots_write_real_pngs(tmp_path) -> None:
    import matplotlib.image as mpimg

    from train.plots import av_scatter_png, confusion_png, curves_png

    rng = np.random.default_rng(0)
    paths = [
        confusion_png([[5, 1, 0, 0], [1, 4, 1, 0], [0, 0, 6, 0], [2, 0, 0, 3]], tmp_path / "cm.png"),
        curves_png({"train_loss": [1.0, 0.6, 0.4], "val_loss": [1.1, 0.8, 0.7], "val_auc": [0.6, 0.7, 0.8]},
                   tmp_path / "sub" / "curves.png"),
        av_scatter_png(rng.random((20, 2)), tmp_path / "av.png", true=rng.random((20, 2)),
                       quadrant=rng.integers(1, 5, 20)),
    ]
    for p in paths:
        img = mpimg.imread(p)
        assert img.ndim == 3 and img.shape[0] > 100 and img.std() > 0.01  # drawn, not blank
