"""Training and test items of the presence model: music (4Q clean, stage, quiet; EMOPIA; the
music-kinds corpus) and not-music (``negatives.bank``), each with its held-out group.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .net import SR

ALSA_DIR = Path("/usr/share/sounds/alsa")

#: the music-kinds corpus (``train/showmusic.py``: drum grooves, EDM, solo instruments, recorded
#: game music), label 1
SHOW_KINDS = ("groove-kit", "groove-gm", "groove-synth", "edm-intro", "edm", "solo", "recorded", "pad",
              "intro")
#: kinds that are music (label 1); every negatives.KINDS kind is label 0
MUSIC_KINDS = ("4q", "4q-stage", "4q-quiet", "emopia") + SHOW_KINDS


@dataclass
class Item:
    """One labelled recording: ``kind`` (a MUSIC_KINDS or negatives kind), ``group`` (held-out
    unit), ``label`` (1 music), ``fold`` (its test fold), ``audio`` float32/float16 at 16 kHz."""

    kind: str
    group: str
    name: str
    label: int
    audio: np.ndarray
    fold: int = -1

    def wave(self) -> np.ndarray:
        return np.asarray(self.audio, np.float32)


def group_folds(groups: Sequence[str], k: int = 5, seed: int = 0, whole: bool = False) -> np.ndarray:
    """Fold index (0..k-1) of each item, whole groups to a fold, balanced by item count
    (groups shuffled by ``seed``, then GroupKFold), deterministic. Fewer groups than folds: items
    dealt out in turn (every fold gets some: a tiny set), or with ``whole`` the i-th group (sorted)
    to fold i, some folds holding none (a kind joining a corpus whose folds exist)."""
    from sklearn.model_selection import GroupKFold

    uniq = sorted(set(groups))
    if len(uniq) < k:
        if whole:
            return np.array([uniq.index(g) for g in groups], dtype=int)
        return np.arange(len(groups)) % k
    perm = np.random.default_rng(seed).permutation(len(uniq))
    gid = {g: int(perm[i]) for i, g in enumerate(uniq)}
    gs = np.array([gid[g] for g in groups])
    fold = np.full(len(groups), -1)
    for f, (_, te) in enumerate(GroupKFold(n_splits=k).split(np.zeros(len(groups)), groups=gs)):
        fold[te] = f
    return fold


def quiet_version(x: np.ndarray, floor: np.ndarray, seed: int) -> np.ndarray:
    """Music at a low level over a room's noise floor (an intro, a quiet venue): the clip at
    -50..-35 dBFS RMS with ``floor`` (a room-tone recording, repeated to length) 10..20 dB below
    it. Made as a waveform, for evaluation."""
    from ..negatives import at_db

    rng = np.random.default_rng(seed)
    lvl = rng.uniform(-50, -35)
    fl = np.resize(np.asarray(floor, np.float32), len(x))
    return (at_db(x, lvl) + at_db(fl, lvl - rng.uniform(10, 20))).astype(np.float32)


def add_quiet(items: list[Item]) -> list[Item]:
    """A ``4q-quiet`` item for each 4Q clip, its floor a ``room_tone`` negative of the same fold
    (held out alike), chosen by the clip's id."""
    floors: dict[int, list[Item]] = {}
    for it in items:
        if it.kind == "room_tone":
            floors.setdefault(it.fold, []).append(it)
    out = []
    for it in items:
        if it.kind == "4q" and floors.get(it.fold):
            s = _id_seed(it.name)
            fl = floors[it.fold][s % len(floors[it.fold])]
            q = quiet_version(it.wave(), fl.wave(), s).astype(np.float16)
            out.append(Item("4q-quiet", it.group, it.name, 1, q, it.fold))
    return items + out


def _id_seed(s: str) -> int:
    return int(hashlib.sha1(s.encode()).hexdigest()[:8], 16)


def load_music(cache_dir: Path, emopia_limit: int = 240, k: int = 5, progress: bool = True) -> list[Item]:
    """4Q clean and stage-degraded (folds by artist, the emotion model's folds) and EMOPIA renders
    (folds by song)."""
    from ..cache import load_audio, load_stage_audio
    from ..data import artist_folds, load_4q
    from ..midi import load_emopia

    clips = load_4q()
    audio = load_audio(clips, SR, cache_dir, workers=1, progress=progress)
    clips = audio.clips
    stage = load_stage_audio(clips, audio, SR, cache_dir, progress=progress)
    fold = np.full(len(clips), -1)
    for f, (_, te) in enumerate(artist_folds(clips, k=k, seed=0)):
        fold[te] = f
    items: list[Item] = []
    for c, x, y, f in zip(clips, audio, stage, fold, strict=True):
        g = f"4q:{c.artist.strip().casefold()}"
        items.append(Item("4q", g, c.id, 1, x, int(f)))
        items.append(Item("4q-stage", g, c.id, 1, np.asarray(y, np.float16), int(f)))
    if emopia_limit:
        em = load_emopia(cache_dir, limit=emopia_limit, seed=0)
        ea = load_audio(em, SR, cache_dir, workers=1, progress=progress)
        ef = group_folds([c.artist for c in ea.clips], k=k, seed=0)
        items += [
            Item("emopia", c.artist, c.id, 1, x, int(f)) for c, x, f in zip(ea.clips, ea, ef, strict=True)
        ]
    return items


def load_negatives(
    cache_dir: Path,
    seed: int = 0,
    counts: dict[str, int] | None = None,
    seconds: float = 30.0,
    k: int = 5,
    progress: bool = True,
) -> list[Item]:
    """``negatives.bank`` (cached under ``cache_dir/presence-neg-*``: generating takes minutes),
    each through the runtime's clean-up chain at 16 kHz (DC blocker), folds by group."""
    from mer_live.common.cleanup import CLEANUP
    from mer_live.common.framing import prepare_offline

    from .. import negatives

    cnt = dict(negatives.DEFAULT_COUNTS if counts is None else counts)
    src = Path(negatives.__file__).read_bytes()
    key = hashlib.sha1(
        repr((seed, sorted(cnt.items()), seconds, negatives.voices())).encode() + src
    ).hexdigest()[:10]
    folder = Path(cache_dir) / f"presence-neg-{key}"
    index = folder / "index.json"
    if index.is_file():
        meta = json.loads(index.read_text())
        items = [
            Item(m["kind"], m["group"], m["name"], 0, np.load(folder / f"{m['name']}.npy")) for m in meta
        ]
    else:
        bank = negatives.bank(SR, seconds, seed, cnt, progress=progress)
        folder.mkdir(parents=True, exist_ok=True)
        items = []
        for b in bank:
            x = prepare_offline(b.audio[:, None], SR, SR, CLEANUP).astype(np.float32)
            np.save(folder / f"{b.name}.npy", x)
            items.append(Item(b.kind, b.group, b.name, 0, x))
        index.write_text(json.dumps([{"kind": i.kind, "group": i.group, "name": i.name} for i in items]))
    f = group_folds([i.group for i in items], k=k, seed=seed)
    for i, fi in zip(items, f, strict=True):
        i.fold = int(fi)
    return items


def load_showmusic(
    cache_dir: Path,
    seed: int = 0,
    counts: dict[str, int] | None = None,
    seconds: float = 30.0,
    k: int = 5,
    progress: bool = True,
    kinds: Sequence[str] | None = None,
) -> list[Item]:
    """``showmusic`` items of ``kinds`` (default all: drum grooves, EDM, solo instruments, recorded
    game music; label 1), cached per kind under ``cache_dir/showmusic-*`` (generating takes
    minutes; processes can fill different kinds side by side), each through the runtime's clean-up
    chain at 16 kHz; folds by group (a kit, an instrument, a package) over all kinds, seeded apart
    from the negatives' folds."""
    from mer_live.common.cleanup import CLEANUP
    from mer_live.common.framing import prepare_offline

    from .. import showmusic

    cnt = dict(showmusic.DEFAULT_COUNTS if counts is None else counts)
    # the folder is keyed by the first corpus' kinds only: a kind added later (KIND_VERSION) is
    # cached beside them, keyed by its own version and count, so adding one regenerates nothing else
    base = sorted((k_, v) for k_, v in cnt.items() if k_ in showmusic.BASE_KINDS)
    key = hashlib.sha1(repr((seed, base, seconds, showmusic.VERSION)).encode())
    folder = Path(cache_dir) / f"showmusic-{key.hexdigest()[:10]}"
    folder.mkdir(parents=True, exist_ok=True)
    items: list[Item] = []
    for kind in [k_ for k_ in showmusic.KINDS if cnt.get(k_) and (kinds is None or k_ in kinds)]:
        index = folder / f"index-{kind}.json"
        if kind in showmusic.KIND_VERSION:
            index = folder / f"index-{kind}-v{showmusic.KIND_VERSION[kind]}-n{cnt[kind]}.json"
        if index.is_file():
            meta = json.loads(index.read_text())
            items += [
                Item(m["kind"], m["group"], m["name"], 1, np.load(folder / f"{m['name']}.npy")) for m in meta
            ]
            continue
        got = []
        for g, name, x in showmusic.items(kind, SR, seed, seconds, cnt[kind]):
            y = prepare_offline(x[:, None], SR, SR, CLEANUP).astype(np.float16)
            np.save(folder / f"{name}.npy", y)
            got.append(Item(kind, g, name, 1, y))
        index.write_text(json.dumps([{"kind": i.kind, "group": i.group, "name": i.name} for i in got]))
        items += got
    # the first corpus' folds as they were; each later kind's groups spread over the folds on their own
    for sub in [[i for i in items if i.kind in showmusic.BASE_KINDS]] + [
        [i for i in items if i.kind == k_] for k_ in showmusic.KIND_VERSION
    ]:
        if sub:  # a later kind with fewer groups than folds: whole groups, some folds without it
            f = group_folds([i.group for i in sub], k=k, seed=seed + 1,
                            whole=sub[0].kind in showmusic.KIND_VERSION)
            for i, fi in zip(sub, f, strict=True):
                i.fold = int(fi)
    return items


def alsa_voice() -> list[tuple[str, np.ndarray]]:
    """The alsa-utils recordings (a real person saying "Front Left" etc., and its pink "Noise"),
    through the runtime's chain at 16 kHz: ``[(name, audio)]``; empty when alsa-utils is absent."""
    import soundfile as sf

    from mer_live.common.cleanup import CLEANUP
    from mer_live.common.framing import prepare_offline

    out = []
    for p in sorted(ALSA_DIR.glob("*.wav")):
        x, sr = sf.read(str(p), dtype="float32", always_2d=True)
        out.append((p.stem, prepare_offline(x, int(sr), SR, CLEANUP).astype(np.float32)))
    return out


def alsa_stream(pause_s: float = 0.6, with_noise: bool = False) -> np.ndarray:
    """The alsa voice files one after another with pauses over a faint floor (a person calling
    out channel names), as one stream at 16 kHz."""
    parts = [x for name, x in alsa_voice() if with_noise or name != "Noise"]
    if not parts:
        return np.zeros(0, np.float32)
    gap = np.zeros(int(pause_s * SR), np.float32)
    x = np.concatenate([np.concatenate([p, gap]) for p in parts])
    rng = np.random.default_rng(0)
    return (x + 10 ** (-75 / 20) * rng.standard_normal(len(x))).astype(np.float32)


def load_close_tunings(
    cache_dir: Path, per_instrument: int, seed: int = 0, seconds: float = 30.0, progress: bool = True
) -> list[Item]:
    """``tuning_close.items`` (kind ``tuning-close``, label 0: every solo instrument tuned or
    checked, harder negatives than ``negatives.tuning``), cached under
    ``cache_dir/tuning-close-*``, through the runtime's clean-up chain at 16 kHz. Folds are unset:
    ``tie_tuning_folds`` gives each its instrument's solo fold."""
    from tqdm.auto import tqdm

    from mer_live.common.cleanup import CLEANUP
    from mer_live.common.framing import prepare_offline

    from .. import tuning_close

    src = Path(tuning_close.__file__).read_bytes()
    key = hashlib.sha1(repr((seed, per_instrument, seconds)).encode() + src).hexdigest()[:10]
    folder = Path(cache_dir) / f"tuning-close-{key}"
    index = folder / "index.json"
    if index.is_file():
        meta = json.loads(index.read_text())
        return [
            Item("tuning-close", m["group"], m["name"], 0, np.load(folder / f"{m['name']}.npy")) for m in meta
        ]
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    total = per_instrument * len(tuning_close.instruments())
    for g, name, x in tqdm(tuning_close.items(per_instrument, SR, seed, seconds), total=total,
                           desc="tuning-close", unit="item", disable=not progress, leave=False):
        y = prepare_offline(x[:, None], SR, SR, CLEANUP).astype(np.float32)
        np.save(folder / f"{name}.npy", y)
        out.append(Item("tuning-close", g, name, 0, y))
    index.write_text(json.dumps([{"group": i.group, "name": i.name} for i in out]))
    return out


def tie_tuning_folds(items: Sequence[Item]) -> int:
    """Hold an instrument out as music and as a tuning together: each ``tuning-close`` item and
    each ``tuning`` item whose GM program is a solo instrument's gets that instrument's ``solo``
    fold (otherwise a held-out solo trombone meets trombone only as "not music" in training).
    Returns how many items were re-folded."""
    from .. import tuning_close

    solo_fold = {i.group.split(":", 1)[1]: i.fold for i in items if i.kind == "solo"}
    by_prog = {v[0]: k for k, v in tuning_close.instruments().items()}
    n = 0
    for it in items:
        inst = None
        if it.kind == "tuning-close":
            inst = it.group.split(":", 1)[1]
        elif it.kind == "tuning":
            inst = by_prog.get(tuning_close.tuning_program(int(it.name.split("-")[1])))
        if inst is not None and inst in solo_fold:
            it.fold = solo_fold[inst]
            n += 1
    rest = [it for it in items if it.kind == "tuning-close" and it.fold < 0]  # no solo corpus loaded
    for it, f in zip(rest, group_folds([it.group for it in rest]), strict=True):
        it.fold = int(f)
    return n
