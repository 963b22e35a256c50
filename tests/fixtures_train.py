"""A tiny generated dataset for the training tests: synthetic clips + a manifest, written to a tmp dir.

Louder, brighter, faster clips get higher arousal; major-ish (consonant) chords higher valence,
so a learner can find something. Files are written at 44100 Hz stereo / 22050 Hz mono so decode,
downmix and resampling all run. Nothing is written into the repository.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf


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


def make_fixture_dataset(
    root: Path, n: int = 12, seconds: float = 3.0, n_artists: int = 6, seed: int = 0
) -> Path:
    """Write ``n`` clips and ``root/manifest.csv`` (file, artist, arousal, valence); return the CSV path."""
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
        w = csv.DictWriter(f, fieldnames=["file", "artist", "arousal", "valence"])
        w.writeheader()
        w.writerows(rows)
    return csv_path
