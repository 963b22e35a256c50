"""Train, cross-validate and ship the music-presence model (``models/mer-presence.onnx``).

``python -m train.presence --cv --ship`` rebuilds the shipped file and its card:

* positives: the 716 4Q clips (``cache.load_audio``: the runtime's decode chain), their
  stage-degraded versions (``cache.load_stage_audio``) and EMOPIA piano renders
  (``midi.load_emopia``); in training also music made quiet over a room's noise floor and music
  under crowd noise or speech (mixed as powers, music dominant);
* the music-kinds corpus (``showmusic``: drum grooves on real sampled, GM and synthesised kits,
  EDM from MIDI, solo GM instruments, recorded game music; issue #25), folds by kit, instrument or
  package; ``--no-showmusic`` is the recipe of the model shipped on 2026-12-03;
* negatives: ``negatives.bank`` (silence, room tone, hum, applause, crowd, synthesized speech,
  tunings, line checks), 30 s each, grouped by voice or seed;
* the model: the multires log-mel front end of ``train/models.py`` with the window's mean level
  removed (gain does not matter), a 3-block CNN, one sigmoid: float32 ``[batch, samples]`` at
  16 kHz -> ``[batch, 1]``;
* training on cached spectrograms (the front end is fixed): random crops, mixtures in the power
  domain, a smooth random EQ;
* 5 held-out folds: 4Q by artist (``data.artist_folds``), EMOPIA by song, negatives by group
  (a test fold's voices are never trained on). Every test item is scored through the exported
  ONNX graph on the runtime's windows (0.1 s hop) and through the runtime's gate
  (``mer_live.presence.music_flags``); transition streams (music -> talk/applause/... -> music)
  give the gate's on and off delays. The alsa-utils recordings of a real voice are a held-out
  real-speech test (never trained on).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import math
import pickle
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mer_live.common import silence

from .models import ModelConfig, make_frontend

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
SHIP_PATH = ROOT / "models" / "mer-presence.onnx"
RESULTS = ROOT / "train" / "experiments" / "results"
ALSA_DIR = Path("/usr/share/sounds/alsa")
SR = 16000

#: the music-kinds corpus (``train/showmusic.py``: drum grooves, EDM, solo instruments, recorded
#: game music), label 1
SHOW_KINDS = ("groove-kit", "groove-gm", "groove-synth", "edm-intro", "edm", "solo", "recorded")
#: kinds that are music (label 1); every negatives.KINDS kind is label 0
MUSIC_KINDS = ("4q", "4q-stage", "4q-quiet", "emopia") + SHOW_KINDS
#: issue #25's floors after the gate: music kinds the least share of hops flagged music (from 2 s
#: after the first full window), not-music kinds the most (today's levels)
FLOORS = {"groove-kit": 0.95, "groove-gm": 0.95, "groove-synth": 0.95, "edm-intro": 0.95, "edm": 0.95,
          "solo": 0.90, "recorded": 0.98}
CAPS = {"speech": 0.02, "crowd": 0.02, "applause": 0.02, "silence": 0.02, "tuning": 0.10}


def presence_config(window_seconds: float = 2.0) -> ModelConfig:
    """The front end: multires log-mel, 40 mel bands 30 Hz..8 kHz, 40-ms frames, short DFTs
    (128 points at 4 kHz below 1.5 kHz, 128 at 16 kHz above): presence needs no fine pitch, and
    the whole model stays ~8 MFLOPs a window."""
    return ModelConfig(
        arch="mel_cnn",
        sample_rate=SR,
        window_seconds=window_seconds,
        hop=640,
        n_mels=40,
        fmin=30.0,
        fmax=8000.0,
        trainable_mel=False,
        frontend="multires",
        split_hz=1500.0,
        low_n_fft=128,
        low_decim=4,
        high_n_fft=128,
        band_scale="mel",
        level_norm=True,
        channels=(8, 16, 32),
        embed_dim=32,
        dropout=0.2,
    )


class PresenceNet(nn.Module):
    """Log-mel (level removed, per-band BatchNorm) -> 3 conv blocks -> mean over frequency ->
    mean and max over time -> a small MLP -> one logit. ``forward`` = sigmoid, ``[B, 1]``."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.frontend = make_frontend(cfg)
        layers: list[nn.Module] = []
        cin = 1
        for c in cfg.channels:
            layers += [
                nn.Conv2d(cin, c, 3, padding=1, bias=False),
                nn.BatchNorm2d(c),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            cin = c
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Linear(2 * cin, cfg.embed_dim),
            nn.ReLU(inplace=True),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.embed_dim, 1),
        )

    def logits_from_db(self, db: torch.Tensor) -> torch.Tensor:
        """Band power in dB ``[B, n_mels, frames]`` -> logits ``[B]`` (cached training)."""
        h = self.body(self.frontend.normalize(db)).mean(dim=2)
        return self.head(torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1))[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits_from_db(self.frontend.power_db(x)))[:, None]


def build_model(cfg: ModelConfig | None = None, seed: int = 0) -> PresenceNet:
    torch.manual_seed(seed)
    m = PresenceNet(cfg or presence_config())
    for p in m.frontend.parameters():  # the DFT and band filters are fixed; only the BatchNorm learns
        if p is not m.frontend.bn.weight and p is not m.frontend.bn.bias:
            p.requires_grad_(False)
    return m


# ---------------------------------------------------------------- data


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


def group_folds(groups: Sequence[str], k: int = 5, seed: int = 0) -> np.ndarray:
    """Fold index (0..k-1) of each item, whole groups to a fold, balanced by item count
    (groups shuffled by ``seed``, then GroupKFold), deterministic."""
    from sklearn.model_selection import GroupKFold

    uniq = sorted(set(groups))
    if len(uniq) < k:
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
    from .negatives import at_db

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
    from .cache import load_audio, load_stage_audio
    from .data import artist_folds, load_4q
    from .midi import load_emopia

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
    from mer_live.common.framing import prepare_offline
    from mer_live.live.pipeline import PipelineConfig

    from . import negatives

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
            x = prepare_offline(b.audio[:, None], SR, SR, PipelineConfig()).astype(np.float32)
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
    from mer_live.common.framing import prepare_offline
    from mer_live.live.pipeline import PipelineConfig

    from . import showmusic

    cnt = dict(showmusic.DEFAULT_COUNTS if counts is None else counts)
    key = hashlib.sha1(repr((seed, sorted(cnt.items()), seconds, showmusic.VERSION)).encode())
    folder = Path(cache_dir) / f"showmusic-{key.hexdigest()[:10]}"
    folder.mkdir(parents=True, exist_ok=True)
    items: list[Item] = []
    for kind in [k_ for k_ in showmusic.KINDS if cnt.get(k_) and (kinds is None or k_ in kinds)]:
        index = folder / f"index-{kind}.json"
        if index.is_file():
            meta = json.loads(index.read_text())
            items += [
                Item(m["kind"], m["group"], m["name"], 1, np.load(folder / f"{m['name']}.npy")) for m in meta
            ]
            continue
        got = []
        for g, name, x in showmusic.items(kind, SR, seed, seconds, cnt[kind]):
            y = prepare_offline(x[:, None], SR, SR, PipelineConfig()).astype(np.float16)
            np.save(folder / f"{name}.npy", y)
            got.append(Item(kind, g, name, 1, y))
        index.write_text(json.dumps([{"kind": i.kind, "group": i.group, "name": i.name} for i in got]))
        items += got
    f = group_folds([i.group for i in items], k=k, seed=seed + 1)
    for i, fi in zip(items, f, strict=True):
        i.fold = int(fi)
    return items


def alsa_voice() -> list[tuple[str, np.ndarray]]:
    """The alsa-utils recordings (a real person saying "Front Left" etc., and its pink "Noise"),
    through the runtime's chain at 16 kHz: ``[(name, audio)]``; empty when alsa-utils is absent."""
    import soundfile as sf

    from mer_live.common.framing import prepare_offline
    from mer_live.live.pipeline import PipelineConfig

    out = []
    for p in sorted(ALSA_DIR.glob("*.wav")):
        x, sr = sf.read(str(p), dtype="float32", always_2d=True)
        out.append((p.stem, prepare_offline(x, int(sr), SR, PipelineConfig()).astype(np.float32)))
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


# ---------------------------------------------------------------- features and fitting


def features(model: PresenceNet, audio: Sequence[np.ndarray], progress: bool = False) -> list[torch.Tensor]:
    """Band power in dB ``[n_mels, frames]`` (float16) of each whole recording by the fixed front end."""
    from tqdm.auto import tqdm

    from .specfit import mel_cache

    out = []
    with torch.no_grad():
        for x in tqdm(audio, desc="features", unit="item", disable=not progress, leave=False):
            out.append(mel_cache(model, [np.asarray(x, np.float32)])[0])  # type: ignore[arg-type]
    return out


@dataclass(frozen=True)
class PresenceFitConfig:
    """How the presence model is fitted on cached spectrograms."""

    epochs: int = 12
    steps: int = 150  #: batches per epoch
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-3
    label_smoothing: float = 0.02
    p_mix_pos: float = 0.35  #: music + a negative (crowd, talk, noise) 3..25 dB below it: still music
    p_quiet: float = 0.15  #: music at a low level over a room-tone floor 6..20 dB below it
    p_mix_neg: float = 0.3  #: two negatives together (talk over applause, hum under a crowd)
    eq_db: float = 6.0
    #: share of music crops per kind, and of negative crops per kind (unlisted kinds: 0)
    music_weights: dict[str, float] = field(
        default_factory=lambda: {
            "4q": 0.3,
            "4q-stage": 0.25,
            "emopia": 0.15,
            "groove-kit": 0.07,
            "groove-gm": 0.05,
            "groove-synth": 0.03,
            "edm-intro": 0.04,
            "edm": 0.03,
            "solo": 0.08,
            "recorded": 0.05,
        }
    )
    negative_weights: dict[str, float] = field(
        default_factory=lambda: {
            "speech": 0.28,
            "crowd": 0.12,
            "applause": 0.12,
            "tuning": 0.14,
            "line_check": 0.12,
            "room_tone": 0.1,
            "hum": 0.06,
            "silence": 0.06,
        }
    )
    seed: int = 0
    threads: int = 1
    progress: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.steps < 1 or self.batch_size < 2:
            raise ValueError("epochs and steps must be >= 1, batch_size >= 2")
        for n in ("p_mix_pos", "p_quiet", "p_mix_neg"):
            if not 0 <= getattr(self, n) <= 1:
                raise ValueError(f"{n} must be a probability")


def _crop(db: torch.Tensor, t: int, g: torch.Generator) -> torch.Tensor:
    n = db.shape[1]
    if n <= t:
        return F.pad(db.float(), (0, t - n), value=float(db.float().min()))
    s = int(torch.randint(0, n - t + 1, (1,), generator=g))
    return db[:, s : s + t].float()


def _pmix(a_db: torch.Tensor, b_db: torch.Tensor, rel_db: float) -> torch.Tensor:
    """Powers of ``a`` + ``b`` with ``b`` scaled to ``rel_db`` relative to ``a``'s mean power, in dB."""
    pa, pb = 10 ** (a_db / 10), 10 ** (b_db / 10)
    scale = pa.mean() / (pb.mean() + 1e-12) * 10 ** (rel_db / 10)
    return 10 * torch.log10(pa + pb * scale + 1e-8)


def fit_presence(
    model: PresenceNet,
    feats: Sequence[torch.Tensor],
    kinds: Sequence[str],
    labels: Sequence[int],
    cfg: PresenceFitConfig,
) -> dict[str, Any]:
    """Fit ``model`` on random crops of ``feats`` (half music, half not, each side by its kind
    weights; a kind with no items is skipped). Returns the loss history."""
    from tqdm.auto import tqdm

    torch.set_num_threads(max(1, cfg.threads))
    g = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    t = model.cfg.window_samples // model.cfg.hop + 1
    by_kind: dict[str, list[int]] = {}
    for i, k in enumerate(kinds):
        by_kind.setdefault(k, []).append(i)
    pos = {k: w for k, w in cfg.music_weights.items() if by_kind.get(k)}
    neg = {k: w for k, w in cfg.negative_weights.items() if by_kind.get(k)}
    if not pos:  # any labelled music kind not in the weights (a test's tiny set)
        pos = {k: 1.0 for k in by_kind if labels[by_kind[k][0]] == 1}
    if not neg:
        neg = {k: 1.0 for k in by_kind if labels[by_kind[k][0]] == 0}
    if not pos or not neg:
        raise ValueError("presence training needs music and non-music items")
    floor_kinds = [k for k in ("room_tone", "hum", "silence") if by_kind.get(k)] or list(neg)
    mix_kinds = list(neg)

    def draw(weights: dict[str, float]) -> int:
        ks = list(weights)
        p = np.array([weights[k] for k in ks], float)
        k = ks[rng.choice(len(ks), p=p / p.sum())]
        return int(by_kind[k][rng.integers(len(by_kind[k]))])

    def any_of(ks: list[str]) -> torch.Tensor:
        k = ks[rng.integers(len(ks))]
        return _crop(feats[by_kind[k][rng.integers(len(by_kind[k]))]], t, g)

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = cfg.epochs * cfg.steps
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=0.15)
    hist = []
    half = cfg.batch_size // 2
    nf = model.cfg.n_mels
    bar = tqdm(total=total, desc="presence fit", unit="step", disable=not cfg.progress, leave=False)
    model.train()
    for ep in range(cfg.epochs):
        run = 0.0
        for _ in range(cfg.steps):
            xs, ys = [], []
            for j in range(cfg.batch_size):
                music = j < half
                db = _crop(feats[draw(pos if music else neg)], t, g)
                u = rng.random()
                if music and u < cfg.p_quiet:
                    db = _pmix(db - rng.uniform(25, 50), any_of(floor_kinds), -rng.uniform(6, 20))
                elif music and u < cfg.p_quiet + cfg.p_mix_pos:
                    db = _pmix(db, any_of(mix_kinds), -rng.uniform(3, 25))
                elif not music and u < cfg.p_mix_neg:
                    db = _pmix(db, any_of(mix_kinds), rng.uniform(-15, 5))
                if cfg.eq_db > 0:  # a smooth random EQ over the bands (speaker, room, microphone)
                    pts = torch.from_numpy(rng.uniform(-cfg.eq_db, cfg.eq_db, 5)).float()
                    db = (
                        db
                        + F.interpolate(pts[None, None], size=nf, mode="linear", align_corners=True)[
                            0, 0, :, None
                        ]
                    )
                db = db + float(
                    rng.uniform(-20, 20)
                )  # input gain (level removal makes it moot above the floor)
                xs.append(db.clamp(min=-80.0))
                ys.append(1.0 if music else 0.0)
            x = torch.stack(xs)
            y = torch.tensor(ys) * (1 - 2 * cfg.label_smoothing) + cfg.label_smoothing
            loss = F.binary_cross_entropy_with_logits(model.logits_from_db(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            run += float(loss.detach())
            bar.update(1)
        hist.append(run / cfg.steps)
        bar.set_postfix(loss=f"{hist[-1]:.3f}")
        log.info("epoch %d: loss %.4f", ep + 1, hist[-1])
    bar.close()
    model.eval()
    return {"loss": hist}


# ---------------------------------------------------------------- export and scoring


def export(model: PresenceNet, path: Path, card_extra: dict[str, Any] | None = None) -> Path:
    """``path`` (.onnx) + card through ``train.export.export_onnx`` with the presence contract
    (one output ``music``, ``[batch, 1]``), parity checked within 1e-4."""
    from .export import export_onnx

    return export_onnx(
        model,
        Path(path),
        sample_rate=model.cfg.sample_rate,
        window_samples=model.cfg.window_samples,
        name=Path(path).stem,
        card_extra=card_extra,
        outputs=("music",),
        output_name="music",
        scale="0..1, probability that music is playing",
    )


def stream_probs(
    pm: Any, x: np.ndarray, hop_s: float = 0.1, batch: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """``(probs [n], t [n])``: ``pm.predict`` over the runtime's windows of ``x`` (each ends on a
    hop boundary, t = its end in seconds)."""
    from mer_live.common.framing import frame_windows

    x = np.asarray(x, np.float32)
    w, hop = pm.window_samples, int(round(hop_s * SR))
    ends = frame_windows(x, w, hop)[0] if len(x) >= w else np.zeros(0, np.int64)
    out = np.empty(len(ends), np.float32)
    for i in range(0, len(ends), batch):
        e = ends[i : i + batch]
        idx = e[:, None] - w + np.arange(w)[None, :]
        out[i : i + batch] = pm.predict(x[idx])
    return out, ends / SR


def silent_flags(x: np.ndarray, ends: np.ndarray, hop: int) -> np.ndarray:
    """The pipeline's silence flag at each window end, at its default thresholds, with hops of
    ``hop`` samples (``mer_live.common.silence``, the live rule)."""
    return silence.silent_flags(x, ends, SR, hop_s=hop / SR)


@dataclass
class Scored:
    """One test recording's out-of-fold probabilities (0.1-s hop) and silence flags."""

    kind: str
    name: str
    label: int
    fold: int
    probs: np.ndarray
    silent: np.ndarray
    group: str = ""


@dataclass
class Transition:
    """A stream music A -> negative -> music B (``seg_s`` each), out-of-fold probabilities."""

    neg_kind: str
    fold: int
    probs: np.ndarray
    silent: np.ndarray
    seg_s: float


def score_fold(
    pm: Any,
    test: Sequence[Item],
    fold: int,
    n_transitions: int,
    seg_s: float = 20.0,
    seed: int = 0,
    progress: bool = True,
) -> tuple[list[Scored], list[Transition]]:
    """Every test item's stream probabilities, and ``n_transitions`` music -> X -> music streams
    built from this fold's test items (X: speech, crowd, applause, tuning, line check)."""
    from tqdm.auto import tqdm

    hop = int(0.1 * SR)
    scored = []
    for it in tqdm(test, desc=f"score fold {fold}", unit="item", disable=not progress, leave=False):
        x = it.wave()
        p, t = stream_probs(pm, x)
        scored.append(
            Scored(
                it.kind,
                it.name,
                it.label,
                fold,
                p.astype(np.float16),
                silent_flags(x, (t * SR).astype(int), hop),
                it.group,
            )
        )
    rng = np.random.default_rng([seed, fold])
    music = [i for i in test if i.kind in ("4q", "4q-stage", "emopia")]
    negs = [i for i in test if i.kind in ("speech", "crowd", "applause", "tuning", "line_check")]
    trans = []
    n = int(seg_s * SR)
    for j in range(n_transitions if music and negs else 0):
        a, b = music[rng.integers(len(music))], music[rng.integers(len(music))]
        kinds = sorted({i.kind for i in negs})
        k = kinds[j % len(kinds)]
        pool = [i for i in negs if i.kind == k]
        m = pool[rng.integers(len(pool))]
        parts = []
        for it in (a, m, b):
            y = it.wave()[:n]
            y = np.pad(y, (0, n - len(y)))
            # a show's levels: the talk/applause at the music's level -6..+3 dB
            parts.append(y)
        from .negatives import _rms

        ref = _rms(parts[0])
        parts[1] = parts[1] * (ref / max(_rms(parts[1]), 1e-9) * 10 ** (rng.uniform(-6, 3) / 20))
        parts[2] = parts[2] * (ref / max(_rms(parts[2]), 1e-9))
        x = np.concatenate(parts).astype(np.float32)
        p, t = stream_probs(pm, x)
        trans.append(
            Transition(k, fold, p.astype(np.float16), silent_flags(x, (t * SR).astype(int), hop), seg_s)
        )
    return scored, trans


# ---------------------------------------------------------------- metrics


def _gate(probs: np.ndarray, silent: np.ndarray, gate: Any) -> np.ndarray:
    from mer_live.inference.presence import music_flags

    return music_flags(np.asarray(probs, np.float32), 0.1, silent, gate)


def kind_metrics(
    scored: Sequence[Scored], gate: Any, threshold: float = 0.5, allow_s: float = 2.0
) -> dict[str, dict[str, Any]]:
    """Per kind: per-window error rate (false music for negatives, missed music for music) at
    ``threshold``, and after the gate on each 30-s stream from "no music": the error time rate
    (music: counted from ``allow_s`` after the first full window) and, for music, the seconds from
    the first window to the declaration; for negatives the share of streams with any music."""
    out: dict[str, dict[str, Any]] = {}
    for kind in sorted({s.kind for s in scored}):
        ss = [s for s in scored if s.kind == kind]
        lab = ss[0].label
        win_err, gated_err, n_win, n_gated, anyflag, declare = 0, 0, 0, 0, 0, []
        from_start, n_start = 0, 0
        by_group: dict[str, list[int]] = {}
        for s in ss:
            p = s.probs.astype(np.float32)
            f = _gate(p, s.silent, gate)
            if lab:
                win_err += int((p < threshold).sum())
                skip = int(round(allow_s / 0.1))
                gated_err += int((~f[skip:]).sum())
                n_gated += max(0, len(f) - skip)
                from_start += int(f.sum())
                n_start += len(f)
                gr = by_group.setdefault(s.group or kind, [0, 0])
                gr[0] += int(f[skip:].sum())
                gr[1] += max(0, len(f) - skip)
                on = np.flatnonzero(f)
                declare.append(float(on[0]) * 0.1 if len(on) else math.inf)
            else:
                win_err += int((p >= threshold).sum())
                gated_err += int(f.sum())
                n_gated += len(f)
                anyflag += int(f.any())
            n_win += len(p)
        d: dict[str, Any] = {"items": len(ss), "windows": n_win, "label": "music" if lab else "not music"}
        name = "missed_music" if lab else "false_music"
        d[f"{name}_per_window"] = win_err / max(1, n_win)
        d[f"{name}_after_gate"] = gated_err / max(1, n_gated)
        if lab:
            fin = np.array(declare)
            d["declare_s_median"] = quantile(fin, 0.5)
            d["declare_s_p90"] = quantile(fin, 0.9)
            d["never_declared"] = int(np.isinf(fin).sum())
            # share of hops flagged music from the first full window on (2 s into the item)
            d["flagged_from_first_window"] = from_start / max(1, n_start)
            d["groups"] = {g: v[0] / max(1, v[1]) for g, v in sorted(by_group.items())}
        else:
            d["streams_with_music"] = anyflag
        out[kind] = d
    return out


def quantile(v: np.ndarray, q: float) -> float | None:
    """An observed value at quantile ``q`` (``inverted_cdf``: never interpolates towards an
    infinite "never happened"); None when that value is infinite."""
    if len(v) == 0:
        return None
    x = float(np.quantile(np.asarray(v, float), q, method="inverted_cdf"))
    return x if math.isfinite(x) else None


def transition_metrics(trans: Sequence[Transition], gate: Any) -> dict[str, Any]:
    """Off delay (music A ends -> "no music"), on delay (music B starts -> "music") and the false
    music time in the middle part once it has turned off, per middle kind and pooled."""
    rows: dict[str, list[tuple[float, float, float]]] = {}
    for tr in trans:
        f = _gate(tr.probs.astype(np.float32), tr.silent, gate)
        t = 2.0 + 0.1 * np.arange(len(f))  # window ends (window 2.0 s, hop 0.1 s)
        a_end, b_start = tr.seg_s, 2 * tr.seg_s
        mid = (t > a_end) & (t <= b_start)
        off = np.flatnonzero(mid & ~f)
        off_d = float(t[off[0]] - a_end) if len(off) else math.inf
        onb = np.flatnonzero((t > b_start) & f)
        on_d = float(t[onb[0]] - b_start) if len(onb) else math.inf
        after = mid & (t > (t[off[0]] if len(off) else b_start))
        fm = float(f[after].mean()) if after.any() else 0.0
        rows.setdefault(tr.neg_kind, []).append((off_d, on_d, fm))
    out: dict[str, Any] = {}

    def summ(r: list[tuple[float, float, float]]) -> dict[str, Any]:
        a = np.array(r)
        return {
            "streams": len(a),
            "off_s_median": quantile(a[:, 0], 0.5),
            "off_s_p90": quantile(a[:, 0], 0.9),
            "never_off": int(np.isinf(a[:, 0]).sum()),
            "on_s_median": quantile(a[:, 1], 0.5),
            "on_s_p90": quantile(a[:, 1], 0.9),
            "never_on": int(np.isinf(a[:, 1]).sum()),
            "false_music_after_off": float(a[:, 2].mean()),
        }

    for k, r in sorted(rows.items()):
        out[k] = summ(r)
    if rows:
        out["all"] = summ([x for r in rows.values() for x in r])
    return out


def window_auc(scored: Sequence[Scored]) -> float:
    from sklearn.metrics import roc_auc_score

    y = np.concatenate([np.full(len(s.probs), s.label) for s in scored])
    p = np.concatenate([s.probs.astype(np.float32) for s in scored])
    return float(roc_auc_score(y, p))


def choose_gate(scored: Sequence[Scored], trans: Sequence[Transition]) -> tuple[Any, list[dict[str, Any]]]:
    """The gate setting that keeps the median on delay <= 2 s and the p90 off delay <= 3 s on the
    transition streams and, among those, has the fewest errors after the gate (mean of the music
    kinds' missed rate and the negative kinds' false rate). Returns (GateConfig, grid rows)."""
    from mer_live.inference.presence import GateConfig

    rows = []
    for on_p in (0.5, 0.6, 0.7, 0.8):
        for off_p in (0.2, 0.35, 0.5):
            if off_p > on_p:
                continue
            for on_s in (0.3, 0.5, 0.8):
                for off_s in (0.8, 1.2, 1.6):
                    g = GateConfig(on_p, off_p, on_s, off_s)
                    km = kind_metrics(scored, g)
                    tm = transition_metrics(trans, g).get("all", {})
                    miss = np.mean(
                        [v["missed_music_after_gate"] for v in km.values() if v["label"] == "music"]
                    )
                    fm = np.mean([v["false_music_after_gate"] for v in km.values() if v["label"] != "music"])
                    rows.append(
                        {
                            "gate": asdict(g),
                            "missed": float(miss),
                            "false": float(fm),
                            "false_by_kind": {
                                k: v["false_music_after_gate"]
                                for k, v in km.items()
                                if v["label"] != "music"
                            },
                            "on_s_median": tm.get("on_s_median"),
                            "off_s_p90": tm.get("off_s_p90"),
                        }
                    )
    ok = [
        r
        for r in rows
        if r["on_s_median"] is not None
        and r["on_s_median"] <= 2.0
        and r["off_s_p90"] is not None
        and r["off_s_p90"] <= 3.0
    ]
    # among those, the settings that keep every not-music kind at or under its cap (CAPS: today's
    # levels), if any; then the fewest errors
    capped = [r for r in ok if all(r["false_by_kind"].get(k, 0.0) <= c for k, c in CAPS.items())]
    best = min(capped or ok or rows, key=lambda r: r["missed"] + r["false"])
    return GateConfig(**best["gate"]), rows


# ---------------------------------------------------------------- runs


def _ort(path: Path) -> Any:
    from mer_live.inference.presence import PresenceModel

    return PresenceModel(path, provider="cpu", threads=1)


def train_items(
    items: Sequence[Item],
    feats: Sequence[torch.Tensor],
    idx: Sequence[int],
    fit: PresenceFitConfig,
    cfg: ModelConfig,
    seed: int,
) -> PresenceNet:
    m = build_model(cfg, seed)
    fit_presence(m, [feats[i] for i in idx], [items[i].kind for i in idx], [items[i].label for i in idx], fit)
    return m


def run(args: argparse.Namespace) -> int:
    cache = Path(args.cache)
    cfg = presence_config(args.window)
    fit = PresenceFitConfig(epochs=args.epochs, steps=args.steps, threads=args.threads, seed=args.seed)
    if not args.showmusic:  # the recipe of the model shipped on 2026-12-03 (before issue #25)
        fit = replace(fit, music_weights={"4q": 0.4, "4q-stage": 0.35, "emopia": 0.25})
    if args.show_weight != 1.0:  # more (or fewer) music-kinds crops against the 4Q and EMOPIA ones
        w = {k: v * (args.show_weight if k in SHOW_KINDS else 1.0) for k, v in fit.music_weights.items()}
        fit = replace(fit, music_weights=w)
    t0 = time.time()
    items = load_music(cache, emopia_limit=args.emopia) + load_negatives(cache, seed=args.seed)
    if args.showmusic:
        items += load_showmusic(cache, seed=args.seed)
    items = add_quiet(items)
    if args.limit:  # a quick look: every kind, fewer items
        rng = np.random.default_rng(0)
        keep = []
        for k in sorted({i.kind for i in items}):
            ks = [i for i in items if i.kind == k]
            keep += [ks[j] for j in sorted(rng.permutation(len(ks))[: args.limit])]
        items = keep
    log.info("items: %s", {k: sum(i.kind == k for i in items) for k in sorted({i.kind for i in items})})
    fe = build_model(cfg)
    train_kinds = [i for i, it in enumerate(items) if it.kind != "4q-quiet"]  # quiet music: test only
    feats: list[torch.Tensor | None] = [None] * len(items)

    def need_features() -> None:
        if feats[train_kinds[0]] is not None:
            return
        for i, f in zip(
            train_kinds, features(fe, [items[i].audio for i in train_kinds], progress=True), strict=True
        ):
            feats[i] = f
        log.info("features in %.0f s", time.time() - t0)

    tag = args.name
    # a fold's out-of-fold results are kept (cache/presence-cv/) under a key of everything they
    # depend on, so folds can run in separate processes (--only-folds) and one run merges them
    fold_key = hashlib.sha1(
        json.dumps(
            [cfg.to_dict(), asdict(fit), sorted((i.name, i.kind, i.fold) for i in items), args.transitions],
            default=str,
        ).encode()
    ).hexdigest()[:10]
    ship_state = cache / "presence-cv" / f"{tag}-ship-{fold_key}.pt"
    ship_state.parent.mkdir(parents=True, exist_ok=True)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "name": tag,
        "model": cfg.to_dict(),
        "fit": {k: v for k, v in asdict(fit).items()},
        "command": "python -m train.presence " + " ".join(sys.argv[1:]),
        "items": {k: sum(i.kind == k for i in items) for k in sorted({i.kind for i in items})},
    }
    if args.cv:
        scored: list[Scored] = []
        trans: list[Transition] = []
        alsa_folds = []
        fold_commands: dict[int, str] = {}
        only = [v.strip() for v in args.only_folds.split(",") if v.strip()]
        folds = [int(v) for v in only if v != "ship"] if only else list(range(args.folds))
        for f in folds:
            part = cache / "presence-cv" / f"{tag}-fold{f}-{fold_key}.pkl"
            if part.is_file():
                with open(part, "rb") as fh:
                    s, t, alsa, fold_commands[f] = pickle.load(fh)
                log.info("fold %d: out-of-fold results from %s", f, part.name)
            else:
                need_features()
                tr = [i for i in train_kinds if items[i].fold != f]
                te = [items[i] for i in range(len(items)) if items[i].fold == f]
                m = train_items(items, feats, tr, fit, cfg, args.seed + f)  # type: ignore[arg-type]
                onnx = cache / "presence-cv" / f"{tag}-fold{f}.onnx"
                export(m, onnx)
                pm = _ort(onnx)
                s, t = score_fold(pm, te, f, args.transitions, seed=args.seed, progress=True)
                xa = alsa_stream()
                alsa = None
                if len(xa):
                    p, tt = stream_probs(pm, xa)
                    alsa = (p, silent_flags(xa, (tt * SR).astype(int), 1600))
                fold_commands[f] = result["command"]
                with open(part.with_suffix(".tmp"), "wb") as fh:
                    pickle.dump((s, t, alsa, fold_commands[f]), fh)
                part.with_suffix(".tmp").replace(part)
            scored += s
            trans += t
            if alsa is not None:
                alsa_folds.append(alsa)
            log.info("fold %d done (%.0f s): window AUC so far %.4f", f, time.time() - t0, window_auc(scored))
        if args.only_folds:
            if "ship" in only:  # the shipped model's training, kept for the merging run
                need_features()
                m = train_items(items, feats, train_kinds, fit, cfg, args.seed)  # type: ignore[arg-type]
                torch.save(m.state_dict(), ship_state)
            log.info("folds %s kept in %s; merge with a run without --only-folds", args.only_folds, cache)
            return 0
        gate, grid = choose_gate(scored, trans)
        result["cv"] = {
            "protocol": (
                f"{args.folds} held-out folds: 4Q by artist (train.data.artist_folds k=5 seed=0; a clip's "
                "stage and quiet versions stay with it), EMOPIA by song, negatives by generator group "
                "(speech and voiced line checks by voice, the rest by seed). Each fold's model is "
                "exported to ONNX and scores its test items on the runtime's windows (2 s, hop 0.1 s); "
                "'after gate' runs mer_live.presence.music_flags over each 30-s item from 'no music' "
                "(music: errors counted from 2 s after the first window). Transitions: streams of "
                "20 s music -> 20 s negative -> 20 s music from one fold's test items. The gate "
                "setting was chosen on these out-of-fold probabilities (a small grid, choose_gate)."
            ),
            "window_auc": window_auc(scored),
            "fold_commands": {str(k): v for k, v in sorted(fold_commands.items())},
            "gate": asdict(gate),
            "per_kind": kind_metrics(scored, gate),
            "transitions": transition_metrics(trans, gate),
            "alsa_real_voice": {
                "folds": len(alsa_folds),
                "false_music_per_window": float(np.mean([(p >= 0.5).mean() for p, _ in alsa_folds]))
                if alsa_folds
                else None,
                "false_music_after_gate": float(np.mean([_gate(p, s, gate).mean() for p, s in alsa_folds]))
                if alsa_folds
                else None,
                "max_prob": float(max(p.max() for p, _ in alsa_folds)) if alsa_folds else None,
            },
            "gate_grid": grid,
        }
        prior = RESULTS / f"presence-{tag}-before.json"  # --before's table of the model this replaces
        if prior.is_file():
            b = json.loads(prior.read_text())
            result["cv"]["before"] = {"model": b["model"], "sha256": b["sha256"], "per_kind": b["per_kind"]}
        np.savez_compressed(
            cache / "presence-cv" / f"{tag}-oof.npz",
            **{f"s{i}_{s.kind}": s.probs for i, s in enumerate(scored)},
            **{f"t{i}_{t.neg_kind}": t.probs for i, t in enumerate(trans)},
        )
        if trans:
            _plot_transitions(trans, gate, out_dir / f"presence-{tag}-stream.png")
        log.info("CV done in %.0f s", time.time() - t0)
    if args.ship:
        if ship_state.is_file():
            m = build_model(cfg, args.seed)
            m.load_state_dict(torch.load(ship_state))
            m.eval()
            log.info("the shipped model: trained by an --only-folds ...,ship run (%s)", ship_state.name)
        else:
            need_features()
            m = train_items(items, feats, train_kinds, fit, cfg, args.seed)  # type: ignore[arg-type]
        card = ship_card(result, args)
        path = Path(args.ship_path)
        export(m, path, card)
        result["shipped"] = {
            "path": str(path),
            "sha256": json.loads(path.with_suffix(".json").read_text())["sha256"],
        }
    result["seconds"] = round(time.time() - t0, 1)
    out = RESULTS / f"presence-{tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=float) + "\n")
    print(f"wrote {out}")
    return 0


def score_model(onnx: Path, items: Sequence[Item], progress: bool = True) -> tuple[list[Scored], Any]:
    """Every item through one ONNX presence model (its card's gate): ``(scored, GateConfig)``."""
    from mer_live.inference.presence import GateConfig

    pm = _ort(onnx)
    gate = GateConfig.from_dict(pm.card.extra.get("gate") or {})
    scored, _ = score_fold(pm, items, 0, 0, progress=progress)
    return scored, gate


def before(args: argparse.Namespace) -> int:
    """The ``--before`` table: a trained model (default: the shipped one, which never heard the
    corpus) and its gate on every music-kinds corpus item; results JSON and the markdown table."""
    cache = Path(args.cache)
    items = load_showmusic(cache, seed=args.seed)
    onnx = Path(args.before)
    scored, gate = score_model(onnx, items)
    km = kind_metrics(scored, gate)
    result = {
        "model": str(onnx),
        "sha256": hashlib.sha256(onnx.read_bytes()).hexdigest(),
        "command": "python -m train.presence " + " ".join(sys.argv[1:]),
        "gate": asdict(gate),
        "per_kind": km,
        "items": {k: sum(i.kind == k for i in items) for k in sorted({i.kind for i in items})},
    }
    out = RESULTS / f"presence-{args.name}-before.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=float) + "\n")
    print(show_table(km))
    print(f"wrote {out}")
    return 0


def show_table(per_kind: dict[str, Any], before: dict[str, Any] | None = None) -> str:
    """The music kinds' floors table: share of hops flagged music after the gate (from 2 s after
    the first full window; and from the first window), the worst group, the floor; with
    ``before`` (another per_kind) a before column."""
    head = (
        "| kind | items | groups | flagged music after the gate | from the first window | worst group "
        "| floor |"
    )
    if before is not None:
        head = head.replace("| kind | items | groups |", "| kind | items | groups | before (shipped) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for k in SHOW_KINDS + ("4q", "4q-stage", "4q-quiet", "emopia"):
        d = per_kind.get(k)
        if d is None or d["label"] != "music":
            continue
        share = 1 - d["missed_music_after_gate"]
        worst = min(d.get("groups", {}).items(), key=lambda kv: kv[1], default=("", float("nan")))
        fl = FLOORS.get(k)
        ok = "" if fl is None else (f">= {100 * fl:.0f} % " + ("held" if share >= fl else "**missed**"))
        cells = [k, str(d["items"]), str(len(d.get("groups", {})))]
        if before is not None:
            b = before.get(k)
            cells.append("" if b is None else f"{100 * (1 - b['missed_music_after_gate']):.1f} %")
        cells += [
            f"{100 * share:.1f} %",
            f"{100 * d.get('flagged_from_first_window', float('nan')):.1f} %",
            f"{worst[0]} {100 * worst[1]:.0f} %",
            ok,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ship_card(result: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    cv = result.get("cv", {})
    return {
        "description": (
            "Probability that music is playing, from 2 s of mono audio at 16000 Hz: a 40-band mel "
            "spectrogram from two short fixed DFTs (128 points at 4 kHz below 1.5 kHz, 128 at 16 kHz "
            "above), 40 ms frames, the window's mean level removed, + a 3-block CNN [8, 16, 32]."
        ),
        "training_data": {
            "music": "4Q (716 clips, 30 s; clean and stage-degraded), EMOPIA piano renders "
            f"({result['items'].get('emopia', 0)} clips, J800 piano SoundFont); quiet and crowd/talk-"
            "over-music mixtures made in training",
            "not_music": (
                f"train/negatives.py bank (seed {args.seed}): "
                + ", ".join(f"{k} {v}" for k, v in result["items"].items() if k not in MUSIC_KINDS)
                + "; speech from espeak-ng, flite and festival voices"
            ),
            "held_out": "the alsa-utils recordings of a real voice (never trained on)",
        },
        "metrics": {
            k: cv[k] for k in ("window_auc", "per_kind", "transitions", "alsa_real_voice") if k in cv
        },
        "gate": cv.get("gate"),
        "protocol": cv.get("protocol"),
        "recipe": {"model": result["model"], "fit": result["fit"]},
        "trained_on": "CPU (2 cores); no GPU was available",
        "trained": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": result["command"],
    }


def _plot_transitions(trans: Sequence[Transition], gate: Any, path: Path) -> None:
    """Probability and gate over one stream of each middle kind (out-of-fold)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = sorted({t.neg_kind for t in trans})
    fig, axes = plt.subplots(len(kinds), 1, figsize=(9, 1.7 * len(kinds)), sharex=True)
    axes = np.atleast_1d(axes)
    for ax, k in zip(axes, kinds, strict=True):
        tr = next(t for t in trans if t.neg_kind == k)
        p = tr.probs.astype(np.float32)
        t = 2.0 + 0.1 * np.arange(len(p))
        ax.plot(t, p, lw=0.8, label="music probability")
        ax.fill_between(t, 0, _gate(p, tr.silent, gate), alpha=0.2, step="post", label="gate: music")
        for b in (tr.seg_s, 2 * tr.seg_s):
            ax.axvline(b, color="k", lw=0.6, ls="--")
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel(k, fontsize=8)
    axes[0].legend(loc="lower left", fontsize=7)
    axes[-1].set_xlabel(f"s (music | {'/'.join(kinds)} | music, out-of-fold)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def markdown(result: dict[str, Any]) -> str:
    """The CV results of a results JSON as the tables of docs/presence.md."""
    cv = result["cv"]
    g = cv["gate"]

    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{100 * v:.1f} %"

    def sec(v: float | None) -> str:
        return "never" if v is None else f"{v:.1f}"

    lines = [
        f"Window AUC (music vs. not, every 0.1-s window of every test item): {cv['window_auc']:.4f}. "
        f"Gate: on_prob {g['on_prob']}, off_prob {g['off_prob']}, on_s {g['on_s']}, off_s {g['off_s']}.",
        "",
        "| kind | items | windows | error per window (p >= 0.5) | error after the gate | "
        "declared after (median / p90 s) |",
        "|---|---|---|---|---|---|",
    ]
    order = list(MUSIC_KINDS) + [
        "silence",
        "room_tone",
        "hum",
        "applause",
        "crowd",
        "speech",
        "tuning",
        "line_check",
    ]
    pk = cv["per_kind"]
    for k in [k for k in order if k in pk]:
        d = pk[k]
        if d["label"] == "music":
            err = (d["missed_music_per_window"], d["missed_music_after_gate"])
            dec = f"{sec(d['declare_s_median'])} / {sec(d['declare_s_p90'])} ({d['never_declared']} never)"
            lab = f"{k} (music: missed)"
        else:
            err = (d["false_music_per_window"], d["false_music_after_gate"])
            dec = f"{d['streams_with_music']} of {d['items']} streams ever flagged"
            lab = f"{k} (false music)"
        lines.append(f"| {lab} | {d['items']} | {d['windows']} | {pct(err[0])} | {pct(err[1])} | {dec} |")
    a = cv.get("alsa_real_voice") or {}
    if a.get("folds"):
        lines.append(
            f"| alsa real voice (false music; all 5 fold models) | 8 files | | "
            f"{pct(a['false_music_per_window'])} | {pct(a['false_music_after_gate'])} | "
            f"max probability {a['max_prob']:.2f} |"
        )
    lines += [
        "",
        "| music -> X -> music | streams | off delay median / p90 s (never) | on delay median / p90 s "
        "(never) | false music in X after off |",
        "|---|---|---|---|---|",
    ]
    for k, d in cv["transitions"].items():
        lines.append(
            f"| {k} | {d['streams']} | {sec(d['off_s_median'])} / {sec(d['off_s_p90'])} ({d['never_off']}) | "
            f"{sec(d['on_s_median'])} / {sec(d['on_s_p90'])} ({d['never_on']}) | "
            f"{pct(d['false_music_after_off'])} |"
        )
    if any(k in pk for k in SHOW_KINDS):
        lines += [
            "",
            show_table(pk, (cv.get("before") or {}).get("per_kind")),
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m train.presence", description=__doc__.split("\n")[0])
    ap.add_argument("--cv", action="store_true", help="5 held-out folds, results JSON")
    ap.add_argument("--ship", action="store_true", help="train on everything, write --ship-path + card")
    ap.add_argument("--ship-path", default=str(SHIP_PATH))
    ap.add_argument("--name", default="default")
    ap.add_argument("--window", type=float, default=2.0)
    ap.add_argument("--epochs", type=int, default=PresenceFitConfig.epochs)
    ap.add_argument("--steps", type=int, default=PresenceFitConfig.steps)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument(
        "--only-folds",
        default="",
        metavar="LIST",
        help="run only these folds (e.g. 0,1,2) and keep their results in the cache; a later run "
        "without it merges the kept folds (folds in parallel processes)",
    )
    ap.add_argument(
        "--no-showmusic",
        dest="showmusic",
        action="store_false",
        help="leave out the music-kinds corpus (train/showmusic.py): the recipe before issue #25",
    )
    ap.add_argument(
        "--before",
        metavar="ONNX",
        nargs="?",
        const=str(SHIP_PATH),
        help="score a trained presence model (default: the shipped one) and its card's gate on the "
        "whole music-kinds corpus and the negatives bank, print the per-kind table and exit",
    )
    ap.add_argument("--transitions", type=int, default=30, help="music -> X -> music streams per fold")
    ap.add_argument("--emopia", type=int, default=240, help="EMOPIA clips (0: none)")
    ap.add_argument("--limit", type=int, default=0, help="at most this many items per kind (a quick look)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--show-weight",
        type=float,
        default=1.0,
        help="scale the music-kinds corpus' share of the music crops (PresenceFitConfig.music_weights)",
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", default=str(ROOT / "cache"))
    ap.add_argument("--out", default=str(ROOT / "docs"))
    ap.add_argument(
        "--table", metavar="JSON", help="print a results JSON's tables (docs/presence.md) and exit"
    )
    args = ap.parse_args(argv)
    if args.table:
        print(markdown(json.loads(Path(args.table).read_text())))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.before:
        return before(args)
    if not (args.cv or args.ship):
        ap.error("nothing to do: give --cv and/or --ship")
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
