"""Fast fitting on cached spectrograms: the recipe that trains the shipped model on a CPU.

``fit.fit_model`` runs the whole front end (and the waveform augmentations) on every crop of every
epoch; on 2 CPU cores that is ~35 s an epoch. Here the front end is FROZEN (fixed mel filters),
so each clip's mel power is computed once (``mel_cache``) and training draws random crops of it:
an epoch takes a few seconds. What the waveform chain would add is done in the power-spectrogram
domain, where the live rig's effects are (nearly) linear:

* random EQ: a smooth random curve over the mel bins (+- ``eq_db``);
* room reverb: exponential smearing of power over frames (RT60 drawn per crop);
* venue noise: coloured noise power added at a random SNR;
* band limits: a microphone/PA low and high cut;
* PA compression: frame loudness pulled towards the crop's mean;
* small pitch shift: a fractional shift of the mel axis; time stretch: resampling the frames;
* SpecAugment masks and mixup (of powers, so two tracks mix as they would in the air).

Evaluation never uses the cache: ``fit.predict_clips`` runs the complete model on raw windows
framed like the runtime's, so the CV numbers are those of the exported graph.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .augment import spec_augment, time_stretch
from .data import Clip, targets
from .models import EmotionModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PatchFeatures:
    """A pretrained model's embedding of each clip over time: the targets of a time-resolved
    ``feature_weight`` regression. ``values`` is ``[clips, P, d]`` (NaN past a clip's last patch),
    patch p covering ``starts[p]`` to ``starts[p] + seconds`` of the clip's audio. A training crop
    regresses the mean of the patches that lie inside it, so the target describes the 6 s the
    student hears rather than the whole clip's average."""
    values: np.ndarray
    starts: np.ndarray
    seconds: float

    def __post_init__(self) -> None:
        v, st = np.asarray(self.values), np.asarray(self.starts)
        if v.ndim != 3 or st.shape != (v.shape[1],) or not np.isfinite(st).all() or self.seconds <= 0:
            raise ValueError(f"PatchFeatures: values [clips, P, d] with starts [P] and seconds > 0, "
                             f"got {v.shape}, {st.shape}, {self.seconds}")
        if not np.isfinite(v[:, 0]).all():
            raise ValueError("PatchFeatures: every clip needs a finite first patch")


def _patch_target(pf: torch.Tensor, n_valid: int, starts: np.ndarray, seconds: float,
                  t0: float, t1: float) -> torch.Tensor:
    """Mean of a clip's patches inside [t0, t1] s (0.25 s of slack), else of those overlapping
    it, else the clip's mean: a crop near a short clip's end still gets a target."""
    inside = np.flatnonzero((starts[:n_valid] >= t0 - 0.25) & (starts[:n_valid] + seconds <= t1 + 0.25))
    if not len(inside):
        inside = np.flatnonzero((starts[:n_valid] < t1) & (starts[:n_valid] + seconds > t0))
    return pf[inside].mean(0) if len(inside) else pf[:n_valid].mean(0)

SPEC_AUGS = ("eq", "reverb", "noise", "band", "compress", "pitch", "stretch", "specaug", "mixup")


@dataclass(frozen=True)
class SpecFitConfig:
    """How one model is fitted on cached spectrograms. Validated here, at the edge."""

    epochs: int = 30
    batch_size: int = 48
    lr: float = 3e-3
    weight_decay: float = 1e-3
    crops_per_clip: int = 4
    aux_weight: float = 0.5  # auxiliary 4-way quadrant cross-entropy
    label_smoothing: float = 0.05
    # relative weight of the arousal half of the arousal/valence loss (valence 1; the pair is
    # rescaled to a mean weight of 1, so the auxiliary heads keep their share)
    arousal_weight: float = 1.0
    augs: tuple[str, ...] = SPEC_AUGS
    p_aug: float = 0.5  # probability of each waveform-like effect per crop
    eq_db: float = 6.0
    snr_db: tuple[float, float] = (5.0, 30.0)
    rt60: tuple[float, float] = (0.2, 1.5)
    pitch_bins: float = 1.0  # largest mel-axis shift (about a semitone around 1 kHz at 48 mels)
    stretch_max: float = 0.08
    freq_mask: int = 8
    time_mask: int = 20
    mixup_alpha: float = 0.4
    # exponential moving average of the weights (per step; 0: off): the averaged model is kept
    ema: float = 0.0
    # knowledge distillation: weight of the teachers' mean probability in the arousal/valence
    # targets (0: labels only); the teachers see the same augmented crop as the student
    distill: float = 0.0
    # auxiliary multi-label tag head (4Q: genres) on the shared embedding, weight in the loss; the
    # head lives outside the model (never exported): it only shapes what the embedding learns
    tag_weight: float = 0.0
    min_tag_count: int = 10
    # auxiliary regression onto a pretrained model's clip embedding (``clip_features`` of
    # fit_spec, e.g. musicnn's; standardised per dimension, mean squared error), weight in the
    # loss: what a tagger trained on far more music knows, taught to the embedding; never exported
    feature_weight: float = 0.0
    # multiple-instance loss: k > 1 random crops of a clip share one prediction, the mean of their
    # outputs, trained against the clip's label (as the clip is scored: a mean over its windows),
    # so a crop that does not carry the clip's mood is not forced to; 1 = one label per crop
    clip_pool: int = 1
    # progressive self-distillation (PS-KD, Kim et al. 2021): the arousal/valence targets become
    # (1 - a) x labels + a x the model's own mean probability for the clip in the previous epoch,
    # a rising linearly from 0 to this value over the epochs. Song-level tags mislabel some
    # clips; the model's earlier, still smooth opinion softens the targets it would memorise
    self_distill: float = 0.0
    # room training (issue #19): the probability that a crop is cut from one of the clip's
    # simulated room-microphone versions (``room_mels`` of fit_spec, ``train.room``) instead of
    # the clean clip; the spectrogram effects above still apply on top
    p_room: float = 0.0
    seed: int = 0
    threads: int = 2
    device: str = "auto"  # auto: cuda when present, else cpu (spectrogram crops are cut on the CPU)
    progress: bool = True

    def __post_init__(self) -> None:
        bad = [a for a in self.augs if a not in SPEC_AUGS]
        if bad:
            raise ValueError(f"unknown augmentation(s) {bad}: use {', '.join(SPEC_AUGS)}")
        if self.epochs < 1 or self.batch_size < 2 or self.crops_per_clip < 1:
            raise ValueError("epochs >= 1, batch_size >= 2 and crops_per_clip >= 1 are required")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device {self.device!r}: use auto, cpu or cuda")
        if not 0 <= self.p_aug <= 1 or not 0 <= self.label_smoothing < 0.5:
            raise ValueError("p_aug must be in [0, 1] and label_smoothing in [0, 0.5)")
        if not 0 <= self.ema < 1 or not 0 <= self.distill <= 1:
            raise ValueError("ema must be in [0, 1) and distill in [0, 1]")
        if not 0 < self.arousal_weight <= 10:
            raise ValueError("arousal_weight must be in (0, 10]")
        if self.tag_weight < 0 or self.min_tag_count < 1:
            raise ValueError("tag_weight must be >= 0 and min_tag_count >= 1")
        if self.feature_weight < 0:
            raise ValueError("feature_weight must be >= 0")
        if self.clip_pool < 1 or self.batch_size % self.clip_pool:
            raise ValueError("clip_pool must be >= 1 and divide batch_size")
        if not 0 <= self.self_distill <= 1:
            raise ValueError("self_distill must be in [0, 1]")
        if self.self_distill and "mixup" in self.augs:
            raise ValueError("self_distill needs one clip per crop: not with mixup")
        if not 0 <= self.p_room <= 1:
            raise ValueError("p_room must be a probability")


@dataclass
class SpecFitResult:
    model: EmotionModel
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def cached_mels(model: EmotionModel, audio: Sequence[np.ndarray], clips: Sequence[Clip],
                cache: Path | None) -> list[torch.Tensor]:
    """``mel_cache`` of ``audio``, kept on disk in ``cache`` under a key of the clips, the front
    end, torch's version and a sparse sample of the audio itself (a re-encoded or re-decoded clip
    gets new spectrograms); an unreadable entry is computed again. ``cache=None``: no disk."""
    import hashlib

    sha = hashlib.sha1(repr((frontend_key(model.cfg), torch.__version__, [c.id for c in clips])).encode())
    for a in audio:
        sha.update(f"{len(a)}".encode() + np.ascontiguousarray(np.asarray(a, np.float32)[::97]).tobytes())
    f = Path(cache) / f"mel-{sha.hexdigest()[:16]}.pt" if cache is not None else None
    if f is not None and f.is_file():
        try:
            return torch.load(f, weights_only=True)
        except Exception:  # unreadable cache entry: compute again
            log.warning("mel cache %s unreadable; computing again", f.name)
    t0 = time.time()
    mels = mel_cache(model, audio)
    log.info("mel spectrograms of %d clips in %.1f s", len(mels), time.time() - t0)
    if f is not None:
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_name(f".{f.name}.tmp")
        torch.save(mels, tmp)
        tmp.replace(f)
    return mels


@torch.no_grad()
def mel_cache(model: EmotionModel, audio: Sequence[np.ndarray], chunk_s: float = 60.0) -> list[torch.Tensor]:
    """Mel power in dB ``[n_mels, frames]`` (float16) of each whole clip, by the model's own
    (frozen) front end; frame ``j`` is centred on sample ``j * hop``, as in a window. A front end
    that learns its bands (``learn_bands``) gives its DFT-bin power instead, ``[bins, frames]``:
    ``fit_spec`` puts every crop through the current filters (``bands_db``).

    Long clips go through in chunks that overlap by the STFT's reach, so the result equals one pass
    over the whole clip (no seams)."""
    fe = model.frontend
    spec = fe.bins_db if learns_bands(model) else fe.power_db
    sr, hop, n_fft = model.cfg.sample_rate, model.cfg.hop, model.cfg.n_fft
    step = max(1, int(chunk_s * sr) // hop) * hop
    reach = -(-getattr(fe, "support", n_fft) // hop) + 1  # frames whose support crosses a chunk edge
    out = []
    for x in audio:
        x = torch.from_numpy(np.asarray(x, np.float32))
        n_frames = len(x) // hop + 1
        if len(x) <= step:
            out.append(spec(x[None])[0, :, :n_frames].to(torch.float16))
            continue
        parts = []
        for i in range(0, len(x), step):
            lo = 0 if i == 0 else i - reach * hop
            seg = x[lo : i + step + reach * hop]
            first = (i - lo) // hop
            want = min(step // hop, n_frames - i // hop)
            parts.append(spec(seg[None])[0, :, first : first + want])
        out.append(torch.cat(parts, dim=1).to(torch.float16))
    return out


#: the ModelConfig fields a cached spectrogram depends on (everything the frozen front end reads)
FRONTEND_FIELDS = ("sample_rate", "n_fft", "hop", "n_mels", "fmin", "fmax", "trainable_mel", "trainable_stft",
                   "frontend", "split_hz", "low_n_fft", "low_decim", "high_n_fft", "band_scale",
                   "semitone_lo_hz", "high_subframes")


def frontend_key(cfg: Any) -> str:
    """A short stable name for the spectrograms ``cfg``'s front end computes (cache file names)."""
    import hashlib

    d = cfg.to_dict()
    items = [(k, d[k]) for k in FRONTEND_FIELDS]
    if d.get("learn_bands"):  # only then: every earlier key (and cache file) stays what it was
        items.append(("learn_bands", True))
    return hashlib.sha1(repr(items).encode()).hexdigest()[:12]


def learns_bands(model: EmotionModel) -> bool:
    """Whether cached training learns ``model``'s band filters (the cache then holds bin power)."""
    return bool(getattr(model.frontend, "learns_bands", False))


#: the front-end parameters that learn when its bands do (multires, nnAudio)
BAND_PARAMS = ("fb_log", "mel.mel_basis")


def freeze_frontend(model: EmotionModel) -> None:
    """Fix the spectrogram filters (the cache depends on them); the per-bin BatchNorm still
    learns, and so do the band filters of a front end with ``learn_bands`` (the DFT stays fixed)."""
    keep = ("bn.",) + (BAND_PARAMS if learns_bands(model) else ())
    for name, p in model.frontend.named_parameters():
        p.requires_grad_(name.startswith(keep))


def _smooth_curve(b: int, nf: int, db: float, g: torch.Generator) -> torch.Tensor:
    """Random smooth dB curves ``[b, nf]``: 5 control points, linearly interpolated."""
    pts = (torch.rand(b, 1, 5, generator=g) * 2 - 1) * db
    return F.interpolate(pts, size=nf, mode="linear", align_corners=True)[:, 0]


def model_view(model: EmotionModel, db: torch.Tensor, cfg: SpecFitConfig, nt: int, g: torch.Generator
               ) -> torch.Tensor:
    """The model's input for a batch of dB crops: its front end's normalisation, then the
    feature-domain steps of ``cfg.augs`` (time stretch, SpecAugment) and the crop to ``nt`` frames."""
    feats = model.frontend.normalize(db)
    if "stretch" in cfg.augs:
        feats = time_stretch(feats, cfg.stretch_max, g)
    feats = feats[..., :nt]
    if "specaug" in cfg.augs:
        feats = spec_augment(feats, cfg.freq_mask, cfg.time_mask, g)
    return feats


def augment_db(db: torch.Tensor, cfg: SpecFitConfig, frame_rate: float, g: torch.Generator) -> torch.Tensor:
    """The live-rig effects on mel dB crops ``[B, F, T]`` (see the module docstring)."""
    b, nf, nt = db.shape
    on = set(cfg.augs)

    def hit() -> torch.Tensor:
        return (torch.rand(b, 1, 1, generator=g) < cfg.p_aug).float()

    if "pitch" in on:
        shift = (torch.rand(b, generator=g) * 2 - 1) * cfg.pitch_bins
        pos = (torch.arange(nf)[None, :] - shift[:, None]).clamp(0, nf - 1)
        i0 = pos.floor().long().clamp(max=nf - 2)
        frac = (pos - i0)[:, :, None]
        a = torch.gather(db, 1, i0[:, :, None].expand(b, nf, nt))
        c = torch.gather(db, 1, (i0 + 1)[:, :, None].expand(b, nf, nt))
        db = db + hit() * (a + (c - a) * frac - db)
    if "eq" in on:
        db = db + hit() * _smooth_curve(b, nf, cfg.eq_db, g)[:, :, None]
    if "band" in on:  # microphone / PA band limits: steep roll-off below lo and above hi bins
        lo = (torch.rand(b, 1, generator=g) * nf * 0.12)
        hi = nf - torch.rand(b, 1, generator=g) * nf * 0.25
        k = torch.arange(nf)[None, :].float()
        att = -12.0 * (F.relu(lo - k) + F.relu(k - hi))
        db = db + hit() * att[:, :, None]
    p = 10 ** (db.float() / 10)
    if "reverb" in on:
        rt = cfg.rt60[0] + torch.rand(b, generator=g) * (cfg.rt60[1] - cfg.rt60[0])
        n_tail = max(2, int(frame_rate * cfg.rt60[1]))
        t = torch.arange(n_tail)[None, :] / frame_rate
        kern = torch.exp(-6.9 * t / rt[:, None])  # power decays 60 dB over rt60
        kern = kern / kern.sum(dim=1, keepdim=True)
        wet = F.conv1d(F.pad(p, (n_tail - 1, 0)).reshape(1, b * nf, -1),
                       kern.flip(1).repeat_interleave(nf, 0)[:, None, :], groups=b * nf).reshape(b, nf, nt)
        mix = torch.rand(b, 1, 1, generator=g) * 0.7
        p = p + hit() * mix * (wet - p)
    if "noise" in on:
        snr = cfg.snr_db[0] + torch.rand(b, 1, 1, generator=g) * (cfg.snr_db[1] - cfg.snr_db[0])
        tilt = 10 ** (_smooth_curve(b, nf, 10.0, g)[:, :, None] / 10)  # coloured: crowd, HVAC, hiss
        flick = 10 ** ((torch.rand(b, 1, nt, generator=g) * 2 - 1) * 0.3)  # a murmuring crowd
        noise = tilt * flick
        scale = p.mean(dim=(1, 2), keepdim=True) / noise.mean(dim=(1, 2), keepdim=True) / 10 ** (snr / 10)
        p = p + hit() * scale * noise
    db = 10 * torch.log10(p + 1e-10)
    if "compress" in on:  # PA compression: frame loudness pulled towards the crop mean
        lev = db.mean(dim=1, keepdim=True)
        ratio = 1 - torch.rand(b, 1, 1, generator=g) * 0.6
        mean = lev.mean(dim=2, keepdim=True)
        db = db + hit() * (mean + (lev - mean) * ratio - lev)
    return db


def _pooled(p: torch.Tensor, k: int) -> torch.Tensor:
    """``[G * k, C] -> [G, C]``: the mean over each group of k consecutive rows (one clip's crops)."""
    return p.reshape(-1, k, p.shape[-1]).mean(dim=1)


def _first(t: torch.Tensor, k: int) -> torch.Tensor:
    """``[G * k, C] -> [G, C]``: each group's first row (its clip's label; the k rows are alike)."""
    return t.reshape(-1, k, t.shape[-1])[:, 0]


def tag_vocabulary(clips: Sequence[Clip], min_count: int) -> list[str]:
    """Tags carried by at least ``min_count`` of ``clips`` (rarer ones are too thin to learn)."""
    from collections import Counter

    n = Counter(t for c in clips for t in c.tags)
    return sorted(t for t, k in n.items() if k >= min_count)


def _teacher_probs(teachers: Sequence[EmotionModel], db: torch.Tensor, nt: int) -> torch.Tensor:
    """Mean arousal/valence probability of fitted ``teachers`` on mel dB crops (eval mode)."""
    with torch.no_grad():
        outs = []
        for t in teachers:
            feats = t.frontend.normalize(db)[..., :nt]
            outs.append(torch.sigmoid(t.heads(t.embed(feats))[0]))
        return torch.stack(outs).mean(dim=0)


def optimizer(model: EmotionModel, heads: Sequence[torch.nn.Module | None], cfg: SpecFitConfig,
              steps: int) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.OneCycleLR]:
    """AdamW over the model's trainable weights and the training-only ``heads`` (None: absent),
    with the one-cycle schedule of ``cfg.epochs`` x ``steps`` (every cached-spectrogram recipe)."""
    params = [p for p in model.parameters() if p.requires_grad]
    for head in heads:
        if head is not None:
            params += list(head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return opt, torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, epochs=cfg.epochs,
                                                    steps_per_epoch=steps, pct_start=0.2)


def fit_spec(model: EmotionModel, clips: Sequence[Clip], mels: Sequence[torch.Tensor],
             cfg: SpecFitConfig | None = None, desc: str = "fit",
             on_epoch: Callable[[int, EmotionModel], dict[str, float]] | None = None,
             teachers: Sequence[EmotionModel] = (),
             clip_features: np.ndarray | PatchFeatures | None = None,
             clip_probs: np.ndarray | None = None,
             room_mels: Sequence[Sequence[torch.Tensor]] | None = None) -> SpecFitResult:
    """Fit ``model`` (its front end frozen) on random crops of cached mel dB. Fixed epochs with a
    one-cycle schedule (no early stopping: nothing of the training artists is spent on it). With
    ``learn_bands`` the cache holds bin power and the band filters learn with the rest.

    ``teachers`` (models fitted on the same clips, same front end) make it a distillation: with
    ``cfg.distill`` = a, the arousal/valence targets are (1 - a) x labels + a x the teachers' mean
    probability on the same augmented crop (before SpecAugment), so one model learns what an
    ensemble knows at one model's cost. ``on_epoch(epoch, model)`` may return extra numbers for
    the history (e.g. held-out metrics for a training-curve plot); it is called in eval mode and
    must not train.

    ``clip_features`` (``[len(clips), d]``, a pretrained model's embedding of each clip) are the
    targets of ``cfg.feature_weight``'s regression head; they are standardised over these clips,
    so pass only training clips' rows. A ``PatchFeatures`` instead makes the regression
    time-resolved: each crop's target is the mean of the patches inside it. ``clip_probs``
    (``[len(clips), 2]``, a clip-level teacher's arousal/valence probabilities, e.g. a classifier
    on those features cross-fitted over the training clips) take the place of ``teachers`` in
    ``cfg.distill``'s targets. ``room_mels`` (per clip, cached spectrograms of its room-microphone
    versions) are what ``cfg.p_room`` draws crops from."""
    from tqdm.auto import tqdm

    cfg = cfg or SpecFitConfig()
    t0 = time.time()
    torch.set_num_threads(cfg.threads)
    from .fit import pick_device

    device = pick_device(cfg.device)
    model.to(device)
    torch.manual_seed(cfg.seed)
    freeze_frontend(model)
    bins = learns_bands(model)
    if bins and teachers:
        raise ValueError("teachers share the student's spectrogram: not with learn_bands")
    nt = math.ceil(model.cfg.window_samples / model.cfg.hop) + 1  # frames per window (center=True)
    frame_rate = model.cfg.sample_rate / model.cfg.hop
    src = int(math.ceil(nt * (1 + cfg.stretch_max))) if "stretch" in cfg.augs else nt
    def padded(m: torch.Tensor) -> torch.Tensor:
        return m if m.shape[1] >= src else F.pad(m.float(), (0, src - m.shape[1]), mode="replicate").half()

    data = [padded(m) for m in mels]
    if cfg.p_room > 0 and (room_mels is None or len(room_mels) != len(mels) or not all(room_mels)):
        raise ValueError("p_room > 0 needs room_mels: at least one room version per clip")
    rooms = [[padded(m) for m in r] for r in room_mels] if cfg.p_room > 0 and room_mels else None
    y = torch.from_numpy(targets(clips))
    q = torch.tensor([c.quadrant - 1 for c in clips])
    aw = cfg.arousal_weight
    av_w = torch.tensor([2 * aw / (aw + 1), 2 / (aw + 1)], device=device)  # mean 1; [1, 1] by default
    n_items = len(clips) * cfg.crops_per_clip
    steps = max(1, n_items // cfg.batch_size)
    vocab = tag_vocabulary(clips, cfg.min_tag_count) if cfg.tag_weight > 0 else []
    tag_head = torch.nn.Linear(model.heads.av.in_features, len(vocab)).to(device) if vocab else None
    tags = (torch.tensor([[float(t in c.tags) for t in vocab] for c in clips]) if vocab else None)
    if cfg.feature_weight > 0 and clip_features is None:
        raise ValueError("feature_weight > 0 needs clip_features")
    feat_head, ftarget, patches = None, None, None
    if cfg.feature_weight > 0 and isinstance(clip_features, PatchFeatures):
        pv = np.asarray(clip_features.values, np.float64)
        if len(pv) != len(clips):
            raise ValueError(f"clip_features must have {len(clips)} clips, got {pv.shape}")
        ok = np.isfinite(pv).all(axis=2)  # [clips, P]: the patches each clip has
        rows = pv[ok]
        pv = (pv - rows.mean(0)) / (rows.std(0) + 1e-6)
        patches = (torch.from_numpy(np.nan_to_num(pv).astype(np.float32)), ok.sum(1),
                   np.asarray(clip_features.starts, np.float64), float(clip_features.seconds))
        feat_head = torch.nn.Linear(model.heads.av.in_features, pv.shape[2]).to(device)
    elif cfg.feature_weight > 0:
        fz = np.asarray(clip_features, np.float64)
        if fz.ndim != 2 or len(fz) != len(clips) or not np.isfinite(fz).all():
            raise ValueError(f"clip_features must be finite [{len(clips)}, d], got {fz.shape}")
        fz = (fz - fz.mean(0)) / (fz.std(0) + 1e-6)
        ftarget = torch.from_numpy(fz.astype(np.float32))
        feat_head = torch.nn.Linear(model.heads.av.in_features, fz.shape[1]).to(device)
    opt, sched = optimizer(model, (tag_head, feat_head), cfg, steps)
    params = opt.param_groups[0]["params"]  # what gradient clipping bounds
    g = torch.Generator().manual_seed(cfg.seed)
    gd = torch.Generator(device=device).manual_seed(cfg.seed + 1) if device.type == "cuda" else g
    if cfg.distill and not teachers and clip_probs is None:
        raise ValueError("distill > 0 needs teachers or clip_probs")
    if teachers and clip_probs is not None:
        raise ValueError("give teachers or clip_probs, not both")
    cprob = None
    if clip_probs is not None:
        cp = np.asarray(clip_probs, np.float32)
        if cp.shape != (len(clips), 2) or not np.isfinite(cp).all() or cp.min() < 0 or cp.max() > 1:
            raise ValueError(f"clip_probs must be probabilities [{len(clips)}, 2], got {cp.shape}")
        cprob = torch.from_numpy(cp)
    for t in teachers:
        t.to(device).eval()
    # averaged: everything but the frozen filters (kept bit-exact, so members still share them)
    learnt = ("frontend.bn.",) + (tuple(f"frontend.{n}" for n in BAND_PARAMS) if bins else ())
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()
           if not k.startswith("frontend.") or k.startswith(learnt)} if cfg.ema else None
    # self-distillation: each clip's mean probability over its crops in the previous epoch
    # (its label until a step has drawn it)
    prev = y.clone().float()
    res = SpecFitResult(model=model)
    bar = tqdm(range(cfg.epochs), desc=desc, unit="ep", disable=not cfg.progress, leave=False)
    pool = cfg.clip_pool
    per_step = cfg.batch_size // pool  # clips (groups of `pool` crops) per step
    for epoch in bar:
        model.train()
        order = torch.randperm(n_items // pool, generator=g) % len(clips)
        tot, ftot = 0.0, 0.0
        alpha = cfg.self_distill * epoch / max(1, cfg.epochs - 1)  # 0 in the first epoch
        seen, nseen = torch.zeros(len(clips), 2), torch.zeros(len(clips))
        for s in range(steps):
            ci = order[s * per_step : (s + 1) * per_step].repeat_interleave(pool).tolist()
            crops, starts = [], []
            for i in ci:
                m = data[i]
                if rooms is not None and float(torch.rand(1, generator=g)) < cfg.p_room:
                    m = rooms[i][int(torch.randint(0, len(rooms[i]), (1,), generator=g))]
                st = int(torch.randint(0, m.shape[1] - src + 1, (1,), generator=g))
                crops.append(m[:, st : st + src])
                starts.append(st)
            db = torch.stack(crops).float()
            if bins:  # bin power -> bands through the filters being learnt (autograd crosses devices)
                db = model.frontend.bands_db(db.to(device)).cpu()
            db = augment_db(db, cfg, frame_rate, g)
            yb, qb = y[ci], F.one_hot(q[ci], 4).float()
            tb = tags[ci] if tags is not None else None
            fb = ftarget[ci].to(device) if ftarget is not None else None
            if patches is not None:  # the patches the crop covers (frame k is at k / frame_rate s)
                pf, nv, pst, psec = patches
                fb = torch.stack([_patch_target(pf[i], int(nv[i]), pst, psec, st / frame_rate,
                                                (st + src - 1) / frame_rate)
                                  for i, st in zip(ci, starts, strict=True)]).to(device)
            if cfg.label_smoothing:
                yb = yb * (1 - 2 * cfg.label_smoothing) + cfg.label_smoothing
            if cfg.distill and cprob is not None:  # a clip-level teacher: one opinion per clip
                yb = (1 - cfg.distill) * yb + cfg.distill * cprob[ci]
            if alpha:
                yb = (1 - alpha) * yb + alpha * prev[ci]
            if "mixup" in cfg.augs:  # partners and weights per clip group (k crops mix alike)
                ng = len(ci) // pool
                rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=g)))
                lam = torch.from_numpy(rng.beta(cfg.mixup_alpha, cfg.mixup_alpha, ng).astype(np.float32))
                lam = torch.maximum(lam, 1 - lam).repeat_interleave(pool)
                gp = torch.randperm(ng, generator=g)
                perm = (gp[:, None] * pool + torch.arange(pool)[None, :]).reshape(-1)
                p = 10 ** (db / 10)
                db = 10 * torch.log10(lam[:, None, None] * p + (1 - lam[:, None, None]) * p[perm] + 1e-10)
                yb = lam[:, None] * yb + (1 - lam[:, None]) * yb[perm]
                qb = lam[:, None] * qb + (1 - lam[:, None]) * qb[perm]
                if tb is not None:
                    tb = lam[:, None] * tb + (1 - lam[:, None]) * tb[perm]
                if fb is not None:
                    fb = lam[:, None].to(device) * fb + (1 - lam[:, None].to(device)) * fb[perm]
            db, yb, qb = db.to(device), yb.to(device), qb.to(device)
            if cfg.distill and cprob is None:
                tp = _teacher_probs(teachers, db, nt)
                if pool > 1:  # the teachers' clip-level opinion: the mean over the group's crops
                    tp = _pooled(tp, pool).repeat_interleave(pool, dim=0)
                yb = (1 - cfg.distill) * yb + cfg.distill * tp
            feats = model_view(model, db, cfg, nt, gd)
            h = model.heads.fc(model.embed(feats))
            av, quad = model.heads.av(h), model.heads.quad(h)
            if pool == 1:
                loss = F.binary_cross_entropy_with_logits(av, yb, weight=av_w)
                if cfg.aux_weight > 0:
                    loss = loss + cfg.aux_weight * torch.sum(-qb * F.log_softmax(quad, dim=1), dim=1).mean()
                if tag_head is not None and tb is not None:
                    tl = F.binary_cross_entropy_with_logits(tag_head(h), tb.to(device))
                    loss = loss + cfg.tag_weight * tl
                if feat_head is not None:
                    fl = F.mse_loss(feat_head(h), fb)
                    loss = loss + cfg.feature_weight * fl
            else:  # one prediction per clip group: the mean of its crops' probabilities
                eps = 1e-6
                pa = _pooled(torch.sigmoid(av), pool).clamp(eps, 1 - eps)
                loss = F.binary_cross_entropy(pa, _first(yb, pool), weight=av_w)
                if cfg.aux_weight > 0:
                    pq = _pooled(torch.softmax(quad, dim=1), pool).clamp_min(eps)
                    loss = loss + cfg.aux_weight * torch.sum(-_first(qb, pool) * torch.log(pq), dim=1).mean()
                if tag_head is not None and tb is not None:
                    pt = _pooled(torch.sigmoid(tag_head(h)), pool).clamp(eps, 1 - eps)
                    loss = loss + cfg.tag_weight * F.binary_cross_entropy(pt, _first(tb.to(device), pool))
                if feat_head is not None:
                    fl = F.mse_loss(_pooled(feat_head(h), pool), _pooled(fb, pool))
                    loss = loss + cfg.feature_weight * fl
            if cfg.self_distill:
                idx = torch.tensor(ci)
                seen.index_add_(0, idx, torch.sigmoid(av.detach()).cpu())
                nseen.index_add_(0, idx, torch.ones(len(ci)))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            sched.step()
            if ema is not None:
                with torch.no_grad():
                    state = model.state_dict()
                    for name in ema:
                        v = state[name]
                        if v.dtype.is_floating_point:
                            ema[name].mul_(cfg.ema).add_(v.detach(), alpha=1 - cfg.ema)
                        else:
                            ema[name].copy_(v)
            tot += float(loss.detach())
            if feat_head is not None:
                ftot += float(fl.detach())
        rec = {"epoch": epoch + 1, "loss": tot / steps, "lr": sched.get_last_lr()[0]}
        if cfg.self_distill:
            got = nseen > 0  # a clip no step drew this epoch keeps its older opinion
            prev[got] = seen[got] / nseen[got, None]
            rec["self_distill"] = alpha
        if feat_head is not None:  # of the standardised targets: 1.0 = no better than their mean
            rec["feature_mse"] = ftot / steps
        if on_epoch is not None:
            model.eval()
            if ema is not None:  # score what will be kept: the averaged weights
                live = {k: v.detach().clone() for k, v in model.state_dict().items() if k in ema}
                model.load_state_dict(ema, strict=False)
                rec.update(on_epoch(epoch + 1, model))
                model.load_state_dict(live, strict=False)
            else:
                rec.update(on_epoch(epoch + 1, model))
        res.history.append(rec)
        bar.set_postfix(loss=round(rec["loss"], 4))
        log.debug("%s epoch %d: loss %.4f", desc, epoch + 1, rec["loss"])
    bar.close()
    if ema is not None:
        model.load_state_dict(ema, strict=False)
    model.to("cpu").eval()
    for t in teachers:
        t.to("cpu")
    res.seconds = time.time() - t0
    return res


def config_dict(cfg: SpecFitConfig) -> dict[str, Any]:
    d = asdict(cfg)
    d["augs"] = list(cfg.augs)
    return d
