"""Distillation on the same view: the shipped CNN recipe plus a stream of bank crops on which the
student matches musicnn (issue #17, route 2).

Each training step holds the shipped recipe's 48 fresh crops (random positions in the cached
whole-clip spectrograms, spectral EQ / band limits, labels only) and ``bank_per_step`` crops of the
bank (``train.distill_bank``: augmented audio, possibly mixed with another clip, whose teacher
features were computed on exactly that audio). On a bank crop the student's arousal/valence target
is ``(1 - a) x label + a x sigmoid(z / T)``, where ``z`` is the teacher head's logit of THAT crop, and
an auxiliary linear head (never exported) regresses the crop's standardised 200-d teacher features.

The teacher head is a logistic regression on crop features fitted per fold on the fold's TRAINING
clips only, and cross-fitted over inner artist folds among them: a crop's logit comes from a head
that never saw its clip's (nor its mixup partner's) label, so the student learns the teacher's
opinion of music it has not heard, not the training labels again. Test clips never enter: a fold
keeps only the crops whose clip and partner are both training clips.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .data import Clip, artist_folds, targets
from .distill_bank import Bank
from .models import EmotionModel
from .specfit import (
    SpecFitConfig,
    SpecFitResult,
    augment_db,
    freeze_frontend,
    model_view,
    optimizer,
    tag_vocabulary,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistillConfig:
    """How the bank stream teaches. Validated here, at the edge."""

    distill: float = 0.5  # teacher probability's weight in a bank crop's arousal/valence target
    temperature: float = 1.0  # z / T before the sigmoid
    feature_weight: float = 0.3  # regression onto the crop's standardised teacher features
    bank_per_step: int = 48  # bank crops beside each step's fresh crops
    mixup_crops: bool = True  # use the bank's between-clip crops (both clips training clips)
    head_c: float = 0.1  # the teacher head's inverse L2 strength (as fusion.py's head)
    inner_k: int = 5  # inner artist folds of the cross-fitted head
    inner_seed: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.distill <= 1 or self.temperature <= 0 or self.feature_weight < 0:
            raise ValueError("distill in [0, 1], temperature > 0 and feature_weight >= 0 are required")
        if self.bank_per_step < 1 or self.inner_k < 2 or self.head_c <= 0:
            raise ValueError("bank_per_step >= 1, inner_k >= 2 and head_c > 0 are required")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FoldBank:
    """A fold's share of the bank, indexed by position in the fold's training clip list."""

    spec: torch.Tensor  # [n, n_mels, frames] float16 power dB
    clip: np.ndarray  # [n] local clip index
    partner: np.ndarray  # [n] local partner index or -1
    lam: np.ndarray  # [n] the clip's power share
    logits: np.ndarray  # [n, 2] cross-fitted teacher head logits of the crop
    features: np.ndarray  # [n, d] the crop's teacher features (mean of its patches), standardised

    def __len__(self) -> int:
        return len(self.clip)


def crop_features(bank: Bank) -> np.ndarray:
    """``[n, 200]``: the mean of a crop's patch features (what a head on the crop reads)."""
    return np.asarray(bank.features, np.float64).mean(axis=1)


def cross_fitted_logits(feats: np.ndarray, clip: np.ndarray, partner: np.ndarray, y: np.ndarray,
                        clips: Sequence[Clip], c: float = 0.1, k: int = 5, seed: int = 1) -> np.ndarray:
    """Teacher-head logits ``[n, 2]`` of crops of ``clips`` (local indices ``clip``/``partner``):
    inner artist folds over ``clips``; each crop scored by a head (``fusion.fit_head``: standardised
    logistic regression per dimension) fitted on the single-clip crops of the inner folds that hold
    neither its clip nor its partner, with their clips' labels ``y`` ([len(clips), 2] 0/1)."""
    from .fusion_head import fit_head

    fold_of = np.empty(len(clips), np.int64)
    for f, (_, te) in enumerate(artist_folds(clips, k=k, seed=seed)):
        fold_of[te] = f
    single = partner < 0
    out = np.full((len(clip), y.shape[1]), np.nan)
    heads: dict[frozenset[int], Any] = {}
    excl = [frozenset({int(fold_of[a])} | ({int(fold_of[b])} if b >= 0 else set()))
            for a, b in zip(clip, partner, strict=True)]
    for s in sorted(set(excl), key=sorted):
        rows = single & ~np.isin(fold_of[clip], list(s))
        mine = np.array([e == s for e in excl])
        yr = y[clip[rows]]
        if not rows.any() or any(len(np.unique(yr[:, d])) < 2 for d in range(y.shape[1])):
            # too few clips left to fit a head (tiny sets only): the prior log-odds, said once
            log.warning("teacher head without inner folds %s: one class only; prior log-odds", sorted(s))
            rate = (yr.sum(0) + 1) / (len(yr) + 2)
            out[mine] = np.log(rate / (1 - rate))
            continue
        heads[s] = fit_head(feats[rows], yr, c)
        out[mine] = heads[s].logits(feats[mine])
    return out


def fold_bank(bank: Bank, clips: Sequence[Clip], tr: np.ndarray, cfg: DistillConfig) -> FoldBank:
    """The crops of ``bank`` whose clip (and partner) are among the training clips ``tr`` (indices
    into ``clips``, the bank's clips in its order), with their cross-fitted teacher logits."""
    if [c.id for c in clips] != list(bank.ids):
        raise ValueError("fold_bank: the bank was drawn for other clips (ids differ)")
    local = np.full(len(clips), -1, np.int64)
    local[np.asarray(tr)] = np.arange(len(tr))
    cl = local[bank.clip]
    pa = np.where(bank.partner >= 0, local[np.maximum(bank.partner, 0)], -1)
    keep = (cl >= 0) & ((bank.partner < 0) | ((pa >= 0) & cfg.mixup_crops))
    sub = [clips[i] for i in tr]
    y = targets(sub).astype(np.float64)
    feats = crop_features(bank)[keep]
    z = cross_fitted_logits(feats, cl[keep], pa[keep], y, sub, cfg.head_c, cfg.inner_k, cfg.inner_seed)
    fz = (feats - feats.mean(0)) / (feats.std(0) + 1e-6)
    return FoldBank(spec=torch.from_numpy(np.asarray(bank.spec[keep])), clip=cl[keep], partner=pa[keep],
                    lam=np.asarray(bank.lam[keep], np.float32), logits=z.astype(np.float32),
                    features=fz.astype(np.float32))


def _mix(v: torch.Tensor, fb: FoldBank, rows: np.ndarray) -> torch.Tensor:
    """Per-clip rows ``v`` mixed as the bank crops ``rows`` were: lam x clip + (1 - lam) x partner."""
    c = torch.from_numpy(fb.clip[rows])
    p = torch.from_numpy(np.where(fb.partner[rows] >= 0, fb.partner[rows], fb.clip[rows]))
    lam = torch.from_numpy(fb.lam[rows])[:, None]
    return lam * v[c] + (1 - lam) * v[p]


def fit_distill(model: EmotionModel, clips: Sequence[Clip], mels: Sequence[torch.Tensor], fb: FoldBank,
                cfg: SpecFitConfig | None = None, dcfg: DistillConfig | None = None, desc: str = "distill",
                on_epoch: Callable[[int, EmotionModel], dict[str, float]] | None = None) -> SpecFitResult:
    """``specfit.fit_spec``'s recipe (fresh crops of ``mels``, spectral augmentation, quadrant and tag
    heads, one-cycle schedule) with ``dcfg.bank_per_step`` crops of ``fb`` added to every step, each
    taught by the teacher on its own audio (see the module docstring). ``on_epoch`` as in fit_spec."""
    from tqdm.auto import tqdm

    cfg = cfg or SpecFitConfig()
    dcfg = dcfg or DistillConfig()
    if cfg.clip_pool != 1 or cfg.ema or cfg.self_distill or cfg.distill or cfg.feature_weight:
        raise ValueError("fit_distill: clip_pool, ema, self_distill, distill and feature_weight of the "
                         "SpecFitConfig are not supported here (the bank stream teaches)")
    if len(fb) == 0:
        raise ValueError("fit_distill: the fold's bank holds no crop")
    t0 = time.time()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    freeze_frontend(model)
    nt = math.ceil(model.cfg.window_samples / model.cfg.hop) + 1
    if fb.spec.shape[-1] != nt:
        raise ValueError(f"fit_distill: bank crops have {fb.spec.shape[-1]} frames, the model's window {nt}")
    frame_rate = model.cfg.sample_rate / model.cfg.hop
    src = int(math.ceil(nt * (1 + cfg.stretch_max))) if "stretch" in cfg.augs else nt
    data = [m if m.shape[1] >= src else F.pad(m.float(), (0, src - m.shape[1]), mode="replicate").half()
            for m in mels]
    y = torch.from_numpy(targets(clips))
    q = F.one_hot(torch.tensor([c.quadrant - 1 for c in clips]), 4).float()
    aw = cfg.arousal_weight
    av_w = torch.tensor([2 * aw / (aw + 1), 2 / (aw + 1)])
    steps = max(1, len(clips) * cfg.crops_per_clip // cfg.batch_size)
    vocab = tag_vocabulary(clips, cfg.min_tag_count) if cfg.tag_weight > 0 else []
    tag_head = torch.nn.Linear(model.heads.av.in_features, len(vocab)) if vocab else None
    tags = torch.tensor([[float(t in c.tags) for t in vocab] for c in clips]) if vocab else None
    feat_head = (torch.nn.Linear(model.heads.av.in_features, fb.features.shape[1])
                 if dcfg.feature_weight > 0 else None)
    opt, sched = optimizer(model, (tag_head, feat_head), cfg, steps)
    params = opt.param_groups[0]["params"]  # what gradient clipping bounds
    g = torch.Generator().manual_seed(cfg.seed)
    p_teacher = torch.sigmoid(torch.from_numpy(fb.logits) / dcfg.temperature)
    f_target = torch.from_numpy(fb.features)
    nb = dcfg.bank_per_step
    bank_order = torch.randperm(len(fb), generator=g)
    bank_pos = 0
    res = SpecFitResult(model=model)
    bar = tqdm(range(cfg.epochs), desc=desc, unit="ep", disable=not cfg.progress, leave=False)
    for epoch in bar:
        model.train()
        order = torch.randperm(len(clips) * cfg.crops_per_clip, generator=g) % len(clips)
        tot = {"loss": 0.0, "bank_bce": 0.0, "feature_mse": 0.0}
        for s in range(steps):
            ci = order[s * cfg.batch_size: (s + 1) * cfg.batch_size].tolist()
            crops = []
            for i in ci:
                st = int(torch.randint(0, data[i].shape[1] - src + 1, (1,), generator=g))
                crops.append(data[i][:, st: st + src])
            db = augment_db(torch.stack(crops).float(), cfg, frame_rate, g)
            yb, qb = y[ci], q[ci]
            tb = tags[ci] if tags is not None else None
            if "mixup" in cfg.augs:  # the fresh stream's own spectral mixup, as fit_spec's
                rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=g)))
                lam = torch.from_numpy(rng.beta(cfg.mixup_alpha, cfg.mixup_alpha, len(ci)).astype(np.float32))
                lam = torch.maximum(lam, 1 - lam)
                perm = torch.randperm(len(ci), generator=g)
                p = 10 ** (db / 10)
                db = 10 * torch.log10(lam[:, None, None] * p + (1 - lam[:, None, None]) * p[perm] + 1e-10)
                yb = lam[:, None] * yb + (1 - lam[:, None]) * yb[perm]
                qb = lam[:, None] * qb + (1 - lam[:, None]) * qb[perm]
                tb = lam[:, None] * tb + (1 - lam[:, None]) * tb[perm] if tb is not None else None
            feats = model_view(model, db, cfg, nt, g)
            # the bank stream: fixed views, no further augmentation (the teacher heard exactly these)
            if bank_pos + nb > len(fb):
                bank_order, bank_pos = torch.randperm(len(fb), generator=g), 0
            rows = bank_order[bank_pos: bank_pos + nb].numpy()
            bank_pos += nb
            bfeats = model.frontend.normalize(fb.spec[rows].float())
            by = _mix(y, fb, rows)
            bq = _mix(q, fb, rows)
            btag = _mix(tags, fb, rows) if tags is not None else None
            if cfg.label_smoothing:
                yb = yb * (1 - 2 * cfg.label_smoothing) + cfg.label_smoothing
                by = by * (1 - 2 * cfg.label_smoothing) + cfg.label_smoothing
            by = (1 - dcfg.distill) * by + dcfg.distill * p_teacher[rows]
            n_fresh = len(ci)
            h = model.heads.fc(model.embed(torch.cat([feats, bfeats])))
            av, quad = model.heads.av(h), model.heads.quad(h)
            tgt = torch.cat([yb, by])
            bce = F.binary_cross_entropy_with_logits(av, tgt, weight=av_w, reduction="none").mean(dim=1)
            loss = bce.mean()
            if cfg.aux_weight > 0:
                loss = loss + cfg.aux_weight * torch.sum(-torch.cat([qb, bq]) * F.log_softmax(quad, dim=1),
                                                         dim=1).mean()
            if tag_head is not None and tb is not None and btag is not None:
                tl = F.binary_cross_entropy_with_logits(tag_head(h), torch.cat([tb, btag]))
                loss = loss + cfg.tag_weight * tl
            fl = torch.zeros(())
            if feat_head is not None:
                fl = F.mse_loss(feat_head(h[n_fresh:]), f_target[rows])
                loss = loss + dcfg.feature_weight * fl
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            sched.step()
            tot["loss"] += float(loss.detach())
            tot["bank_bce"] += float(bce[n_fresh:].mean().detach())
            tot["feature_mse"] += float(fl.detach())
        rec = {"epoch": epoch + 1, "lr": sched.get_last_lr()[0], **{k: v / steps for k, v in tot.items()}}
        if on_epoch is not None:
            model.eval()
            rec.update(on_epoch(epoch + 1, model))
        res.history.append(rec)
        bar.set_postfix(loss=round(rec["loss"], 4))
        log.debug("%s epoch %d: %s", desc, epoch + 1, rec)
    bar.close()
    model.eval()
    res.seconds = time.time() - t0
    return res
