"""A tiny generated dataset for the training tests: synthetic clips + a manifest, written to a tmp dir.

The generator is ``train.exampleset`` (also behind ``mer-train make-example-set``); the tests'
defaults are smaller (12 clips of 3 s, 6 artists). Nothing is written into the repository.
"""

from __future__ import annotations

from pathlib import Path

from train.exampleset import make_example_set, synth_clip

__all__ = ["make_fixture_dataset", "synth_clip"]


def make_fixture_dataset(
    root: Path, n: int = 12, seconds: float = 3.0, n_artists: int = 6, seed: int = 0
) -> Path:
    """Write ``n`` clips and ``root/manifest.csv`` (file, artist, arousal, valence); return the CSV path."""
    return make_example_set(root, n=n, seconds=seconds, n_artists=n_artists, seed=seed)
