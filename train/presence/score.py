"""Scoring held-out items as the runtime does: the exported graph on 0.1-s hops, the live silence
rule (``mer_live.common.silence``), and transition streams (music -> not-music -> music).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mer_live.common import silence

from .data import Item
from .net import SR


def stream_probs(
    pm: Any, x: np.ndarray, hop_s: float = 0.1, batch: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """``(probs [n], t [n])``: ``pm.predict`` over the runtime's windows of ``x`` (each ends on a
    hop boundary, t = its end in seconds)."""
    from mer_live.common.framing import frame_windows

    x = np.asarray(x, np.float32)
    w, hop = pm.window_samples, int(round(hop_s * SR))
    ends = frame_windows(x, w, hop)[0] if len(x) >= w else np.zeros(0, np.int64)
    out = np.empty(len(ends), np.float32)
    for i in range(0, len(ends), batch):
        e = ends[i : i + batch]
        idx = e[:, None] - w + np.arange(w)[None, :]
        out[i : i + batch] = pm.predict(x[idx])
    return out, ends / SR


def silent_flags(x: np.ndarray, ends: np.ndarray, hop: int) -> np.ndarray:
    """The pipeline's silence flag at each window end, at its default thresholds, with hops of
    ``hop`` samples (``mer_live.common.silence``, the live rule)."""
    return silence.silent_flags(x, ends, SR, hop_s=hop / SR)


@dataclass
class Scored:
    """One test recording's out-of-fold probabilities (0.1-s hop) and silence flags."""

    kind: str
    name: str
    label: int
    fold: int
    probs: np.ndarray
    silent: np.ndarray
    group: str = ""
    window_s: float = 2.0  #: the model's window: the first probability is at this time


@dataclass
class Transition:
    """A stream music A -> negative -> music B (``seg_s`` each), out-of-fold probabilities."""

    neg_kind: str
    fold: int
    probs: np.ndarray
    silent: np.ndarray
    seg_s: float
    window_s: float = 2.0  #: the model's window: the first probability is at this time


def score_fold(
    pm: Any,
    test: Sequence[Item],
    fold: int,
    n_transitions: int,
    seg_s: float = 20.0,
    seed: int = 0,
    progress: bool = True,
) -> tuple[list[Scored], list[Transition]]:
    """Every test item's stream probabilities, and ``n_transitions`` music -> X -> music streams
    built from this fold's test items (X: speech, crowd, applause, tuning, line check)."""
    from tqdm.auto import tqdm

    hop = int(0.1 * SR)
    scored = []
    for it in tqdm(test, desc=f"score fold {fold}", unit="item", disable=not progress, leave=False):
        x = it.wave()
        p, t = stream_probs(pm, x)
        scored.append(
            Scored(
                it.kind,
                it.name,
                it.label,
                fold,
                p.astype(np.float16),
                silent_flags(x, (t * SR).astype(int), hop),
                it.group,
                pm.window_samples / SR,
            )
        )
    trans = []
    for k, x in transition_streams(test, fold, n_transitions, seed, seg_s):
        p, t = stream_probs(pm, x)
        trans.append(
            Transition(
                k,
                fold,
                p.astype(np.float16),
                silent_flags(x, (t * SR).astype(int), hop),
                seg_s,
                pm.window_samples / SR,
            )
        )
    return scored, trans


def transition_streams(
    test: Sequence[Any], fold: int, n: int, seed: int = 0, seg_s: float = 20.0
) -> Iterator[tuple[str, np.ndarray]]:
    """A fold's transition streams: music, then talk/crowd/applause/a tuning/a line check at the
    music's level -6..+3 dB, then music again, ``seg_s`` each; (the middle part's kind, audio).
    One seeded draw, so the scoring and the context head's tool (``context.transition_audio``)
    rebuild the same streams."""
    from ..negatives import _rms

    rng = np.random.default_rng([seed, fold])
    music = [i for i in test if i.kind in ("4q", "4q-stage", "emopia")]
    negs = [i for i in test if i.kind in ("speech", "crowd", "applause", "tuning", "line_check")]
    m_ = int(seg_s * SR)
    for j in range(n if music and negs else 0):
        a, b = music[rng.integers(len(music))], music[rng.integers(len(music))]
        kinds = sorted({i.kind for i in negs})
        k = kinds[j % len(kinds)]
        pool = [i for i in negs if i.kind == k]
        m = pool[rng.integers(len(pool))]
        parts = []
        for it in (a, m, b):
            y = it.wave()[:m_]
            parts.append(np.pad(y, (0, m_ - len(y))))
        ref = _rms(parts[0])
        parts[1] = parts[1] * (ref / max(_rms(parts[1]), 1e-9) * 10 ** (rng.uniform(-6, 3) / 20))
        parts[2] = parts[2] * (ref / max(_rms(parts[2]), 1e-9))
        yield k, np.concatenate(parts).astype(np.float32)
