"""smoothing.py: attack/release step responses, dt-awareness, hold vs neutral, bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mer_live.live.smoothing import Smoother


def _run(s: Smoother, target, seconds: float, dt: float = 0.1, silent: bool = False) -> np.ndarray:
    y = s.value
    for _ in range(int(round(seconds / dt))):
        y = s.update(np.asarray(target, float), dt, silent)
    return y


def test_first_trusted_value_is_adopted():
    s = Smoother(0.3, 1.0)
    np.testing.assert_allclose(s.update(np.array([0.9, 0.2]), 0.1), [0.9, 0.2])


def test_attack_faster_than_release():
    s = Smoother(attack_s=0.2, release_s=2.0)
    s.update(np.array([0.2, 0.8]), 0.1)
    y = _run(s, [0.8, 0.2], 0.2)  # one attack time constant up (arousal), one ... down (valence)
    # rising arousal covered 1 - e^-1 = 63 % of 0.6; falling valence only 1 - e^-0.1 = 9.5 %
    assert y[0] == pytest.approx(0.2 + 0.6 * (1 - math.exp(-1)), abs=1e-9)
    assert y[1] == pytest.approx(0.8 - 0.6 * (1 - math.exp(-0.1)), abs=1e-9)


def test_dt_aware_same_result_for_any_hop():
    a, b = Smoother(0.5, 1.5), Smoother(0.5, 1.5)
    for s in (a, b):
        s.update(np.array([0.1, 0.9]), 0.1)
    ya = _run(a, [0.9, 0.1], 1.0, dt=0.05)
    yb = _run(b, [0.9, 0.1], 1.0, dt=0.25)
    np.testing.assert_allclose(ya, yb, atol=1e-12)


def test_hold_on_silence():
    s = Smoother(0.1, 0.1, on_silence="hold")
    s.update(np.array([0.9, 0.1]), 0.1)
    y = _run(s, [0.0, 1.0], 10.0, silent=True)
    np.testing.assert_allclose(y, [0.9, 0.1])


def test_neutral_drift_on_silence():
    s = Smoother(0.1, 0.1, on_silence="neutral", neutral_s=2.0)
    s.update(np.array([0.9, 0.1]), 0.1)
    y = _run(s, [0.0, 1.0], 2.0, silent=True)
    # one time constant: 63 % of the way to 0.5, whatever the (untrusted) target says
    np.testing.assert_allclose(y, [0.5 + 0.4 * math.exp(-1), 0.5 - 0.4 * math.exp(-1)], atol=1e-9)
    y = _run(s, [0.0, 1.0], 30.0, silent=True)
    np.testing.assert_allclose(y, [0.5, 0.5], atol=1e-5)


def test_nan_target_is_untrusted_and_output_stays_finite():
    s = Smoother(0.3, 1.0, on_silence="hold")
    s.update(np.array([0.7, 0.3]), 0.1)
    y = s.update(np.array([np.nan, np.inf]), 0.1)
    np.testing.assert_allclose(y, [0.7, 0.3])
    assert np.all(np.isfinite(s.update(np.array([0.5, 0.5]), float("nan"))))


def test_set_times_takes_effect():
    s = Smoother(10.0, 10.0)
    s.update(np.array([0.0, 0.0]), 0.1)
    s.set_times(0.0, 0.0)
    np.testing.assert_allclose(s.update(np.array([1.0, 0.5]), 0.1), [1.0, 0.5])
    with pytest.raises(ValueError, match="attack_s"):
        s.set_times(-1.0, 1.0)
    with pytest.raises(ValueError, match="on_silence"):
        Smoother(on_silence="freeze")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(allow_nan=True, allow_infinity=True, width=32),
            st.floats(allow_nan=True, allow_infinity=True, width=32),
            st.one_of(st.floats(min_value=-1, max_value=100), st.just(float("nan"))),
            st.booleans(),
        ),
        min_size=1,
        max_size=30,
    ),
    st.sampled_from(["hold", "neutral"]),
)
def test_output_always_bounded_and_finite(steps, mode):
    s = Smoother(0.3, 1.0, on_silence=mode, neutral_s=1.0)
    for a, v, dt, silent in steps:
        y = s.update(np.array([a, v]), dt, silent)
        assert np.all(np.isfinite(y)) and np.all((y >= 0) & (y <= 1))


class _ArraySmoother:
    """The smoother's numpy version from before issue #28 (the reference for the float version)."""

    def __init__(self, attack_s: float, release_s: float, on_silence: str, neutral_s: float) -> None:
        from mer_live.live.smoothing import _alpha

        self.alpha, self.on_silence, self.neutral_s = _alpha, on_silence, neutral_s
        self.attack_s, self.release_s = attack_s, release_s
        self._y = None

    def update(self, target, dt: float, silent: bool = False) -> np.ndarray:
        dt = float(dt) if math.isfinite(dt) and dt > 0 else 0.0
        t = np.asarray(target, dtype=np.float64).reshape(-1)
        trusted = not silent and bool(np.all(np.isfinite(t)))
        if not trusted:
            if self._y is None:
                return np.full(2, 0.5)
            if self.on_silence == "neutral":
                self._y = self._y + self.alpha(dt, self.neutral_s) * (0.5 - self._y)
            return self._out()
        t = np.clip(t, 0.0, 1.0)
        if self._y is None:
            self._y = t.copy()
            return self._out()
        a = np.where(t > self._y, self.alpha(dt, self.attack_s), self.alpha(dt, self.release_s))
        self._y = self._y + a * (t - self._y)
        return self._out()

    def _out(self) -> np.ndarray:
        self._y = np.clip(np.nan_to_num(self._y, nan=0.5), 0.0, 1.0)
        return self._y.copy()


@pytest.mark.parametrize("on_silence", ["hold", "neutral"])
@pytest.mark.parametrize("times", [(0.3, 1.0), (0.0, 0.0), (0.05, 4.0)])
def test_float_smoother_gives_the_array_versions_bits(on_silence: str, times: tuple[float, float]) -> None:
    """The smoother runs on Python floats (issue #28): bit for bit the numpy version's output over
    music, silence, NaN and out-of-range targets, odd dt and a reset."""
    rng = np.random.default_rng(len(on_silence))
    new, old = Smoother(*times, on_silence=on_silence), _ArraySmoother(*times, on_silence, 4.0)
    for i in range(3000):
        target = rng.uniform(-0.3, 1.3, 2)
        if i % 17 == 0:
            target[i % 2] = [math.nan, math.inf, -math.inf][i % 3]
        dt = float(rng.choice([0.1, 0.0, 0.0234, -1.0, math.nan, 2.5]))
        silent = bool(rng.random() < 0.1)
        got, want = new.update(target, dt, silent), old.update(target, dt, silent)
        assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want), i
        assert np.array_equal(new.value, want if old._y is not None else np.full(2, 0.5))
        if i == 1500:
            new.reset()
            old._y = None
