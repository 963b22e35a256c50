"""How audio becomes model windows, shared by the live pipeline, ``mer-analyze`` and training.

Plain functions on whole arrays: the clean-up chain (``prepare_offline``) and the framing
(``frame_windows``) that the live path applies block by block (``mer_live.live.stream``). Keeping them
in one place is what makes a file analysed offline, the same file pushed through ``mer-live
--input``, and the training crops agree (no train/serve skew).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import soxr

from mer_live.common.levels import DCBlocker, db_to_gain, sanitize, to_mono

#: soxr quality of every resampling to the model rate (live, files, training)
RESAMPLE_QUALITY = "HQ"


class CleanUp(Protocol):
    """The settings the clean-up chain reads (``PipelineConfig`` has them)."""

    gain_db: float
    pick: tuple[int, ...] | None
    dc_cutoff_hz: float


def hop_samples(hop_s: float, samplerate: int) -> int:
    """Hop length in samples at ``samplerate`` (at least 1)."""
    return max(1, int(round(hop_s * samplerate)))


def frame_windows(audio: np.ndarray, window: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame model-rate mono audio the way the live pipeline does: windows ending at k * hop.

    Returns ``(ends, windows)``: ``ends`` are the end positions in samples (int64; divide by the
    model rate for seconds), one per window, for every ``k * hop`` with ``window <= k * hop <=
    len(audio)``; ``windows`` is a read-only strided VIEW ``[n, window]`` (no copy: an hour of
    audio would not fit in memory as copies; slice it into batches for ``Model.predict``).
    Audio shorter than one window gives a single window, zero-padded on the left, ending at
    ``len(audio)``; empty audio gives no windows.
    """
    x = np.ascontiguousarray(np.asarray(audio, dtype=np.float32).reshape(-1))
    if window < 1 or hop < 1:
        raise ValueError("window and hop must be >= 1")
    n = x.shape[0]
    if n == 0:
        return np.zeros(0, np.int64), np.zeros((0, window), np.float32)
    if n < window:
        w = np.zeros((1, window), np.float32)
        w[0, window - n :] = x
        return np.array([n], np.int64), w
    k0 = -(-window // hop)  # first k with k * hop >= window
    k1 = n // hop
    if k1 < k0:  # no hop boundary between window and n: the one full window ending at n
        return np.array([n], np.int64), x[None, n - window :]
    ends = np.arange(k0, k1 + 1, dtype=np.int64) * hop
    start0 = int(ends[0]) - window
    view = np.lib.stride_tricks.as_strided(
        x[start0:], shape=(ends.shape[0], window), strides=(hop * x.strides[0], x.strides[0]), writeable=False
    )
    return ends, view


def prepare_offline(audio: np.ndarray, samplerate: int, model_rate: int, config: CleanUp) -> np.ndarray:
    """The pipeline's clean-up chain on a whole array: the model-rate mono audio it would see.

    ``audio`` is ``[frames]`` or ``[frames, channels]``. Applies sanitize, pick/downmix, gain, DC
    blocker and ``soxr.resample`` (HQ) in the same order as the live path, so offline analysis
    and the pipeline agree (the streaming resampler equals ``soxr.resample`` exactly).
    """
    x, _ = sanitize(audio)
    mono = to_mono(x, config.pick) * np.float32(db_to_gain(config.gain_db))
    if config.dc_cutoff_hz > 0:
        mono = DCBlocker(samplerate, config.dc_cutoff_hz).process(mono)
    if samplerate == model_rate:
        return np.ascontiguousarray(mono, dtype=np.float32)
    y = soxr.resample(mono, samplerate, model_rate, quality=RESAMPLE_QUALITY)
    return y.astype(np.float32, copy=False)
