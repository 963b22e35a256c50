"""PMEmo2019 (Zhang et al., ICMR 2018) in its published layout: static and dynamic labels, splits.

Layout (``root`` is the ``PMEmo2019`` folder)::

    metadata.csv                          musicId,fileName,title,artist,album,duration,chorus_start_time,...
    annotations/static_annotations.csv    musicId,Arousal(mean),Valence(mean)          (767 songs)
    annotations/dynamic_annotations.csv   musicId,frameTime,Arousal(mean),Valence(mean) (2 Hz from 15.5 s)
    annotations/dynamic_annotations_std.csv  musicId,frameTime,Arousal(std),Valence(std)
    chorus/<fileName>                     the chorus clip the labels refer to (absent here)

Labels are already on the project's [0, 1] scale. ``frameTime`` is seconds from the start of the
chorus clip. ``make_standin_chorus`` writes synthetic audio in place of the real chorus clips so
the loaders and a training run can go end to end without them.
"""

from __future__ import annotations

import csv
import logging
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import Clip, DataError, shared_data_dir

log = logging.getLogger(__name__)

STATIC = Path("annotations") / "static_annotations.csv"
DYNAMIC = Path("annotations") / "dynamic_annotations.csv"
DYNAMIC_STD = Path("annotations") / "dynamic_annotations_std.csv"
SPLITS = ("train", "validation", "test")
ALIGN_TOL = 0.25  #: seconds: a window end further than this from every frameTime gets no dynamic label


def default_root() -> Path:
    return shared_data_dir() / "pmemo-labels" / "PMEmo2019"


def default_split_dir() -> Path:
    return shared_data_dir() / "pmemo-labels" / "split"


def _read_csv(path: Path, need: tuple[str, ...]) -> list[dict[str, str]]:
    """Rows with stripped keys and values (the published files mix CRLF/LF; BOMs are dropped)."""
    if not path.is_file():
        raise DataError(f"PMEmo file not found: {path}")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        missing = [c for c in need if c not in header]
        if missing:
            raise DataError(f"{path.name}: missing columns {missing}, has {header}")
        rows = []
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            rows.append({h: v.strip() for h, v in zip(header, row, strict=False)})
    return rows


def _float(v: str, where: str) -> float:
    try:
        x = float(v)
    except ValueError:
        raise DataError(f"{where}: not a number: {v!r}") from None
    if not np.isfinite(x):
        raise DataError(f"{where}: not finite: {v!r}")
    return x


def load_metadata(root: Path | None = None) -> dict[str, dict[str, str]]:
    """``musicId -> metadata row`` (fileName, title, artist, album, duration, chorus times)."""
    root = Path(root) if root is not None else default_root()
    rows = _read_csv(root / "metadata.csv", ("musicId", "fileName", "artist", "duration"))
    return {r["musicId"]: r for r in rows}


def load_static(root: Path | None = None) -> dict[str, tuple[float, float]]:
    """``musicId -> (arousal, valence)`` song-level means, [0, 1]."""
    root = Path(root) if root is not None else default_root()
    rows = _read_csv(root / STATIC, ("musicId", "Arousal(mean)", "Valence(mean)"))
    out: dict[str, tuple[float, float]] = {}
    for i, r in enumerate(rows, start=2):
        where = f"{STATIC.name} row {i}"
        if r["musicId"] in out:
            raise DataError(f"{where}: duplicate musicId {r['musicId']}")
        out[r["musicId"]] = (_float(r["Arousal(mean)"], where), _float(r["Valence(mean)"], where))
    return out


@dataclass(frozen=True)
class Dynamic:
    """One song's dynamic labels: per-frame (2 Hz) means and standard deviations, [0, 1]."""

    times: np.ndarray  #: frameTime, seconds from the chorus clip's start, increasing
    arousal: np.ndarray
    valence: np.ndarray
    arousal_std: np.ndarray | None = None
    valence_std: np.ndarray | None = None

    def at(self, end_times: np.ndarray, tol: float = ALIGN_TOL) -> np.ndarray:
        """float32 ``[n, 2]`` labels for windows ending at ``end_times`` (s); NaN where none.

        A window ending at t gets the frame whose frameTime is nearest t, if within ``tol``.
        """
        t = np.asarray(end_times, np.float64).reshape(-1)
        out = np.full((len(t), 2), np.nan, np.float32)
        if len(self.times) == 0 or len(t) == 0:
            return out
        last = len(self.times) - 1
        right = np.clip(np.searchsorted(self.times, t), 0, last)
        left = np.clip(right - 1, 0, last)
        j = np.where(np.abs(t - self.times[left]) <= np.abs(self.times[right] - t), left, right)
        ok = np.abs(self.times[j] - t) <= tol + 1e-9
        out[ok, 0] = self.arousal[j[ok]]
        out[ok, 1] = self.valence[j[ok]]
        return out


def load_dynamic(root: Path | None = None, with_std: bool = True) -> dict[str, Dynamic]:
    """``musicId -> Dynamic`` from the dynamic annotation files (36,434 rows in PMEmo2019)."""
    root = Path(root) if root is not None else default_root()
    cols = ("musicId", "frameTime", "Arousal(mean)", "Valence(mean)")
    rows = _read_csv(root / DYNAMIC, cols)
    per: dict[str, list[tuple[float, float, float]]] = {}
    for i, r in enumerate(rows, start=2):
        where = f"{DYNAMIC.name} row {i}"
        frame = (_float(r["frameTime"], where), _float(r["Arousal(mean)"], where),
                 _float(r["Valence(mean)"], where))
        per.setdefault(r["musicId"], []).append(frame)
    std: dict[tuple[str, float], tuple[float, float]] = {}
    if with_std and (root / DYNAMIC_STD).is_file():
        for i, r in enumerate(_read_csv(root / DYNAMIC_STD, ("musicId", "frameTime", "Arousal(std)",
                                                              "Valence(std)")), start=2):
            where = f"{DYNAMIC_STD.name} row {i}"
            std[(r["musicId"], _float(r["frameTime"], where))] = (
                _float(r["Arousal(std)"], where), _float(r["Valence(std)"], where))
    out: dict[str, Dynamic] = {}
    for mid, frames in per.items():
        a = np.array(sorted(frames), np.float64)
        if len(np.unique(a[:, 0])) != len(a):
            raise DataError(f"{DYNAMIC.name}: musicId {mid} has repeated frameTimes")
        s = None
        if std:
            s = np.array([std.get((mid, float(t)), (np.nan, np.nan)) for t in a[:, 0]], np.float32)
        out[mid] = Dynamic(a[:, 0], a[:, 1].astype(np.float32), a[:, 2].astype(np.float32),
                           None if s is None else s[:, 0], None if s is None else s[:, 1])
    return out


def chorus_path(root: Path, meta: dict[str, str]) -> Path:
    """``chorus/<fileName>``; if absent, ``chorus/<musicId>.<any audio extension>``."""
    p = root / "chorus" / meta["fileName"]
    if p.is_file():
        return p
    for ext in (".mp3", ".wav", ".flac", ".ogg"):
        q = root / "chorus" / f"{meta['musicId']}{ext}"
        if q.is_file():
            return q
    return p


def load_pmemo(root: Path | None = None, require_audio: bool = True) -> list[Clip]:
    """PMEmo songs with static labels as Clips (``dataset="pmemo"``, id = musicId), in musicId order.

    With ``require_audio`` (default) songs without a chorus clip are dropped with one warning;
    the labels-only copy here has no audio, so pass ``require_audio=False`` to read labels only,
    or use ``make_standin_chorus``.
    """
    root = Path(root) if root is not None else default_root()
    meta = load_metadata(root)
    static = load_static(root)
    clips, missing = [], []
    for mid in sorted(static, key=lambda m: (len(m), m)):
        if mid not in meta:
            raise DataError(f"{STATIC.name}: musicId {mid} is not in metadata.csv")
        path = chorus_path(root, meta[mid])
        if require_audio and not path.is_file():
            missing.append(mid)
            continue
        a, v = static[mid]
        clips.append(Clip(id=mid, artist=meta[mid]["artist"], path=path, arousal=a, valence=v,
                          dataset="pmemo"))
    if missing:
        log.warning("PMEmo: %d of %d songs have no chorus audio under %s and were dropped", len(missing),
                    len(static), root / "chorus")
    return clips


def load_split(split_dir: Path | None = None) -> dict[str, list[str]]:
    """``{"train": [...], "validation": [...], "test": [...]}`` musicIds (536/116/115), disjoint."""
    split_dir = Path(split_dir) if split_dir is not None else default_split_dir()
    out: dict[str, list[str]] = {}
    for name in SPLITS:
        f = split_dir / f"{name}.txt"
        if not f.is_file():
            raise DataError(f"PMEmo split file not found: {f}")
        out[name] = [ln.strip().lstrip("\ufeff") for ln in f.read_text(encoding="utf-8").splitlines()
                     if ln.strip()]
    seen: dict[str, str] = {}
    for name, ids in out.items():
        for i in ids:
            if i in seen:
                raise DataError(f"PMEmo split: musicId {i} is in both {seen[i]} and {name}")
            seen[i] = name
    return out


def split_clips(clips: list[Clip], split: dict[str, list[str]]) -> dict[str, list[Clip]]:
    """Partition clips by a song split; clips not in any split are left out (with a warning)."""
    where = {i: name for name, ids in split.items() for i in ids}
    out: dict[str, list[Clip]] = {name: [] for name in split}
    extra = [c.id for c in clips if c.id not in where]
    for c in clips:
        if c.id in where:
            out[where[c.id]].append(c)
    if extra:
        log.warning("PMEmo: %d clips are in no split and were left out", len(extra))
    return out


def song_folds(clips: list[Clip], k: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """k folds by song (each clip is one song): shuffled KFold, deterministic for ``seed``."""
    from sklearn.model_selection import KFold

    return [(np.sort(tr), np.sort(te)) for tr, te in
            KFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(clips)))]


def window_targets(dyn: Dynamic, end_samples: np.ndarray, sr: int, tol: float = ALIGN_TOL) -> np.ndarray:
    """Dynamic labels ``[n, 2]`` (NaN = none) for windows ending at ``end_samples`` (from ``data.frame``)."""
    return dyn.at(np.asarray(end_samples, np.float64) / sr, tol)


def _standin_audio(mid: str, duration: float, static: tuple[float, float], dyn: Dynamic | None,
                   sr: int) -> np.ndarray:
    """Synthetic chorus: louder, brighter, faster pulses with arousal; major vs minor harmony with valence.

    Arousal and valence follow the song's dynamic curve over time (static labels before 15.5 s),
    so a model can learn both clip-level and per-window targets. Deterministic per musicId.
    """
    rng = np.random.default_rng(zlib.crc32(mid.encode()))
    n = int(round(duration * sr))
    t = np.arange(n) / sr
    if dyn is not None and len(dyn.times):
        a = np.interp(t, dyn.times, dyn.arousal, left=static[0], right=float(dyn.arousal[-1]))
        v = np.interp(t, dyn.times, dyn.valence, left=static[1], right=float(dyn.valence[-1]))
    else:
        a = np.full(n, static[0])
        v = np.full(n, static[1])
    root = 110.0 * 2 ** (rng.integers(0, 12) / 12)
    third = 2 ** (3 / 12) + (2 ** (4 / 12) - 2 ** (3 / 12)) * np.clip((v - 0.3) / 0.4, 0, 1)
    ph = 2 * np.pi * root * t + rng.uniform(0, 6, 4)[:, None]
    harm = np.sin(ph[0]) + np.sin(ph[1] * third) + np.sin(ph[2] * 1.5) + 0.5 * np.sin(ph[3] * 2)
    bright = np.sin(2 * np.pi * root * 8 * t) * a + 0.3 * rng.standard_normal(n) * a ** 2
    rate = 1.0 + 7.0 * a  # pulses per second
    pulse = np.maximum(0.0, np.sin(2 * np.pi * np.cumsum(rate) / sr)) ** 6
    env = 0.35 + 0.65 * pulse
    amp = 0.03 + 0.3 * a
    x = amp * env * (harm / 3.5 + 0.6 * bright)
    return np.clip(x, -1, 1).astype(np.float32)


def make_standin_chorus(
    pmemo_root: Path | None,
    out_dir: Path,
    n: int | None = None,
    seconds: float | None = None,
    sr: int = 22050,
    fmt: str = "mp3",
) -> Path:
    """Write a PMEmo2019-layout copy with synthetic ``chorus/<musicId>.<fmt>`` audio; return its root.

    Copies the label files from ``pmemo_root`` (the labels-only folder) to ``out_dir/PMEmo2019`` and
    generates audio for the first ``n`` songs with static labels (all when None), each as long as
    its ``duration`` in metadata.csv (or ``seconds``). ``out_dir`` must be a temp or cache folder,
    never the repository. Existing files are kept, so a second call is cheap.
    """
    import soundfile as sf

    src = Path(pmemo_root) if pmemo_root is not None else default_root()
    dst = Path(out_dir) / "PMEmo2019"
    (dst / "annotations").mkdir(parents=True, exist_ok=True)
    (dst / "chorus").mkdir(exist_ok=True)
    for rel in (Path("metadata.csv"), STATIC, DYNAMIC, DYNAMIC_STD):
        if (src / rel).is_file() and not (dst / rel).is_file():
            shutil.copyfile(src / rel, dst / rel)
    meta = load_metadata(dst)
    static = load_static(dst)
    dyn = load_dynamic(dst, with_std=False)
    ids = sorted(static, key=lambda m: (len(m), m))[: n if n is not None else None]
    subtype = {"mp3": "MPEG_LAYER_III", "wav": "FLOAT", "flac": "PCM_16"}[fmt]
    for mid in ids:
        out = dst / "chorus" / f"{mid}.{fmt}"
        if out.is_file():
            continue
        dur = seconds if seconds is not None else _float(meta[mid]["duration"], f"metadata {mid}")
        x = _standin_audio(mid, dur, static[mid], dyn.get(mid), sr)
        tmp = out.with_name(f".{out.name}.tmp")
        sf.write(tmp, x, sr, format=fmt.upper(), subtype=subtype)
        tmp.replace(out)
    return dst
