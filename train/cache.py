"""Decode and resample each clip ONCE, exactly as the runtime prepares audio, and cache it.

Decode with soundfile, then the runtime's own clean-up chain ``mer_live.common.framing.prepare_offline``
with default settings: channel mean, the 10 Hz DC blocker (at the file's rate) and
``soxr.resample(x, file_sr, sr, quality="HQ")``. The live pipeline runs the same chain with
``soxr.ResampleStream`` (equal to ``soxr.resample``), and ``mer-analyze`` calls the same function,
so training and serving see the same samples (tests/test_train_export.py checks it end to end).

One ``.npy`` per clip under ``cache_dir/<dataset>-<sr>/``, named by the clip id and a hash of
(path, mtime, size, sr, the chain's settings): a changed source file gets a new entry, a stale one
is replaced. A clip that fails to decode is dropped with a one-line
warning and listed in ``AudioList.dropped``; it never stops the run.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .data import Clip

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path("cache")


def _chain_id() -> str:
    """What the cached samples depend on besides the file: a change here invalidates the cache."""
    from mer_live.common.framing import RESAMPLE_QUALITY
    from mer_live.live.pipeline import PipelineConfig

    c = PipelineConfig()
    return f"prepare_offline|dc{c.dc_cutoff_hz}|gain{c.gain_db}|{RESAMPLE_QUALITY}|soxr{soxr.__version__}"


def decode(path: Path, sr: int) -> np.ndarray:
    """Mono float32 audio of ``path`` at ``sr``: soundfile decode + the runtime's prepare_offline chain."""
    from mer_live.common.framing import prepare_offline
    from mer_live.live.pipeline import PipelineConfig

    x, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    if x.shape[0] == 0:
        raise ValueError("no samples")
    if not np.all(np.isfinite(x)):  # the runtime zeroes them too (sanitize); say so once
        log.warning("%s: %d NaN/inf samples set to 0", Path(path).name, int((~np.isfinite(x)).sum()))
    mono = prepare_offline(x, int(file_sr), int(sr), PipelineConfig())
    return np.ascontiguousarray(mono, dtype=np.float32)


class AudioList(list):
    """Audio arrays for the clips that decoded, in input order; pair them with ``.clips``.

    ``clips`` are the clips that decoded (aligned with the arrays), ``dropped`` lists
    ``(clip id, reason)`` for those that did not.
    """

    clips: list[Clip]
    dropped: list[tuple[str, str]]


def _safe(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", s)[:80]


def _key(clip: Clip, sr: int) -> str:
    st = clip.path.stat()
    raw = f"{clip.path.resolve()}|{st.st_mtime_ns}|{st.st_size}|{sr}|{_chain_id()}"
    return hashlib.sha1(raw.encode()).hexdigest()[:12]


def cache_folder(cache_dir: Path, dataset: str, sr: int) -> Path:
    return Path(cache_dir) / f"{_safe(dataset)}-{sr}"


def _save_atomic(f: Path, x: np.ndarray) -> None:
    """Write ``f`` via a temporary name private to this process and thread, so that CV runs
    filling the same cache side by side never read a half-written entry or lose a rename."""
    tmp = f.with_name(f"{f.stem}.{os.getpid()}-{threading.get_ident()}.tmp.npy")
    np.save(tmp, x)
    tmp.replace(f)


def _load_one(clip: Clip, sr: int, folder: Path | None) -> np.ndarray:
    if folder is None:
        return decode(clip.path, sr)
    key = _key(clip, sr)
    stem = _safe(clip.id)
    f = folder / f"{stem}--{key}.npy"
    if f.is_file():
        try:
            return np.load(f)
        except (OSError, ValueError):
            log.warning("cache entry %s unreadable, decoding again", f.name)
    x = decode(clip.path, sr)
    for old in folder.glob(f"{stem}--*.npy"):
        if ".tmp" not in old.name:  # another process's write in flight is not a stale entry
            old.unlink(missing_ok=True)
    _save_atomic(f, x)
    return x


def load_audio(
    clips: Sequence[Clip],
    sr: int,
    cache_dir: Path | None = DEFAULT_CACHE_DIR,
    workers: int = 2,
    progress: bool = True,
) -> AudioList:
    """Mono float32 audio at ``sr`` for each clip, decoded once and cached (``cache_dir=None``: no cache).

    Returns an ``AudioList``: the arrays of the clips that decoded, in order, with ``.clips``
    (those clips) and ``.dropped``. Use ``.clips`` downstream, not the list you passed in.
    """
    from tqdm.auto import tqdm

    if sr < 1000:
        raise ValueError(f"sample rate {sr} is too low")
    folders: dict[str, Path] = {}
    if cache_dir is not None:
        for ds in {c.dataset for c in clips}:
            folders[ds] = cache_folder(Path(cache_dir), ds, sr)
            folders[ds].mkdir(parents=True, exist_ok=True)
    results: list[np.ndarray | None] = [None] * len(clips)
    reasons: dict[int, str] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futs = {pool.submit(_load_one, c, sr, folders.get(c.dataset)): i for i, c in enumerate(clips)}
        bar = tqdm(as_completed(futs), total=len(futs), desc=f"audio @ {sr} Hz", unit="clip",
                   disable=not progress, leave=False)
        for fut in bar:
            i = futs[fut]
            try:
                results[i] = fut.result()
            except Exception as e:  # any decoder failure: drop this clip, keep going
                msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                reasons[i] = msg
                log.warning("cannot decode %s (%s): %s; clip dropped", clips[i].id, clips[i].path.name, msg)
    out = AudioList(x for x in results if x is not None)
    out.clips = [c for i, c in enumerate(clips) if results[i] is not None]
    out.dropped = [(clips[i].id, reasons[i]) for i in sorted(reasons)]
    if out.dropped:
        log.warning("%d of %d clips dropped (undecodable): %s", len(out.dropped), len(clips),
                    ", ".join(d[0] for d in out.dropped[:10]))
    return out


def load_stage_audio(clips: Sequence[Clip], audio: Sequence[np.ndarray], sr: int,
                     cache_dir: Path | None = DEFAULT_CACHE_DIR, progress: bool = True,
                     version: int | None = None) -> list[np.ndarray]:
    """``augment.stage_degrade`` of each clip (seeded by a hash of its id, so a clip always meets
    the same room whatever run scores it), cached as float16 ``.npy``.

    ``version=None`` is the old stage TEST. ``version=r`` is TRAINING version ``r``: the same chain
    family with other draws (seeded by a hash of the id and ``r``, never the test's seed), for a
    model that trains on the chain its test uses, as the room CNN trains on training rooms.

    Degrading a 30-s clip takes ~0.3-1 s; every recipe is scored on the same degraded audio, so it
    is computed once per clip and reused by every CV run."""
    from tqdm.auto import tqdm

    from .augment import STAGE_TEST, stage_degrade

    tag = hashlib.sha1(repr(sorted(STAGE_TEST.items())).encode()).hexdigest()[:8]
    out = []
    for c, x in tqdm(list(zip(clips, audio, strict=True)), desc="stage audio", unit="clip",
                     disable=not progress, leave=False):
        key = c.id if version is None else f"{c.id}#stage-train{int(version)}"
        seed = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16)
        if cache_dir is None:
            out.append(stage_degrade(x, sr, seed))
            continue
        kind = "stage" if version is None else f"stage-train{int(version)}"
        folder = cache_folder(Path(cache_dir), f"{c.dataset}-{kind}-{tag}", sr)
        folder.mkdir(parents=True, exist_ok=True)
        f = folder / f"{_safe(c.id)}--{_key(c, sr)}.npy"
        if f.is_file():
            try:
                out.append(np.load(f).astype(np.float32))
                continue
            except (OSError, ValueError):
                pass
        y = stage_degrade(x, sr, seed)
        _save_atomic(f, y.astype(np.float16))
        out.append(y)
    return out
