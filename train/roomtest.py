"""The room test (issue #19): out-of-fold models scored on their test clips as a room microphone
hears them (``train.room.room_degrade``), with and without a room path (normaliser, re-centring).

**Shows.** A room microphone stays in one room for a whole show, and a normaliser that adapts
over minutes needs the show, not one clip. So for degradation seed ``s`` the 716 clips are dealt
(seeded) into shows of ``SHOW_CLIPS`` (8 clips, ~4 min); every clip of a show goes through the
same room, microphone, PA and noise bed (``room_degrade`` with the show's seed). Shows ignore the
CV folds: a normaliser reads only unlabelled audio of the same room, never a label or a model.

**Room paths** (``RoomPath``): ``norm`` is where the equaliser (``train.roomnorm``) takes its
long-term spectrum from: ``none``; ``clip`` (the clip alone, two passes: ``mer-analyze --room``
on one 30-s file); ``show`` (the whole show, two passes: a recorded set); ``stream`` (the live
``RoomNormalizer`` run through the show in order, so a clip is heard with what the show taught it
so far). Fold k's reference spectrum is the mean of its TRAINING clips' clean spectra.
``recentre`` adds logit offsets to the model's window outputs, fitted so that the mean clip score
on room audio equals the mean on clean audio, for fold k from the OTHER folds' test clips in
CALIBRATION rooms (another room bank, ``room.TRAIN_BANK``), scored by the other folds' models: no
test clip, test room or label of fold k is used for fold k's offsets.

The old stage test (``augment.stage_degrade``, one random chain per clip) is scored through the
same paths; there ``show`` and ``stream`` fall back to ``clip`` (its clips share no room).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .cache import _key, _safe, _save_atomic, cache_folder
from .data import Clip
from .fit import clip_metrics, clip_windows, predict_windows
from .room import TRAIN_BANK, RoomConfig, room_degrade
from .roomnorm import (
    RoomNormalizer,
    RoomNormConfig,
    SpectrumReference,
    band_centres,
    band_power,
    centred_db,
    compensate_delay,
    ltas_power,
    normalize_offline,
)

log = logging.getLogger(__name__)

SHOW_CLIPS = 8
#: the calibration rooms' seed (in the training bank: never a test room)
CALIB_SEED = 10_000
NORMS = ("none", "clip", "show", "stream")


@dataclass(frozen=True)
class RoomPath:
    """What the room path does: ``norm`` in NORMS, ``recentre`` on or off."""

    norm: str = "none"
    recentre: bool = False

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ValueError(f"room path: norm must be one of {', '.join(NORMS)}, got {self.norm!r}")

    @property
    def name(self) -> str:
        parts = [] if self.norm == "none" else [f"eq-{self.norm}"]
        if self.recentre:
            parts.append("recentre")
        return "+".join(parts) or "none"

    @classmethod
    def parse(cls, s: str) -> RoomPath:
        """``none``, ``eq-show``, ``recentre``, ``eq-stream+recentre`` ..."""
        norm, rec = "none", False
        for p in s.split("+"):
            if p == "recentre":
                rec = True
            elif p.startswith("eq-"):
                norm = p[3:]
            elif p != "none":
                raise ValueError(f"room path {s!r}: parts are none, eq-<{'|'.join(NORMS[1:])}> and recentre")
        return cls(norm, rec)


def room_test_args(room_test: str, room_path: Sequence[str]) -> tuple[list[int], list[RoomPath]]:
    """The ``--room-test SEEDS`` and ``--room-path P ...`` options of the CV commands, checked:
    ValueError (one line) for a bad path, or paths without seeds."""
    paths = [RoomPath.parse(p) for p in room_path]
    seeds = [int(x) for x in room_test.split(",")] if room_test else []
    if paths and not seeds:
        raise ValueError("--room-path needs --room-test SEEDS")
    return seeds, paths


def room_shows(ids: Sequence[str], s: int, size: int = SHOW_CLIPS) -> list[list[int]]:
    """Indices of ``ids`` dealt into shows of ``size`` for seed ``s`` (in id order first, so the
    shows do not depend on the order clips were loaded in); the last show takes the remainder."""
    order = sorted(range(len(ids)), key=lambda i: ids[i])
    perm = [order[i] for i in np.random.default_rng([int(s), 1923]).permutation(len(ids))]
    n = max(1, len(ids) // size)
    return [perm[k * size : (k + 1) * size] if k < n - 1 else perm[k * size :] for k in range(n)]


def show_seed(s: int, show: Sequence[int], ids: Sequence[str]) -> int:
    """The degradation seed of a show: a hash of the seed and its clips' ids."""
    raw = f"{s}|" + "|".join(sorted(ids[i] for i in show))
    return int(hashlib.sha1(raw.encode()).hexdigest()[:8], 16)


def load_room_audio(clips: Sequence[Clip], audio: Sequence[np.ndarray], sr: int, s: int,
                    cfg: RoomConfig | None = None, cache_dir: Path | None = None,
                    progress: bool = True) -> tuple[list[np.ndarray], list[list[int]]]:
    """Every clip through its show's room for seed ``s`` (cached as float16 per clip), and the
    shows. ``s = CALIB_SEED`` with a ``TRAIN_BANK`` config gives the calibration rooms."""
    cfg = (cfg or RoomConfig()).validate()
    ids = [c.id for c in clips]
    shows = room_shows(ids, s)
    rooms = Path(cache_dir) / "rooms" if cache_dir is not None else None
    out: list[np.ndarray | None] = [None] * len(clips)
    todo = [(show, show_seed(s, show, ids)) for show in shows]
    bar = tqdm(total=len(clips), desc=f"room audio s{s}", unit="clip", disable=not progress, leave=False)
    for show, seed in todo:
        for i in show:
            c = clips[i]
            f = None
            if cache_dir is not None:
                folder = cache_folder(Path(cache_dir), f"{c.dataset}-room-{cfg.key()}-s{s}", sr)
                folder.mkdir(parents=True, exist_ok=True)
                f = folder / f"{_safe(c.id)}--{_key(c, sr)}.npy"
                if f.is_file():
                    try:
                        out[i] = np.load(f).astype(np.float32)
                        bar.update()
                        continue
                    except (OSError, ValueError):
                        pass
            y = room_degrade(audio[i], sr, seed, cfg, rooms)
            if f is not None:
                _save_atomic(f, y.astype(np.float16))
            out[i] = y
            bar.update()
    bar.close()
    return [np.asarray(x) for x in out], shows


def clip_ltas(audio: Sequence[np.ndarray], sr: int, cfg: RoomNormConfig) -> np.ndarray:
    """``[clips, bands]`` long-term band power of each clip (reference spectra are means of these)."""
    return np.stack([ltas_power(x, sr, cfg) for x in audio])


def reference_of(ltas: np.ndarray, sr: int, cfg: RoomNormConfig) -> SpectrumReference:
    """The reference spectrum of clips with long-term spectra ``ltas`` (``[clips, bins]``, as
    ``roomnorm.reference_from`` computes it)."""
    bp = np.stack([band_power(r, cfg, sr) for r in ltas])
    keep = bp.sum(axis=1) > 0
    p = (bp[keep] / bp[keep].sum(axis=1, keepdims=True)).mean(axis=0)
    return SpectrumReference(sample_rate=int(sr), freqs=tuple(band_centres(cfg).tolist()),
                             db=tuple(centred_db(p, cfg).tolist()), config=asdict(cfg))


def apply_norm(room: Sequence[np.ndarray], shows: Sequence[Sequence[int]] | None, mode: str,
               ref: SpectrumReference | list[SpectrumReference], sr: int,
               idx: Sequence[int] | None = None) -> dict[int, np.ndarray]:
    """The clips ``idx`` (default: all) of ``room`` through the equaliser ``mode`` (see the module
    docstring); ``ref`` one reference or one per clip (a fold's). Delay-compensated, so windows
    keep their positions. ``shows=None`` (clips that share no room): ``show``/``stream`` -> ``clip``."""
    want = set(range(len(room)) if idx is None else idx)
    refs = ref if isinstance(ref, list) else [ref] * len(room)
    if mode == "none":
        return {i: room[i] for i in want}
    if mode == "clip" or shows is None:
        out = {}
        for i in want:
            r = refs[i]
            out[i] = compensate_delay(normalize_offline(room[i], sr, r), r.norm_config().taps // 2)
        return out
    out = {}
    for show in shows:
        need = [i for i in show if i in want]
        if not need:
            continue
        if mode == "show":
            for i in need:
                r = refs[i]
                p = np.mean([ltas_power(room[j], sr, r.norm_config()) for j in show], axis=0)
                y = normalize_offline(room[i], sr, r, ltas=p)
                out[i] = compensate_delay(y, r.norm_config().taps // 2)
        elif mode == "stream":  # the show in order, live; each clip's stretch of the output
            by_ref: dict[int, list[int]] = {}
            for i in need:
                by_ref.setdefault(id(refs[i]), []).append(i)
            for group in by_ref.values():
                r = refs[group[0]]
                norm = RoomNormalizer(r, sr)
                y = norm.process(np.concatenate([room[j] for j in show]))
                y = compensate_delay(y, norm.delay)
                edges = np.cumsum([0] + [len(room[j]) for j in show])
                for k, j in enumerate(show):
                    if j in group:
                        out[j] = y[edges[k] : edges[k + 1]]
        else:
            raise ValueError(f"unknown norm mode {mode!r}")
    return out


@torch.no_grad()
def window_scores(models: Sequence[torch.nn.Module], audio: Sequence[np.ndarray], hop_s: float = 1.0
                  ) -> list[np.ndarray]:
    """Per clip, ``[windows, 2]`` outputs (the mean over ``models``), windows framed as the
    runtime frames them (``fit.clip_windows``)."""
    m0 = models[0]
    win = m0.cfg.window_samples
    hop = max(1, int(round(hop_s * m0.cfg.sample_rate)))
    out: list[np.ndarray] = []
    group: list[np.ndarray] = []

    def flush() -> None:  # a few clips' windows at a time: a fold's all at once would be ~1.4 GB
        if not group:
            return
        flat = np.concatenate(group)
        y = np.mean([predict_windows(m, flat, next(m.parameters()).device) for m in models], axis=0)
        edges = np.cumsum([0] + [len(w) for w in group])
        out.extend(y[edges[i] : edges[i + 1]] for i in range(len(group)))
        group.clear()

    for x in audio:
        group.append(clip_windows(np.asarray(x, np.float32), win, hop))
        if sum(len(w) for w in group) >= 256:
            flush()
    flush()
    return out


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def shifted(win: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Window outputs with ``offset`` added to their logits (what the runtime's re-centring does)."""
    return 1 / (1 + np.exp(-(_logit(win) + np.asarray(offset)[None, :])))


def clip_scores(wins: Sequence[np.ndarray], offset: np.ndarray | None = None) -> np.ndarray:
    """``[clips, 2]``: the mean window output of each clip, after ``offset`` if given."""
    return np.stack([(shifted(w, offset) if offset is not None else w).mean(axis=0) for w in wins])


def fit_offset(wins: Sequence[np.ndarray], target: np.ndarray) -> np.ndarray:
    """Logit offsets (one per output) that make the mean clip score of ``wins`` equal ``target``
    (bisection; the mean is monotonic in the offset)."""
    out = np.zeros(2)
    for j in range(2):
        lo, hi = -8.0, 8.0
        for _ in range(50):
            mid = (lo + hi) / 2
            off = np.zeros(2)
            off[j] = mid
            if clip_scores(wins, off)[:, j].mean() < target[j]:
                lo = mid
            else:
                hi = mid
        out[j] = (lo + hi) / 2
    return out


def summary(y: np.ndarray, scores: np.ndarray, quads: np.ndarray, clean: np.ndarray | None = None
            ) -> dict[str, float]:
    """``clip_metrics`` plus the mean arousal and valence (and their shift from ``clean``)."""
    m = clip_metrics(y, scores, quads)
    m["mean_arousal"], m["mean_valence"] = (float(v) for v in scores.mean(axis=0))
    if clean is not None:
        m["shift_arousal"], m["shift_valence"] = (float(v) for v in scores.mean(axis=0) - clean.mean(axis=0))
    return m


def mean_over_seeds(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for r in rows for k in r})
    return {k: float(np.nanmean([r.get(k, math.nan) for r in rows])) for k in keys}


def _oof_list(a: np.ndarray) -> list:
    return [None if np.isnan(r[0]) else [float(r[0]), float(r[1])] for r in a]


def room_evaluation(fold_models: dict[int, Sequence[torch.nn.Module]], clips: Sequence[Clip],
                    audio: Sequence[np.ndarray], folds: Sequence[tuple[np.ndarray, np.ndarray]],
                    seeds: Sequence[int], paths: Sequence[RoomPath], cfg: RoomConfig | None = None,
                    cache_dir: Path | None = None, stage_audio: Sequence[np.ndarray] | None = None,
                    progress: bool = True) -> dict:
    """Score each fold's models on its test clips: clean, through the room test for each seed,
    and (``stage_audio``) through the old stage test, each through every room path in ``paths``
    (``none`` is always scored). Returns the ``room_test`` record of a result JSON: pooled
    metrics (with mean outputs and their shift from clean) per path and seed, their mean over
    seeds, out-of-fold scores and the re-centring offsets used."""
    from .data import targets

    cfg = (cfg or RoomConfig()).validate()
    paths = list(dict.fromkeys([RoomPath(), *paths]))
    ks = sorted(fold_models)
    sr = int(fold_models[ks[0]][0].cfg.sample_rate)
    n = len(clips)
    y, quads = targets(clips), np.array([c.quadrant for c in clips])
    ncfg = RoomNormConfig().validate()
    refs: list[SpectrumReference | None] = [None] * n
    if any(p.norm != "none" for p in paths):
        lt = clip_ltas(audio, sr, ncfg)
        for k in ks:
            tr, te = folds[k]
            r = reference_of(lt[tr], sr, ncfg)  # the fold's training music only
            for i in te:
                refs[i] = r
    tested = np.concatenate([folds[k][1] for k in ks])
    done = np.zeros(n, bool)
    done[tested] = True

    def score(src: Sequence[np.ndarray], shows, norm: str) -> dict[int, np.ndarray]:
        """Window outputs of every tested clip of ``src`` through ``norm``, by its fold's models."""
        wins: dict[int, np.ndarray] = {}
        for k in ks:
            te = list(folds[k][1])
            normed = apply_norm(src, shows, norm, refs, sr, idx=te) if norm != "none" else \
                {i: src[i] for i in te}
            for i, w in zip(te, window_scores(fold_models[k], [normed[i] for i in te]), strict=True):
                wins[i] = w
        return wins

    def pooled(wins: dict[int, np.ndarray], offsets: dict[int, np.ndarray] | None, clean: np.ndarray | None
               ) -> tuple[dict, np.ndarray]:
        sc = np.full((n, 2), np.nan)
        for k in ks:
            te = folds[k][1]
            sc[te] = clip_scores([wins[i] for i in te], offsets[k] if offsets else None)
        m = summary(y[done], sc[done], quads[done], None if clean is None else clean[done])
        return m, sc

    log.info("room test: clean scores")
    clean_w = score(audio, None, "none")
    _, clean = pooled(clean_w, None, None)
    out: dict = {"config": asdict(cfg), "seeds": list(seeds), "show_clips": SHOW_CLIPS,
                 "paths": [p.name for p in paths], "norm_config": asdict(ncfg), "folds_run": ks,
                 "clean": summary(y[done], clean[done], quads[done]), "room": {}, "stage": {}, "offsets": {}}
    offsets: dict[str, dict[int, np.ndarray]] = {}
    rec_norms = sorted({p.norm for p in paths if p.recentre})
    if rec_norms:
        if len(ks) < 2:
            raise ValueError("room test: re-centring needs at least two folds (offsets come from the others)")
        ccfg = replace(cfg, bank=TRAIN_BANK)
        cal, cal_shows = load_room_audio(clips, audio, sr, CALIB_SEED, ccfg, cache_dir, progress)
        for norm in rec_norms:
            log.info("room test: calibration rooms, norm %s", norm)
            w = score(cal, cal_shows, norm)
            d = {k: fit_offset([w[i] for i in folds[k][1]], clean[folds[k][1]].mean(axis=0)) for k in ks}
            offsets[norm] = {k: np.mean([d[j] for j in ks if j != k], axis=0) for k in ks}
            out["offsets"][norm] = {"per_fold_calibration": {str(k): d[k].tolist() for k in ks},
                                    "applied": {str(k): offsets[norm][k].tolist() for k in ks},
                                    "all_folds": np.mean([d[k] for k in ks], axis=0).tolist()}
            del w
        del cal
    for s in seeds:
        room, shows = load_room_audio(clips, audio, sr, s, cfg, cache_dir, progress)
        for norm in sorted({p.norm for p in paths}):
            log.info("room test: seed %d, norm %s", s, norm)
            w = score(room, shows, norm)
            for p in paths:
                if p.norm != norm:
                    continue
                m, sc = pooled(w, offsets.get(norm) if p.recentre else None, clean)
                rec = out["room"].setdefault(p.name, {"seeds": {}})
                rec["seeds"][str(s)] = {"pooled": m, "oof": _oof_list(sc)}
                log.info("room s%d %s: a_auc %.3f v_auc %.3f f1 %.3f mean a %.3f v %.3f", s, p.name,
                         m["arousal_auc"], m["valence_auc"], m["quadrant_macro_f1"], m["mean_arousal"],
                         m["mean_valence"])
        del room
    for rec in out["room"].values():
        rec["mean"] = mean_over_seeds([v["pooled"] for v in rec["seeds"].values()])
    if stage_audio is not None:
        for norm in sorted({p.norm for p in paths}):
            w = score(stage_audio, None, norm)
            for p in paths:
                if p.norm == norm:
                    m, sc = pooled(w, offsets.get(norm) if p.recentre else None, clean)
                    out["stage"][p.name] = {"pooled": m, "oof": _oof_list(sc)}
    out["clean_oof"] = _oof_list(clean)
    return out


def merge_room(old: dict | None, new: dict) -> dict:
    """``new`` room-test record with the paths of ``old`` that ``new`` did not score (same room
    config, seeds and folds only; otherwise ``new`` alone)."""
    if not old or any(old.get(k) != new.get(k) for k in ("config", "seeds", "folds_run", "norm_config")):
        return new
    out = dict(new)
    for part in ("room", "stage", "offsets"):
        out[part] = {**old.get(part, {}), **new.get(part, {})}
    out["paths"] = list(dict.fromkeys([*old.get("paths", []), *new.get("paths", [])]))
    return out


def room_training_audio(clips: Sequence[Clip], audio: Sequence[np.ndarray], sr: int, r: int,
                        norm: str = "none", cache_dir: Path | None = None) -> list[np.ndarray]:
    """Training version ``r`` of every clip: through the TRAINING room bank (shows dealt with seed
    ``r``; never a test room), then the normaliser ``norm`` with the mean clean spectrum of all
    ``clips`` as reference (unlabelled audio; per-fold references differ from it by hundredths of
    a dB)."""
    cfg = replace(RoomConfig(), bank=TRAIN_BANK)
    room, shows = load_room_audio(clips, audio, sr, r, cfg, cache_dir, progress=False)
    if norm == "none":
        return room
    ncfg = RoomNormConfig().validate()
    ref = reference_of(clip_ltas(audio, sr, ncfg), sr, ncfg)
    got = apply_norm(room, shows, norm, ref, sr)
    return [got[i] for i in range(len(room))]
