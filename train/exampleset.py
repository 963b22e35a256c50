"""A small labelled set synthesised here: a handful of clips and a manifest CSV, for trying the whole
training path (``mer-train make-example-set DIR``) without any downloaded data.

Louder, brighter, faster clips get higher arousal; major (versus minor) harmony higher valence,
so a model can learn something real in a minute. Odd clips are 44.1 kHz stereo FLAC, even ones
22.05 kHz mono WAV, so decoding, downmixing and resampling all run. The labels are the generator's
own, not listeners': numbers measured on this set say the pipeline works, not how good a model is.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

FIELDS = ["file", "artist", "arousal", "valence"]


def synth_clip(arousal: float, valence: float, seconds: float, sr: int, seed: int) -> np.ndarray:
    """Mono float32: amplitude, pulse rate and brightness rise with arousal; valence picks major/minor."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    root = 220.0 * 2 ** (rng.integers(0, 7) / 12)
    third = 2 ** ((4 if valence >= 0.5 else 3) / 12)
    tone = sum(np.sin(2 * np.pi * root * r * t + rng.uniform(0, 6)) for r in (1.0, third, 1.5))
    bright = np.sin(2 * np.pi * root * 4 * t) * arousal
    rate = 1.0 + 6.0 * arousal
    env = 0.5 + 0.5 * np.maximum(0.0, np.sin(2 * np.pi * rate * t)) ** 4
    amp = 0.05 + 0.25 * arousal
    x = amp * env * (tone / 3 + 0.5 * bright) + 0.003 * rng.standard_normal(len(t))
    return x.astype(np.float32)


def make_example_set(
    root: Path, n: int = 24, seconds: float = 4.0, n_artists: int = 8, seed: int = 0
) -> Path:
    """Write ``n`` clips under ``root/audio`` and ``root/manifest.csv`` (file, artist, arousal,
    valence; paths relative to the CSV); return the CSV's path. Clip ``i`` belongs to artist
    ``i % n_artists``, so artist-grouped folds have something to group."""
    if n < 2 or n_artists < 1 or not seconds > 0:
        raise ValueError(f"need n >= 2, n_artists >= 1, seconds > 0; got {n}, {n_artists}, {seconds}")
    root = Path(root)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        a, v = float(rng.uniform(0.05, 0.95)), float(rng.uniform(0.05, 0.95))
        if i % 2:
            sr, x = 44100, synth_clip(a, v, seconds, 44100, seed + i)
            data = np.stack([x, 0.5 * x], axis=1)
            name = f"clip{i:02d}.flac"
        else:
            sr, data = 22050, synth_clip(a, v, seconds, 22050, seed + i)
            name = f"clip{i:02d}.wav"
        sf.write(root / "audio" / name, data, sr)
        rows.append({"file": f"audio/{name}", "artist": f"artist{i % n_artists}",
                     "arousal": f"{a:.4f}", "valence": f"{v:.4f}"})
    csv_path = root / "manifest.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    return csv_path
