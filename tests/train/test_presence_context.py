"""train.presence.context's fast gate is the runtime's gate (music_flags) hop for hop."""

from __future__ import annotations

import numpy as np
import pytest

from mer_live.inference.presence import GateConfig, music_flags
from train.presence.context import fast_flags, head_features


@pytest.mark.parametrize("gate", [(0.8, 0.35, 0.3, 0.8), (0.6, 0.2, 0.5, 1.2), (0.9, 0.5, 0.8, 1.6)])
def test_fast_flags_is_music_flags(gate) -> None:
    rng = np.random.default_rng(0)
    # runs of high and low probabilities of random lengths, with silent stretches
    p = np.repeat(rng.uniform(0, 1, 400), rng.integers(1, 15, 400)).astype(np.float32)
    silent = np.repeat(rng.uniform(0, 1, 400) < 0.05, rng.integers(1, 15, 400))[: len(p)]
    silent = np.pad(silent, (0, len(p) - len(silent)))
    want = music_flags(p, 0.1, silent, GateConfig(*gate))
    assert want.any() and not want.all()
    np.testing.assert_array_equal(fast_flags(p, silent, gate), want)


def test_head_features_shape() -> None:
    x = head_features(np.zeros((5, 6), np.float32), np.full(5, 0.5, np.float32))
    assert x.shape == (5, 10) and np.allclose(x[:, -1], 0.0)
