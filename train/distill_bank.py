"""A bank of augmented crops with the teacher's view of EXACTLY the audio the student sees.

Distillation "done right" (issue #17, route 2; Beyer et al. 2022, "a good teacher is patient and
consistent"): the student should match the teacher on the same augmented view it trains on, not
on clip averages of clean audio. musicnn costs ~35-55 ms per 3-s patch on this CPU, far too much to
run inside every training step, so the views are drawn once, label-free, and kept:

* for every clip, ``k`` random 6-s crops (plus the 256 samples before each, the teacher's context);
  ``mixup_k`` of them mixed with a random other clip's crop (power share ``lam`` ~ Beta(a, a), the
  larger share on the clip itself) BEFORE the rig, as two sources in one room would be;
* each crop through a random live-rig chain built from ``train/augment.py``'s waveform effects:
  speed (pitch and tempo together), random EQ, room reverb, venue noise, PA compression, microphone
  band limits and input gain;
* the teacher's 200-d features of that audio's two back-to-back 2.992-s patches
  (``models/musicnn-msd.onnx``, onnxruntime), and the student's front-end spectrogram of the same
  96,000 samples (``power_db`` of the window, as the exported graph computes it).

No label is read here, so one bank serves every fold; a fold keeps the crops whose clips (and mixup
partner) are all training clips (``train.distill``). Derived from the data: cached under ``cache/``,
never committed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from . import augment, teacher
from .models import ModelConfig, build_model
from .specfit import frontend_key

log = logging.getLogger(__name__)

CONTEXT = teacher.CONTEXT  # 256 samples before a patch that the teacher's first frame reads
PATCH = teacher.PATCH_SAMPLES  # 47,872


@dataclass(frozen=True)
class BankConfig:
    """How the bank's views are drawn. Validated here, at the edge."""

    k: int = 20  # crops per clip
    mixup_k: int = 5  # of which mixed with another clip
    mixup_alpha: float = 0.4
    p_speed: float = 0.3
    semitones: float = 1.0
    p_eq: float = 0.5
    eq_db: float = 6.0
    p_band: float = 0.5
    p_reverb: float = 0.15
    rt60: tuple[float, float] = (0.2, 1.0)
    p_noise: float = 0.15
    snr_db: tuple[float, float] = (10.0, 30.0)
    p_compress: float = 0.15
    gain_db: float = 6.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.k < 1 or not 0 <= self.mixup_k <= self.k:
            raise ValueError(f"k >= 1 and 0 <= mixup_k <= k are required, got {self.k}, {self.mixup_k}")
        for name in ("p_speed", "p_eq", "p_band", "p_reverb", "p_noise", "p_compress"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a probability")
        if not 0 <= self.semitones <= 4 or self.mixup_alpha <= 0 or not 0 <= self.gain_db <= 24:
            raise ValueError("semitones in [0, 4], mixup_alpha > 0 and gain_db in [0, 24] are required")

    def to_dict(self) -> dict:
        return asdict(self)


#: bits of ``Bank.augs``: which effects hit a crop
AUG_BITS = {"speed": 1, "eq": 2, "reverb": 4, "noise": 8, "compress": 16, "band": 32}


@dataclass
class Bank:
    """The crops of one bank. ``clip[i]`` indexes ``ids``; ``partner[i]`` is the mixup partner's
    index or -1; ``lam[i]`` the clip's power share (1 without mixup); ``spec`` the student's
    ``power_db`` ``[n, n_mels, frames]`` (float16); ``features`` the teacher's ``[n, 2, 200]``
    (its two patches); ``tags`` ``[n, 2, 50]``; ``augs`` bit masks (``AUG_BITS``)."""

    ids: list[str]
    clip: np.ndarray
    partner: np.ndarray
    lam: np.ndarray
    start: np.ndarray
    augs: np.ndarray
    spec: np.ndarray
    features: np.ndarray
    tags: np.ndarray
    meta: dict

    def __len__(self) -> int:
        return len(self.clip)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.npz")
        np.savez(tmp, ids=np.array(self.ids), clip=self.clip, partner=self.partner, lam=self.lam,
                 start=self.start, augs=self.augs, spec=self.spec, features=self.features, tags=self.tags,
                 meta=json.dumps(self.meta))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Bank:
        try:
            z = np.load(path)
            return cls(ids=[str(i) for i in z["ids"]], clip=z["clip"], partner=z["partner"], lam=z["lam"],
                       start=z["start"], augs=z["augs"], spec=z["spec"], features=z["features"],
                       tags=z["tags"], meta=json.loads(str(z["meta"])))
        except (OSError, KeyError, ValueError) as e:
            raise ValueError(f"{path}: not a distillation bank ({e})") from None


def bank_key(ids: Sequence[str], mcfg: ModelConfig, cfg: BankConfig, teacher_sha: str) -> str:
    """A short name for a bank: clips, student front end, draw config and teacher file."""
    items = repr((list(ids), frontend_key(mcfg), mcfg.window_samples, sorted(cfg.to_dict().items()),
                  teacher_sha))
    return hashlib.sha1(items.encode()).hexdigest()[:12]


def _segment(y: np.ndarray, start: int, n: int) -> np.ndarray:
    """``n`` samples of ``y`` from ``start`` (zeros past its end)."""
    s = np.asarray(y[start: start + n], np.float32)
    return s if len(s) == n else np.pad(s, (0, n - len(s)))


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


def draw_clip(audio: Sequence[np.ndarray], i: int, cfg: BankConfig, window: int
              ) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
    """The ``cfg.k`` augmented segments of clip ``i`` (``[k, CONTEXT + window]``) and what was drawn.
    Seeded by ``(cfg.seed, i)`` alone, so a clip's views do not depend on which others are drawn."""
    rng = np.random.default_rng([cfg.seed, i])
    g = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
    n_out = CONTEXT + window
    max_ratio = 2 ** (cfg.semitones / 12)
    src = int(math.ceil(n_out * max_ratio)) + 2
    k, n_clips = cfg.k, len(audio)
    segs, starts, partners, lams = [], [], [], []
    for j in range(k):
        y = audio[i]
        st = int(rng.integers(0, max(1, len(y) - src + 1)))
        x = _segment(y, st, src)
        partner, lam = -1, 1.0
        if j >= k - cfg.mixup_k and n_clips > 1:
            partner = int(rng.integers(0, n_clips - 1))
            partner += partner >= i  # any clip but this one
            yp = audio[partner]
            xp = _segment(yp, int(rng.integers(0, max(1, len(yp) - src + 1))), src)
            b = float(rng.beta(cfg.mixup_alpha, cfg.mixup_alpha))
            lam = max(b, 1 - b)
            # power shares lam / 1 - lam at the clip's own level (mixing amplitudes by lam would
            # give lam**2; unnormalised, a loud partner would drown a quiet clip whatever lam says)
            x = math.sqrt(lam) * x + math.sqrt(1 - lam) * xp * (_rms(x) / _rms(xp))
        segs.append(x)
        starts.append(st)
        partners.append(partner)
        lams.append(lam)
    x = torch.from_numpy(np.stack(segs))
    x, hits = rig(x, cfg, n_out, g)
    return x, {"start": np.array(starts, np.int64), "partner": np.array(partners, np.int64),
               "lam": np.array(lams, np.float32), "augs": hits}


def rig(x: torch.Tensor, cfg: BankConfig, n_out: int, g: torch.Generator) -> tuple[torch.Tensor, np.ndarray]:
    """``augment.py``'s live-rig effects on ``[b, >= n_out * max speed]`` segments, each effect on a
    random share of them; returns ``[b, n_out]`` and the bit mask of the effects each got."""
    b, sr = x.shape[0], teacher.SR
    hits = np.zeros(b, np.int64)

    def some(p: float, name: str, fn, y: torch.Tensor) -> torch.Tensor:
        hit = torch.rand(b, generator=g) < p
        if not bool(hit.any()):
            return y
        hits[hit.numpy()] |= AUG_BITS[name]
        out = y.clone()
        out[hit] = fn(y[hit])
        return out

    with torch.no_grad():
        ratio = torch.ones(b)
        on = torch.rand(b, generator=g) < cfg.p_speed
        ratio[on] = 2 ** (((torch.rand(int(on.sum()), generator=g) * 2 - 1) * cfg.semitones) / 12)
        hits[on.numpy()] |= AUG_BITS["speed"]
        x = augment.speed_change(x, n_out, ratio).contiguous()
        x = some(cfg.p_eq, "eq", lambda y: augment.random_eq(y, sr, cfg.eq_db, g), x)
        x = some(cfg.p_reverb, "reverb", lambda y: augment.reverb(y, sr, g, cfg.rt60), x)
        x = some(cfg.p_noise, "noise", lambda y: augment.add_noise(y, sr, g, cfg.snr_db), x)
        x = some(cfg.p_compress, "compress", lambda y: augment.compress(y, sr, g), x)
        x = some(cfg.p_band, "band", lambda y: augment.band_limit(y, sr, g), x)
        x = x * 10 ** (((torch.rand(b, generator=g) * 2 - 1) * cfg.gain_db)[:, None] / 20)
    return torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0), hits


def teacher_windows(seg: np.ndarray, window: int) -> np.ndarray:
    """The teacher's inputs for a segment of ``CONTEXT + window`` samples whose last ``window`` are the
    student's crop: back-to-back patches from the crop's first sample, each with the 256 samples
    before it (``[n_patches, 48128]``)."""
    n_p = window // PATCH
    if n_p < 1 or seg.shape[-1] != CONTEXT + window:
        raise ValueError(f"teacher_windows: a segment of {CONTEXT} + window samples with window >= {PATCH}")
    return np.stack([seg[..., p * PATCH: p * PATCH + teacher.WINDOW_SAMPLES] for p in range(n_p)], axis=-2)


def build_bank(audio: Sequence[np.ndarray], ids: Sequence[str], mcfg: ModelConfig, cfg: BankConfig,
               onnx_path: Path = teacher.ONNX_PATH, threads: int = 1, partial: Path | None = None,
               progress: bool = True, save_every: int = 50) -> Bank:
    """Draw every clip's views and run the teacher and the student's front end on them (see the
    module docstring). ``partial``: a file where work in progress is kept every ``save_every`` clips
    and resumed from (the teacher is the slow part: ~0.1-0.2 s per patch on this busy host)."""
    from tqdm.auto import tqdm

    if mcfg.sample_rate != teacher.SR:
        raise ValueError(f"the teacher hears {teacher.SR} Hz; the student's front end {mcfg.sample_rate}")
    torch.set_num_threads(threads)
    window = mcfg.window_samples
    sess = teacher.session(onnx_path, threads=threads)
    sha = teacher.sha256_of(onnx_path)
    fe = build_model(mcfg).frontend.eval()
    meta = {"config": cfg.to_dict(), "model": mcfg.to_dict(), "frontend_key": frontend_key(mcfg),
            "teacher": str(onnx_path.name), "teacher_sha256": sha, "window": window, "context": CONTEXT,
            "patch_samples": PATCH}
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("clip", "partner", "lam", "start", "augs", "spec",
                                                          "features", "tags")}
    done = 0
    if partial is not None and partial.is_file():
        try:
            old = Bank.load(partial)
            if old.meta == meta and old.ids == list(ids):
                done = int(old.clip.max()) + 1 if len(old) else 0
                for k in parts:
                    parts[k].append(getattr(old, k))
                log.info("bank: resuming after %d clips from %s", done, partial)
        except ValueError:
            log.warning("bank: %s unreadable; starting again", partial)

    def snapshot() -> Bank:
        cat = {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}
        return Bank(ids=list(ids), meta=meta, **cat)

    bar = tqdm(range(done, len(audio)), desc="bank (teacher)", unit="clip", disable=not progress,
               initial=done, total=len(audio))
    for i in bar:
        x, drawn = draw_clip(audio, i, cfg, window)
        seg = x.numpy().astype(np.float32)
        with torch.no_grad():
            spec = fe.power_db(torch.from_numpy(seg[:, CONTEXT:]))
        tw = teacher_windows(seg, window)  # [k, P, 48128]
        out = teacher.run_onnx(sess, tw.reshape(-1, tw.shape[-1]), batch=8)
        parts["clip"].append(np.full(len(seg), i, np.int64))
        for k in ("partner", "lam", "start", "augs"):
            parts[k].append(drawn[k])
        parts["spec"].append(spec.numpy().astype(np.float16))
        parts["features"].append(out["features"].reshape(len(seg), tw.shape[1], -1).astype(np.float32))
        parts["tags"].append(out["tags"].reshape(len(seg), tw.shape[1], -1).astype(np.float16))
        if partial is not None and (i + 1) % save_every == 0 and i + 1 < len(audio):
            snapshot().save(partial)
    bar.close()
    bank = snapshot()
    if not np.isfinite(bank.features).all():
        raise ValueError("bank: the teacher gave non-finite features")
    return bank


def ensure_bank(audio: Sequence[np.ndarray], ids: Sequence[str], mcfg: ModelConfig, cfg: BankConfig,
                cache: Path, onnx_path: Path = teacher.ONNX_PATH, threads: int = 1, progress: bool = True
                ) -> tuple[Bank, Path]:
    """The bank for these clips, config and teacher: read from ``cache`` when there, else built
    (resumably) and written there. Returns it and its file."""
    key = bank_key(ids, mcfg, cfg, teacher.sha256_of(onnx_path))
    path = Path(cache) / f"distill-bank-{key}.npz"
    if path.is_file():
        try:
            return Bank.load(path), path
        except ValueError as e:
            log.warning("%s; building again", e)
    partial = path.with_name(f"distill-bank-{key}.partial.npz")
    bank = build_bank(audio, ids, mcfg, cfg, onnx_path, threads, partial=partial, progress=progress)
    bank.save(path)
    partial.unlink(missing_ok=True)
    return bank, path
