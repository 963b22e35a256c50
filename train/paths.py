"""Where training reads and writes, in one place: the repository, its models and results, the data, the cache.

Every script of ``train/`` (and ``train/experiments/``, ``bench/``) takes its folders from here, so
a cache or a results folder cannot drift apart between the command that writes it and the one
that reads it.

* ``ROOT``: the repository (``train/`` sits in it); ``MODELS`` = ``ROOT/models`` (the shipped ONNX
  files and cards), ``RESULTS`` = ``ROOT/train/experiments/results`` (the CV results the cards and
  docs cite, kept where they were committed), ``DOCS`` = ``ROOT/docs``.
* the cache (decoded audio, spectrograms, stage and room versions, teacher features, fold models:
  large, regenerable, git-ignored): ``$MER_CACHE`` when set, else **``ROOT/cache``**, the one
  default (``mer-train``'s ``--cache`` defaults to it too).
* the labelled data: ``$MER_DATA`` when set, else ``../shared/data`` beside the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
RESULTS = ROOT / "train" / "experiments" / "results"
DOCS = ROOT / "docs"
DEFAULT_CACHE = ROOT / "cache"


def cache_dir() -> Path:
    """``$MER_CACHE``, else ``ROOT/cache``: read when called, so a test or a shell may set it late."""
    env = os.environ.get("MER_CACHE")
    return Path(env) if env else DEFAULT_CACHE


def shared_data_dir() -> Path:
    """Where the labelled data lives: ``$MER_DATA`` or ``../shared/data`` beside the repository."""
    env = os.environ.get("MER_DATA")
    return Path(env) if env else ROOT.parent / "shared" / "data"


#: the cache folder at import time (the scripts' module-level default; ``cache_dir()`` reads it anew)
CACHE = cache_dir()
