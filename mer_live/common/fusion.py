"""The two-rate fusion formula: the CNN's probabilities and the teacher's logits in logit space.

One home for the live estimator, ``mer-analyze`` and the training that chose the weights, so a
weight fitted in training means the same thing on stage.
"""

from __future__ import annotations

import numpy as np

#: probabilities are clipped to [EPS, 1 - EPS] before the logit
EPS = 1e-6


def logit(p: np.ndarray | float) -> np.ndarray:
    """``log(p / (1 - p))`` in float64, ``p`` clipped to [EPS, 1 - EPS]."""
    q = np.clip(np.asarray(p, np.float64), EPS, 1 - EPS)
    return np.log(q / (1 - q))


def sigmoid(z: np.ndarray | float) -> np.ndarray:
    return 1 / (1 + np.exp(-np.asarray(z, np.float64)))


def fuse(p_cnn: np.ndarray | float, z_teacher: np.ndarray | float, w: float | np.ndarray) -> np.ndarray:
    """``sigmoid((1 - w) logit(p_cnn) + w z_teacher)``; ``w`` a scalar or one per column, 0 is the
    CNN alone."""
    w = np.asarray(w, np.float64)
    return sigmoid((1 - w) * logit(p_cnn) + w * np.asarray(z_teacher, np.float64))
