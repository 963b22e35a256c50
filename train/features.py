"""Hand-crafted clip-level audio features in numpy: the classic yardstick for the deep models.

Spectral (centroid, bandwidth, roll-off, flatness, flux, MFCC means/stds, octave-band contrast),
rhythm (onset-strength statistics, tempo from the onset envelope's autocorrelation, pulse
clarity), tonal (chroma means/stds, key clarity and a major/minor mode estimate from
Krumhansl-Kessler key profiles), loudness/dynamics (frame RMS statistics, low-energy ratio) and
zero-crossing rate. Written in numpy/scipy rather than librosa to keep the training extra small;
the definitions follow the usual MIR ones (Tzanetakis & Cook 2002; Jiang et al. 2002 for contrast).
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

N_FFT = 2048
HOP = 512
N_MELS = 40
N_MFCC = 13
EPS = 1e-10
CONTRAST_EDGES = (0, 200, 400, 800, 1600, 3200, 6400)  # Hz; the last band runs to Nyquist

# Krumhansl-Kessler key profiles (C major / C minor), rotated for the other keys.
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10 ** (np.asarray(m) / 2595.0) - 1.0)


@functools.lru_cache(maxsize=8)
def mel_filterbank(sr: int, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """``[n_mels, n_fft//2+1]`` triangular filters (HTK mel scale), area-normalised."""
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    pts = _mel_to_hz(np.linspace(_hz_to_mel(30.0), _hz_to_mel(min(sr / 2, 11000.0)), n_mels + 2))
    fb = np.zeros((n_mels, len(freqs)))
    for i in range(n_mels):
        lo, c, hi = pts[i], pts[i + 1], pts[i + 2]
        fb[i] = np.clip(np.minimum((freqs - lo) / (c - lo), (hi - freqs) / (hi - c)), 0, None)
        fb[i] *= 2.0 / (hi - lo)
    return fb


@functools.lru_cache(maxsize=8)
def chroma_map(sr: int, n_fft: int = N_FFT) -> np.ndarray:
    """``[12, n_fft//2+1]`` 0/1 map from FFT bins (65 Hz..2.1 kHz) to pitch classes (0 = C)."""
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    m = np.zeros((12, len(freqs)))
    ok = (freqs >= 65.0) & (freqs <= 2100.0)
    pc = np.round(12 * np.log2(freqs[ok] / 440.0) + 69).astype(int) % 12
    m[pc, np.nonzero(ok)[0]] = 1.0
    return m


def _dct_ii(x: np.ndarray, n: int) -> np.ndarray:
    """Orthonormal DCT-II along axis 0, first ``n`` coefficients."""
    k = x.shape[0]
    basis = np.cos(np.pi / k * (np.arange(k)[None, :] + 0.5) * np.arange(n)[:, None])
    basis *= np.sqrt(2.0 / k)
    basis[0] /= np.sqrt(2.0)
    return basis @ x


def stft_mag(x: np.ndarray, n_fft: int = N_FFT, hop: int = HOP) -> np.ndarray:
    """``[n_fft//2+1, frames]`` magnitude of a Hann-windowed STFT (no centring; short input is padded)."""
    x = np.asarray(x, np.float64)
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]
    return np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1)).T


def _stats(name: str, v: np.ndarray, out: dict[str, float]) -> None:
    out[f"{name}_mean"] = float(np.mean(v))
    out[f"{name}_std"] = float(np.std(v))


def onset_envelope(logmel: np.ndarray) -> np.ndarray:
    """Onset strength per frame: summed positive change of the log-mel spectrum (spectral flux)."""
    d = np.diff(logmel, axis=1)
    return np.concatenate([[0.0], np.maximum(d, 0).mean(axis=0)])


def tempo_estimate(onset: np.ndarray, frame_rate: float) -> tuple[float, float]:
    """(tempo in BPM, pulse clarity): the onset autocorrelation's peak in 40..200 BPM, weighted by a
    log-normal prior centred at 120 BPM; clarity is that peak's normalised autocorrelation."""
    o = onset - onset.mean()
    if len(o) < 8 or np.allclose(o, 0):
        return 0.0, 0.0
    n = 1 << int(np.ceil(np.log2(2 * len(o))))
    f = np.fft.rfft(o, n)
    ac = np.fft.irfft(f * np.conj(f), n)[: len(o)]
    ac = ac / (ac[0] + EPS)
    lags = np.arange(len(ac))
    with np.errstate(divide="ignore"):
        bpm = 60.0 * frame_rate / lags
    ok = (bpm >= 40) & (bpm <= 200)
    if not ok.any():
        return 0.0, 0.0
    prior = np.exp(-0.5 * (np.log2(bpm[ok] / 120.0) / 1.0) ** 2)
    lag = int(lags[ok][int(np.argmax(ac[ok] * prior))])
    # parabolic interpolation between lags: frame rates give coarse BPM steps otherwise
    frac = 0.0
    if 0 < lag < len(ac) - 1:
        a, b, c = ac[lag - 1], ac[lag], ac[lag + 1]
        den = a - 2 * b + c
        frac = float(np.clip(0.5 * (a - c) / den, -0.5, 0.5)) if den < 0 else 0.0
    return float(60.0 * frame_rate / (lag + frac)), float(ac[lag])


def clip_features(x: np.ndarray, sr: int) -> dict[str, float]:
    """Named clip-level features of mono audio ``x`` at ``sr`` (see the module docstring)."""
    x = np.asarray(x, np.float64)
    mag = stft_mag(x)
    power = mag**2
    freqs = np.fft.rfftfreq(N_FFT, 1 / sr)
    total = power.sum(axis=0) + EPS
    out: dict[str, float] = {}

    # spectral shape
    centroid = (freqs[:, None] * power).sum(axis=0) / total
    bandwidth = np.sqrt(((freqs[:, None] - centroid[None, :]) ** 2 * power).sum(axis=0) / total)
    cum = np.cumsum(power, axis=0)
    rolloff = freqs[np.argmax(cum >= 0.85 * cum[-1:], axis=0)]
    flatness = np.exp(np.mean(np.log(power + EPS), axis=0)) / (np.mean(power, axis=0) + EPS)
    lognorm = np.log(mag + EPS)
    flux = np.sqrt((np.maximum(np.diff(mag / (mag.sum(axis=0, keepdims=True) + EPS), axis=1), 0) ** 2).sum(0))
    _stats("centroid_khz", centroid / 1000, out)
    _stats("bandwidth_khz", bandwidth / 1000, out)
    _stats("rolloff_khz", rolloff / 1000, out)
    _stats("flatness", flatness, out)
    _stats("flux", flux, out)

    # MFCC
    melspec = mel_filterbank(sr) @ power
    logmel = np.log(melspec + EPS)
    mfcc = _dct_ii(logmel, N_MFCC)
    for i in range(N_MFCC):
        _stats(f"mfcc{i}", mfcc[i], out)

    # octave-band spectral contrast (peak vs valley, in log magnitude)
    edges = [*CONTRAST_EDGES, sr / 2]
    for b in range(len(edges) - 1):
        sel = (freqs >= edges[b]) & (freqs < edges[b + 1])
        band = np.sort(lognorm[sel], axis=0)
        q = max(1, int(round(0.2 * band.shape[0])))
        contrast = band[-q:].mean(axis=0) - band[:q].mean(axis=0)
        _stats(f"contrast{b}", contrast, out)

    # rhythm
    onset = onset_envelope(logmel)
    _stats("onset", onset, out)
    out["onset_p90"] = float(np.percentile(onset, 90))
    tempo, clarity = tempo_estimate(onset, sr / HOP)
    out["tempo_bpm"] = tempo
    out["pulse_clarity"] = clarity

    # tonal
    chroma = chroma_map(sr) @ power
    chroma = chroma / (chroma.sum(axis=0, keepdims=True) + EPS)
    for i in range(12):
        _stats(f"chroma{i}", chroma[i], out)
    cm = chroma.mean(axis=1)
    maj = [np.corrcoef(cm, np.roll(KK_MAJOR, k))[0, 1] for k in range(12)] if cm.std() > 0 else [0.0] * 12
    mnr = [np.corrcoef(cm, np.roll(KK_MINOR, k))[0, 1] for k in range(12)] if cm.std() > 0 else [0.0] * 12
    out["key_clarity"] = float(max(max(maj), max(mnr)))
    out["mode_major_minus_minor"] = float(max(maj) - max(mnr))
    out["mode_major"] = float(max(maj) >= max(mnr))

    # loudness / dynamics
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(x, (0, max(0, N_FFT - len(x)))), N_FFT)[::HOP]
    rms = np.sqrt(np.mean(frames**2, axis=1))
    rms_db = 20 * np.log10(rms + 1e-6)
    _stats("rms_db", rms_db, out)
    for p in (10, 50, 90):
        out[f"rms_db_p{p}"] = float(np.percentile(rms_db, p))
    out["dynamic_range_db"] = out["rms_db_p90"] - out["rms_db_p10"]
    out["low_energy_ratio"] = float(np.mean(rms < rms.mean()))
    zc = np.mean(np.abs(np.diff(np.signbit(frames), axis=1)), axis=1)
    _stats("zcr", zc, out)
    return out


def feature_names(sr: int = 22050) -> list[str]:
    return list(clip_features(np.random.default_rng(0).standard_normal(sr), sr))


def feature_matrix(
    audio: Sequence[np.ndarray], sr: int, ids: Sequence[str] | None = None, cache_dir: Path | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, list[str]]:
    """``(X [n_clips, n_features] float64, names)``; cached as one .npz keyed by ids, lengths and sr."""
    from tqdm.auto import tqdm

    names = feature_names(sr)
    cache = None
    if cache_dir is not None and ids is not None:
        h = hashlib.sha1(repr((sr, N_FFT, HOP, names, list(ids), [len(a) for a in audio])).encode())
        cache = Path(cache_dir) / f"features-{sr}-{h.hexdigest()[:12]}.npz"
        if cache.is_file():
            with np.load(cache) as z:
                return z["X"], names
    X = np.zeros((len(audio), len(names)))
    for i, a in enumerate(tqdm(audio, desc="features", unit="clip", disable=not progress, leave=False)):
        f = clip_features(a, sr)
        X[i] = [f[n] for n in names]
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, X=X)
    return X, names
