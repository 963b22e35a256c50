"""levels.py: downmix, NaN/inf clean-up, dBFS levels, clipping, DC blocking."""

from __future__ import annotations

import numpy as np
import pytest

from mer_live.common.levels import (
    SILENCE_DB,
    DCBlocker,
    db_to_gain,
    is_clipping,
    peak_db,
    rms_db,
    sanitize,
    to_mono,
)


def test_to_mono_mean_and_pick():
    block = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5]], np.float32)
    np.testing.assert_allclose(to_mono(block, None), [0.5, 0.5])
    np.testing.assert_allclose(to_mono(block, (1,)), [1.0, 0.0])
    np.testing.assert_allclose(to_mono(block, (2, 3)), [0.25, 0.75])
    assert to_mono(block, None).dtype == np.float32
    np.testing.assert_allclose(to_mono(np.array([0.1, 0.2]), None), [0.1, 0.2])


def test_stereo_downmix_is_bit_for_bit_the_mean():
    x = np.random.default_rng(0).standard_normal((4801, 2)).astype(np.float32)
    y = to_mono(x, None)
    assert y.dtype == np.float32 and np.array_equal(y, x.mean(axis=1, dtype=np.float32))


def test_to_mono_bad_channel_is_one_line_error():
    with pytest.raises(ValueError, match=r"channel\(s\) \[4\].*3 channel") as ei:
        to_mono(np.zeros((4, 3)), (1, 4))
    assert "\n" not in str(ei.value)
    with pytest.raises(ValueError, match="mono"):
        to_mono(np.zeros(4), (2,))


def test_sanitize_counts_and_zeroes_nan_inf():
    x = np.array([0.1, np.nan, np.inf, -np.inf, 0.2], np.float32)
    y, n = sanitize(x)
    assert n == 3
    np.testing.assert_array_equal(y, np.array([0.1, 0, 0, 0, 0.2], np.float32))
    assert np.isnan(x[1]), "input must not be modified"
    y2, n2 = sanitize(np.ones((3, 2)))
    assert n2 == 0 and y2.dtype == np.float32


def test_levels_in_dbfs():
    t = np.arange(48000) / 48000
    sine = np.sin(2 * np.pi * 1000 * t)
    assert rms_db(sine) == pytest.approx(-3.0103, abs=0.01)
    assert peak_db(sine) == pytest.approx(0.0, abs=0.01)
    assert rms_db(0.1 * sine) == pytest.approx(-23.0103, abs=0.01)
    assert rms_db(np.zeros(100)) == SILENCE_DB
    assert peak_db(np.zeros(100)) == SILENCE_DB
    assert rms_db(np.zeros(0)) == SILENCE_DB
    assert rms_db(np.full(10, 1e-9)) == SILENCE_DB  # floored, still finite


def test_clipping_threshold():
    assert is_clipping(np.array([0.0, 0.999]))
    assert is_clipping(np.array([-1.0]))
    assert not is_clipping(np.array([0.5, -0.9]))
    assert is_clipping(np.array([0.5]), threshold_db=-6.1)
    assert db_to_gain(0.0) == 1.0
    assert db_to_gain(-20.0) == pytest.approx(0.1)
    assert db_to_gain(6.0206) == pytest.approx(2.0, rel=1e-4)


def _reference_hp(x: np.ndarray, r: float) -> np.ndarray:
    y = np.zeros_like(x, dtype=np.float64)
    xp = yp = 0.0
    for i, v in enumerate(x):
        yp = v - xp + r * yp
        xp = v
        y[i] = yp
    return y


def test_dc_blocker_matches_recursion_across_blocks():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(5000) * 0.1 + 0.3
    dc = DCBlocker(16000, 10.0)
    out = np.concatenate([dc.process(x[a:b]) for a, b in [(0, 1), (1, 700), (700, 3100), (3100, 5000)]])
    np.testing.assert_allclose(out, _reference_hp(x, dc.r), atol=1e-5)


@pytest.mark.parametrize("sr,cutoff", [(22050, 10.0), (8000, 200.0), (48000, 0.5)])
def test_dc_blocker_matches_recursion_over_a_long_file(sr, cutoff):
    """A whole file in one call (mer-analyze) spans many long segments; still the recursion."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal(100_000) * 0.3 + 0.2
    dc = DCBlocker(sr, cutoff)
    np.testing.assert_allclose(dc.process(x), _reference_hp(x, dc.r), atol=1e-5)


def test_dc_offset_never_reaches_the_model():
    sr = 16000
    t = np.arange(sr * 3) / sr
    x = 0.2 * np.sin(2 * np.pi * 440 * t) + 0.5  # a large DC offset
    dc = DCBlocker(sr)
    y = np.concatenate([dc.process(x[i : i + 1024]) for i in range(0, x.size, 1024)])
    tail = y[sr:]  # after the filter settles (time constant ~16 ms)
    assert abs(float(tail.mean())) < 1e-3
    assert rms_db(tail) == pytest.approx(rms_db(0.2 * np.sin(2 * np.pi * 440 * t)), abs=0.1)
    dc.reset()
    assert dc.process(np.zeros(10)).max() == 0.0


def test_dc_blocker_rejects_bad_cutoff():
    with pytest.raises(ValueError, match="cut-off"):
        DCBlocker(16000, 9000.0)
