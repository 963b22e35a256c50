"""MIDI datasets rendered to audio: EMOPIA's piano clips (quadrant labels) as extra training data.

``../shared/data/emopia`` holds ``midis.zip`` and ``train.csv`` / ``val.csv`` (``fname,label``,
label Q1..Q4). Each listed clip is rendered once with FluidSynth and a piano SoundFont from
``../shared/data/soundfonts`` into ``<cache>/emopia-render/<fname>.wav`` (16-bit, mono), and then
decoded through the same clean-up chain as every other clip (``cache.load_audio``). Only ever
added to the TRAINING side of a fold: the 4Q test clips stay the judge.
"""

from __future__ import annotations

import csv
import logging
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import soundfile as sf

from .data import Clip, DataError, shared_data_dir

log = logging.getLogger(__name__)

RENDER_RATE = 22050


def render_midi(mid: Path, sf2: Path, out: Path, sr: int = RENDER_RATE) -> Path:
    """``mid`` rendered by FluidSynth with ``sf2`` to a mono 16-bit WAV at ``out`` (kept if present)."""
    if out.is_file():
        return out
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise DataError("fluidsynth is not installed (apt-get install fluidsynth)")
    tmp = out.with_suffix(".tmp.wav")
    subprocess.run([exe, "-ni", "-q", "-g", "0.8", "-r", str(sr), "-F", str(tmp), str(sf2), str(mid)],
                   check=True, capture_output=True, timeout=120)
    x, fsr = sf.read(str(tmp), dtype="float32", always_2d=True)
    sf.write(str(out), x.mean(axis=1), fsr, subtype="PCM_16")
    tmp.unlink(missing_ok=True)
    return out


def emopia_song(fname: str) -> str:
    """``Q2_L3_TadjSQQ0_0`` -> ``L3_TadjSQQ0``: the source video, which groups a song's clips."""
    parts = fname.split("_")
    return "_".join(parts[1:-1]) if len(parts) > 2 else fname


def load_emopia(cache_dir: Path, root: Path | None = None, sf2: Path | None = None,
                limit: int | None = None, seed: int = 0) -> list[Clip]:
    """EMOPIA's labelled clips (train + val lists), rendered to audio; ``limit`` draws a random
    quadrant-balanced subset. Clips of one song share an artist name, so they stay together."""
    root = Path(root) if root is not None else shared_data_dir() / "emopia"
    sf2 = Path(sf2) if sf2 is not None else shared_data_dir() / "soundfonts" / "J800_Piano.sf2"
    if not (root / "midis.zip").is_file():
        raise DataError(f"EMOPIA MIDI not found: {root / 'midis.zip'}")
    labels: dict[str, int] = {}
    for name in ("train.csv", "val.csv"):
        with open(root / name, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                labels[row["fname"].strip()] = int(row["label"].strip().lstrip("Qq"))
    names = sorted(labels)
    if limit is not None and limit < len(names):
        rng = np.random.default_rng(seed)
        per_q = -(-limit // 4)
        names = sorted(n for q in (1, 2, 3, 4)
                       for n in rng.permutation([m for m in names if labels[m] == q])[:per_q].tolist())
    out_dir = Path(cache_dir) / "emopia-render"
    out_dir.mkdir(parents=True, exist_ok=True)
    clips = []
    with zipfile.ZipFile(root / "midis.zip") as z:
        members = {Path(m).stem: m for m in z.namelist() if m.endswith(".mid")}
        for n in names:
            if n not in members:
                continue
            wav = out_dir / f"{n}.wav"
            if not wav.is_file():
                mid = out_dir / f"{n}.mid"
                mid.write_bytes(z.read(members[n]))
                try:
                    render_midi(mid, sf2, wav)
                except (subprocess.SubprocessError, OSError, RuntimeError) as e:
                    log.warning("EMOPIA %s: cannot render (%s); skipped", n, e)
                    continue
                finally:
                    mid.unlink(missing_ok=True)
            clips.append(Clip(id=f"emopia-{n}", artist=f"emopia:{emopia_song(n)}", path=wav,
                              quadrant=labels[n], dataset="emopia", tags=("EMOPIA piano",)))
    log.info("EMOPIA: %d clips rendered with %s", len(clips), sf2.name)
    return clips
