"""Labelled clips: the 4Q set, user manifests, artist-grouped folds, and window framing.

Everything here is metadata (no audio is decoded: that is ``cache.py``). Labels use the project's
scale: arousal and valence in [0, 1], 0.5 neutral; Russell quadrants 1..4 (Q1 high arousal +
high valence, Q2 high arousal + low valence, Q3 low + low, Q4 low arousal + high valence).
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .paths import shared_data_dir

log = logging.getLogger(__name__)



class DataError(ValueError):
    """Unusable labels or manifest; the message is one line naming the file and row."""


def quadrant_from_high(arousal_high: int, valence_high: int) -> int:
    """Russell quadrant of binary labels (1 = high): Q1 (1,1), Q2 (1,0), Q3 (0,0), Q4 (0,1)."""
    if arousal_high:
        return 1 if valence_high else 2
    return 4 if valence_high else 3


def high_from_quadrant(q: int) -> tuple[int, int]:
    """(arousal_high, valence_high) of a quadrant 1..4."""
    return {1: (1, 1), 2: (1, 0), 3: (0, 0), 4: (0, 1)}[q]


@dataclass(frozen=True)
class Clip:
    """One labelled audio clip.

    Continuous labels (``arousal``, ``valence``) are in [0, 1] or None (4Q has only quadrants).
    Missing binary labels and the quadrant are derived at construction: from the continuous
    values at the 0.5 threshold (ties go high, as ``mer_live.live.records.quadrant_of``) or from the
    quadrant, so every clip with any label has ``arousal_high``, ``valence_high`` and ``quadrant``.
    """

    id: str
    artist: str
    path: Path
    arousal: float | None = None
    valence: float | None = None
    arousal_high: int | None = None
    valence_high: int | None = None
    quadrant: int | None = None
    dataset: str = "manifest"
    #: descriptive tags (4Q: its AllMusic genres), used only as an auxiliary training target
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("arousal", "valence"):
            v = getattr(self, name)
            if v is not None:
                v = float(v)
                if not (math.isfinite(v) and 0.0 <= v <= 1.0):
                    raise DataError(f"clip {self.id}: {name} {v} is outside [0, 1]")
                object.__setattr__(self, name, v)
        if self.quadrant is not None and self.quadrant not in (1, 2, 3, 4):
            raise DataError(f"clip {self.id}: quadrant {self.quadrant} is not 1..4")
        ah, vh = self.arousal_high, self.valence_high
        if ah is None and self.arousal is not None:
            ah = int(self.arousal >= 0.5)
        if vh is None and self.valence is not None:
            vh = int(self.valence >= 0.5)
        if self.quadrant is not None:
            qa, qv = high_from_quadrant(self.quadrant)
            ah = qa if ah is None else ah
            vh = qv if vh is None else vh
            if (ah, vh) != (qa, qv):
                raise DataError(f"clip {self.id}: quadrant Q{self.quadrant} contradicts highs ({ah}, {vh})")
        object.__setattr__(self, "arousal_high", None if ah is None else int(ah))
        object.__setattr__(self, "valence_high", None if vh is None else int(vh))
        if self.quadrant is None and ah is not None and vh is not None:
            object.__setattr__(self, "quadrant", quadrant_from_high(ah, vh))
        object.__setattr__(self, "path", Path(self.path))

    @property
    def has_continuous(self) -> bool:
        return self.arousal is not None and self.valence is not None


def targets(clips: Sequence[Clip]) -> np.ndarray:
    """float32 ``[n, 2]`` (arousal, valence): continuous labels where a clip has them, else 0/1 highs.

    A clip with neither raises DataError (train only on labelled clips).
    """
    out = np.empty((len(clips), 2), np.float32)
    for i, c in enumerate(clips):
        if c.has_continuous:
            out[i] = (c.arousal, c.valence)
        elif c.arousal_high is not None and c.valence_high is not None:
            out[i] = (c.arousal_high, c.valence_high)
        else:
            raise DataError(f"clip {c.id}: no arousal/valence label")
    return out


def _parse_int01(value: str, what: str, where: str) -> int:
    v = value.strip()
    if v not in ("0", "1"):
        raise DataError(f"{where}: {what} must be 0 or 1, got {value!r}")
    return int(v)


def _parse_quadrant(value: str, where: str) -> int:
    v = value.strip().upper().removeprefix("Q")
    if v not in ("1", "2", "3", "4"):
        raise DataError(f"{where}: quadrant must be Q1..Q4 or 1..4, got {value!r}")
    return int(v)


def _split_tags(value: str | None) -> tuple[str, ...]:
    """``"Electronic; Pop/Rock"`` -> ``("Electronic", "Pop/Rock")`` (sorted, unique, no blanks)."""
    return tuple(sorted({t.strip() for t in (value or "").split(";") if t.strip()}))


def load_4q(root: Path | None = None) -> list[Clip]:
    """The 4Q set (Panda et al. 2018): ``labels.csv`` + ``audio/<song>.mp3``; 716 clips, quadrant labels.

    ``root`` defaults to ``shared_data_dir() / "4q"``. Clips whose audio file is missing are
    dropped with a one-line warning.
    """
    root = Path(root) if root is not None else shared_data_dir() / "4q"
    labels = root / "labels.csv"
    if not labels.is_file():
        raise DataError(f"4Q labels not found: {labels}")
    clips: list[Clip] = []
    missing: list[str] = []
    with open(labels, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        need = {"song", "artist", "quadrant", "arousal_high", "valence_high"}
        if not need <= set(reader.fieldnames or ()):
            raise DataError(f"{labels}: needs columns {sorted(need)}, has {reader.fieldnames}")
        for row_no, row in enumerate(reader, start=2):
            where = f"{labels.name} row {row_no}"
            song = row["song"].strip()
            path = root / "audio" / f"{song}.mp3"
            if not path.is_file():
                missing.append(song)
                continue
            clips.append(
                Clip(
                    id=song,
                    artist=row["artist"].strip(),
                    path=path,
                    arousal_high=_parse_int01(row["arousal_high"], "arousal_high", where),
                    valence_high=_parse_int01(row["valence_high"], "valence_high", where),
                    quadrant=_parse_quadrant(row["quadrant"], where),
                    dataset="4q",
                    tags=_split_tags(row.get("genres")),
                )
            )
    if missing:
        log.warning("4Q: %d clips have no audio file and were dropped: %s", len(missing),
                    ", ".join(missing[:10]))
    return clips


def load_manifest(csv_path: Path, dataset: str | None = None) -> list[Clip]:
    """Clips from a user's CSV, so anyone can train on their own music.

    Columns: ``file`` (required; relative paths resolve against the CSV's folder), then either
    ``arousal`` and ``valence`` in [0, 1] or ``quadrant`` (Q1..Q4 or 1..4), optionally ``artist``
    (used for grouped folds; a clip without one is its own group) and ``id`` (default: the file
    stem). A bad label raises DataError naming the row; a missing audio file is a warning and
    that row is dropped.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DataError(f"manifest not found: {csv_path}")
    base = csv_path.resolve().parent
    ds = dataset or csv_path.stem
    clips: list[Clip] = []
    missing: list[str] = []
    seen: set[str] = set()
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        cols = {c.strip().lower(): c for c in (reader.fieldnames or ())}
        if "file" not in cols:
            raise DataError(f"{csv_path}: needs a 'file' column, has {reader.fieldnames}")
        has_av = "arousal" in cols and "valence" in cols
        if not has_av and "quadrant" not in cols:
            raise DataError(f"{csv_path}: needs 'arousal' and 'valence' columns or a 'quadrant' column")
        for row_no, row in enumerate(reader, start=2):
            where = f"{csv_path.name} row {row_no}"

            def get(name: str, row: dict = row) -> str:
                return (row.get(cols[name]) or "").strip() if name in cols else ""

            file = get("file")
            if not file:
                raise DataError(f"{where}: empty 'file'")
            path = Path(file)
            path = path if path.is_absolute() else base / path
            cid = get("id") or path.stem
            if cid in seen:
                raise DataError(f"{where}: duplicate clip id {cid!r}")
            seen.add(cid)
            a = v = None
            q = None
            if has_av and (get("arousal") or get("valence")):
                try:
                    a, v = float(get("arousal")), float(get("valence"))
                except ValueError:
                    raise DataError(f"{where}: arousal/valence must be numbers in [0, 1]") from None
            if get("quadrant"):
                q = _parse_quadrant(get("quadrant"), where)
            if a is None and q is None:
                raise DataError(f"{where}: no label (arousal+valence or quadrant)")
            if not path.is_file():
                missing.append(str(path))
                continue
            try:
                clips.append(Clip(id=cid, artist=get("artist"), path=path, arousal=a, valence=v,
                                  quadrant=q, dataset=ds))
            except DataError as e:
                raise DataError(f"{where}: {e}") from None
    if missing:
        log.warning("%s: %d audio files not found, rows dropped: %s", csv_path.name, len(missing),
                    ", ".join(missing[:5]))
    return clips


def artist_folds(clips: Sequence[Clip], k: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """k folds grouped by artist: ``[(train_idx, test_idx), ...]``, deterministic for a seed.

    Several clips of one artist sound alike, so an artist never appears on both sides of a fold
    (asserted). Artists are shuffled with ``seed`` and then balanced by sklearn's GroupKFold; a
    clip with an empty artist is its own group.
    """
    from sklearn.model_selection import GroupKFold

    names = [c.artist.strip().casefold() or f"\0{c.id}" for c in clips]
    uniq = sorted(set(names))
    if len(uniq) < k:
        raise DataError(f"cannot make {k} artist folds from {len(uniq)} artists")
    perm = np.random.default_rng(seed).permutation(len(uniq))
    gid = {a: int(perm[i]) for i, a in enumerate(uniq)}
    groups = np.array([gid[a] for a in names])
    folds = []
    for tr, te in GroupKFold(n_splits=k).split(np.zeros(len(clips)), groups=groups):
        assert not set(groups[tr]) & set(groups[te]), "artist on both sides of a fold"
        folds.append((np.sort(tr), np.sort(te)))
    return folds


def stage_clips(spec: str, who: str) -> list[Clip]:
    """The clips of a stage's ``--data`` (``ship``, ``cv spec``): bad input exits with ONE line
    ``who: error: ...``, as the stages' other errors do."""
    try:
        return load_clips(spec)[0]
    except DataError as e:
        raise SystemExit(f"{who}: error: {e}") from None


def load_clips(spec: str) -> tuple[list[Clip], str]:
    """``(clips, description)`` of a ``--data`` value: ``4q[:DIR]``, ``pmemo[:DIR]`` or a manifest CSV
    path (``mer-train``'s every data option; bad input raises a one-line DataError)."""
    name, _, arg = spec.partition(":")
    if name.lower() == "4q" and (not arg or Path(arg).is_dir()):
        clips = load_4q(Path(arg) if arg else None)
        desc = "4Q (Panda, Malheiro & Paiva 2018; AllMusic mood tags mapped to Russell quadrants)"
    elif name.lower() == "pmemo" and (not arg or Path(arg).is_dir()):
        from .pmemo import load_pmemo

        clips = load_pmemo(Path(arg) if arg else None)
        desc = "PMEmo2019 chorus clips, static arousal/valence labels"
    else:
        path = Path(spec)
        if path.is_dir() or (path.suffix.lower() != ".csv" and not path.is_file()):
            raise DataError(f"--data {spec!r}: use 4q[:DIR], pmemo[:DIR] or a manifest .csv file")
        clips = load_manifest(path)
        desc = f"manifest {path.name}"
    if len(clips) < 2:
        raise DataError(f"--data {spec}: {len(clips)} usable clip(s); need at least 2 with audio")
    return clips, desc
