"""The fitting loop and artist-grouped cross-validation.

* ``fit_model``: seeded, tqdm progress, random crops -> live-rig augmentation -> mixup ->
  front end -> SpecAugment / time stretch -> multi-task loss (BCE on arousal_high / valence_high,
  or MSE on continuous labels, plus an auxiliary 4-way quadrant cross-entropy); early stopping on
  a validation split carved from the TRAINING artists only; a checkpoint per epoch and resume.
* ``predict_clips``: a clip's score is the MEAN of the model's window outputs over the clip, with
  windows framed as the runtime and ``mer-analyze`` frame them (``data.frame``), so CV numbers
  describe what ``mer-analyze`` reports as a file's mean.
* ``cross_validate``: one fit per fold, out-of-fold clip scores, metrics per fold, mean +- std.
"""

from __future__ import annotations

import copy
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

from mer_live.common.framing import frame_windows

from .augment import AugmentConfig, Augmenter, mixup, spec_augment, time_stretch
from .data import Clip, targets
from .models import EmotionModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitConfig:
    """How one model is fitted. Validated here, at the edge."""

    epochs: int = 30
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-3
    crops_per_clip: int = 2  # random crops of each training clip per epoch
    val_fraction: float = 0.15  # share of the TRAINING artists held out for early stopping; 0: none
    patience: int = 8  # epochs without a better validation score before stopping
    min_epochs: int = 6
    aux_weight: float = 0.5  # weight of the auxiliary quadrant cross-entropy
    loss: str = "auto"  # "bce" (binary labels), "mse" (continuous), "auto": bce unless labels are continuous
    val_hop_seconds: float = 3.0  # window hop for the validation clip scores (cheaper than eval)
    eval_hop_seconds: float = 1.0  # window hop for test clip scores (the clip score is their mean)
    seed: int = 0
    device: str = "auto"  # auto: cuda when present, else cpu
    threads: int = 2
    progress: bool = True
    checkpoint_dir: str | None = None  # last.pt (resume) and best.pt written each epoch
    resume: bool = False

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2 or self.crops_per_clip < 1:
            raise ValueError("epochs >= 1, batch_size >= 2 and crops_per_clip >= 1 are required")
        if not 0 <= self.val_fraction < 0.5:
            raise ValueError("val_fraction must be in [0, 0.5)")
        if self.loss not in ("auto", "bce", "mse"):
            raise ValueError(f"loss {self.loss!r}: use auto, bce or mse")
        if self.lr <= 0 or self.eval_hop_seconds <= 0 or self.val_hop_seconds <= 0:
            raise ValueError("lr and hops must be positive")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device {self.device!r}: use auto, cpu or cuda")


@dataclass
class FitResult:
    """The fitted model (best validation weights, or the last epoch without validation)."""

    model: EmotionModel
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_score: float = float("nan")
    seconds: float = 0.0


def pick_device(choice: str) -> torch.device:
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            log.warning("--device cuda requested but CUDA is not available; using CPU")
            return torch.device("cpu")
        return torch.device("cuda")
    return torch.device("cpu")


# ----------------------------------------------------------------------------------- metrics


def clip_metrics(y_true: np.ndarray, scores: np.ndarray, quadrants: np.ndarray) -> dict[str, float]:
    """AUC / accuracy per dimension and quadrant metrics at 0.5 thresholds.

    ``y_true`` [n, 2] binary highs (or continuous labels, thresholded at 0.5), ``scores`` [n, 2]
    clip scores in [0, 1], ``quadrants`` [n] true quadrants 1..4.
    """
    from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score

    yb = (np.asarray(y_true) >= 0.5).astype(int)
    out: dict[str, float] = {}
    for j, name in enumerate(("arousal", "valence")):
        both = len(set(yb[:, j])) == 2
        out[f"{name}_auc"] = float(roc_auc_score(yb[:, j], scores[:, j])) if both else math.nan
        out[f"{name}_acc"] = float(np.mean((scores[:, j] >= 0.5) == yb[:, j]))
    pred_q = quadrants_of(scores)
    out["quadrant_acc"] = float(np.mean(pred_q == quadrants))
    out["quadrant_macro_f1"] = float(f1_score(quadrants, pred_q, labels=[1, 2, 3, 4], average="macro",
                                              zero_division=0))
    out["quadrant_balanced_acc"] = float(balanced_accuracy_score(quadrants, pred_q))
    low = np.isin(quadrants, (3, 4))  # sad vs calm: valence among low-arousal clips
    if low.sum() and len(set(yb[low, 1])) == 2:
        out["valence_auc_low_arousal"] = float(roc_auc_score(yb[low, 1], scores[low, 1]))
    return out


def quadrants_of(scores: np.ndarray) -> np.ndarray:
    """Russell quadrant 1..4 of [n, 2] scores at 0.5 thresholds (ties go high)."""
    a = scores[:, 0] >= 0.5
    v = scores[:, 1] >= 0.5
    return np.where(a, np.where(v, 1, 2), np.where(v, 4, 3))


# ------------------------------------------------------------------------------- prediction


@torch.no_grad()
def predict_windows(model: EmotionModel, windows: np.ndarray, device: torch.device, batch: int = 128
                    ) -> np.ndarray:
    """Model outputs for ``[n, window]`` windows, in eval mode."""
    model.eval()
    out = []
    for i in range(0, len(windows), batch):
        x = torch.from_numpy(np.ascontiguousarray(windows[i : i + batch])).to(device)
        out.append(model(x).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 2), np.float32)


def clip_windows(x: np.ndarray, window: int, hop: int) -> np.ndarray:
    """Windows over a clip as the runtime frames them; a clip shorter than one window is
    zero-padded ON THE LEFT to one window ending on its last sample (mer-analyze's and
    ``frame_windows``' behaviour for short files; padding on the right scored them differently)."""
    return np.ascontiguousarray(frame_windows(x, window, hop)[1])


def predict_clips(model: EmotionModel, audio: Sequence[np.ndarray], hop_seconds: float = 1.0,
                  device: torch.device | None = None) -> np.ndarray:
    """Clip scores ``[n, 2]``: the mean of the window outputs over each clip."""
    device = device or next(model.parameters()).device
    win = model.cfg.window_samples
    hop = max(1, int(round(hop_seconds * model.cfg.sample_rate)))
    wins = [clip_windows(np.asarray(x, np.float32), win, hop) for x in audio]
    sizes = [len(w) for w in wins]
    y = predict_windows(model, np.concatenate(wins), device)
    edges = np.cumsum([0] + sizes)
    return np.stack([y[edges[i] : edges[i + 1]].mean(axis=0) for i in range(len(wins))])


# ---------------------------------------------------------------------------------- fitting


def _split_val(clips: Sequence[Clip], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit_idx, val_idx): a share of the artists (not clips) held out, so validation, like the
    test fold, holds only unheard artists."""
    n = len(clips)
    if fraction <= 0:
        return np.arange(n), np.zeros(0, int)
    names = [c.artist.strip().casefold() or f"\0{c.id}" for c in clips]
    uniq = sorted(set(names))
    rng = np.random.default_rng(seed + 7919)
    held = set(rng.permutation(uniq)[: max(1, int(round(fraction * len(uniq))))])
    val = np.array([i for i in range(n) if names[i] in held], int)
    fit = np.array([i for i in range(n) if names[i] not in held], int)
    return fit, val


def _loss_kind(cfg: FitConfig, clips: Sequence[Clip]) -> str:
    if cfg.loss != "auto":
        return cfg.loss
    return "mse" if all(c.has_continuous for c in clips) else "bce"


def _save(path: Path, obj: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def fit_model(
    model: EmotionModel,
    clips: Sequence[Clip],
    audio: Sequence[np.ndarray],
    cfg: FitConfig | None = None,
    aug: AugmentConfig | None = None,
    desc: str = "fit",
    stop_after: int | None = None,
) -> FitResult:
    """Fit ``model`` on ``clips`` / ``audio`` (mono float32 at the model's rate).

    With ``cfg.val_fraction > 0`` a share of these clips' artists is held out and the weights of
    the best validation epoch (arousal AUC + valence AUC of clip scores) are returned; training
    stops after ``cfg.patience`` epochs without improvement. Without validation every epoch runs
    and the last weights are returned. ``stop_after`` ends this call after that many epochs
    (a time-boxed run, continued later with ``cfg.resume``).
    """
    from tqdm.auto import tqdm

    cfg = cfg or FitConfig()
    aug = aug or AugmentConfig()
    if len(clips) != len(audio):
        raise ValueError(f"{len(clips)} clips but {len(audio)} audio arrays")
    if len(clips) < 2:
        raise ValueError("need at least 2 clips to fit")
    t0 = time.time()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    model.to(device)
    mc = model.cfg
    win, sr = mc.window_samples, mc.sample_rate
    augmenter = Augmenter(aug, sr, win)
    src_len = augmenter.source_len
    kind = _loss_kind(cfg, clips)

    fit_idx, val_idx = _split_val(clips, cfg.val_fraction, cfg.seed)
    # pad short clips (wrap) so every crop has source_len samples
    data = [np.asarray(audio[i], np.float32) for i in fit_idx]
    data = [np.pad(x, (0, src_len - len(x)), mode="wrap") if len(x) < src_len else x for x in data]
    y_all = targets(clips)
    y_fit = torch.from_numpy(y_all[fit_idx])
    q_fit = torch.tensor([clips[i].quadrant - 1 for i in fit_idx])
    val_audio = [audio[i] for i in val_idx]
    y_val = y_all[val_idx]
    q_val = np.array([clips[i].quadrant for i in val_idx])

    n_items = len(fit_idx) * cfg.crops_per_clip
    steps_per_epoch = max(1, n_items // cfg.batch_size)  # drop the ragged last batch (BatchNorm)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                            weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, epochs=cfg.epochs,
                                                steps_per_epoch=steps_per_epoch, pct_start=0.15)
    g = torch.Generator().manual_seed(cfg.seed)
    gd = torch.Generator(device=device).manual_seed(cfg.seed + 1) if device.type == "cuda" else g

    result = FitResult(model=model)
    best_state: dict[str, torch.Tensor] | None = None
    start_epoch, bad = 0, 0
    ckdir = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else None
    if ckdir:
        ckdir.mkdir(parents=True, exist_ok=True)
        last = ckdir / "last.pt"
        if cfg.resume and last.is_file():
            ck = torch.load(last, map_location=device, weights_only=True)
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
            g.set_state(ck["generator"])
            torch.set_rng_state(ck["torch_rng"])  # dropout draws from the global generator
            start_epoch, bad = int(ck["epoch"]), int(ck["bad"])
            result.history = list(ck["history"])
            result.best_epoch, result.best_score = int(ck["best_epoch"]), float(ck["best_score"])
            best_state = ck.get("best_model")
            log.info("%s: resumed from %s at epoch %d", desc, last, start_epoch)

    bar = tqdm(range(start_epoch, cfg.epochs), desc=desc, unit="ep", disable=not cfg.progress,
               initial=start_epoch, total=cfg.epochs, leave=False)
    for epoch in bar:
        model.train()
        order = torch.randperm(n_items, generator=g)
        clip_of = order % len(fit_idx)
        tot, nb = 0.0, 0
        for s in range(steps_per_epoch):
            ci = clip_of[s * cfg.batch_size : (s + 1) * cfg.batch_size]
            starts = []
            for i in ci.tolist():
                span = len(data[i]) - src_len
                if aug.crop:
                    starts.append(int(torch.randint(0, span + 1, (1,), generator=g)))
                else:  # fixed offsets: the k-th crop of a clip starts at k/(crops) of its length
                    k = int(order[s * cfg.batch_size + len(starts)]) // len(fit_idx)
                    starts.append(span * k // max(1, cfg.crops_per_clip))
            xb = torch.from_numpy(np.stack([data[i][st : st + src_len] for i, st in zip(ci.tolist(), starts,
                                                                                         strict=True)]))
            xb = xb.to(device)
            yb = y_fit[ci].to(device)
            qb = F.one_hot(q_fit[ci], 4).float().to(device)
            xb = augmenter(xb, gd)
            if aug.mixup:
                xb, yb, qb = mixup(xb, yb, qb, alpha=aug.mixup_alpha, g=gd)
            feats = model.frontend(xb)
            if feats.dim() == 4:
                if aug.stretch:
                    feats = time_stretch(feats, aug.stretch_max, gd)
                if aug.specaug:
                    feats = spec_augment(feats, aug.freq_mask, aug.time_mask, gd)
            av, quad = model.heads(model.embed(feats))
            if kind == "bce":
                loss = F.binary_cross_entropy_with_logits(av, yb)
            else:
                loss = F.mse_loss(torch.sigmoid(av), yb)
            if cfg.aux_weight > 0:
                loss = loss + cfg.aux_weight * torch.sum(-qb * F.log_softmax(quad, dim=1), dim=1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            tot += float(loss.detach())
            nb += 1
        rec: dict[str, float] = {"epoch": epoch + 1, "loss": tot / max(1, nb), "lr": sched.get_last_lr()[0]}
        improved = False
        if len(val_idx):
            sv = predict_clips(model, val_audio, cfg.val_hop_seconds, device)
            m = clip_metrics(y_val, sv, q_val)
            rec.update({f"val_{k}": v for k, v in m.items()})
            score = m["arousal_auc"] + m["valence_auc"]
            rec["val_score"] = score
            if not score <= result.best_score:  # first epoch (nan) or better
                result.best_score, result.best_epoch, bad, improved = score, epoch + 1, 0, True
            else:
                bad += 1
        else:
            result.best_epoch, improved = epoch + 1, True
        if improved:
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        result.history.append(rec)
        bar.set_postfix({k: round(v, 3) for k, v in rec.items() if k in ("loss", "val_arousal_auc",
                                                                           "val_valence_auc")})
        log.info("%s epoch %d: %s", desc, epoch + 1,
                 ", ".join(f"{k}={v:.4g}" for k, v in rec.items() if k != "epoch"))
        if ckdir:
            _save(ckdir / "last.pt", {
                "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "generator": g.get_state(), "torch_rng": torch.get_rng_state(), "epoch": epoch + 1,
                "bad": bad,
                "history": result.history,
                "best_epoch": result.best_epoch, "best_score": result.best_score, "best_model": best_state,
                "model_config": model.cfg.to_dict(),
            })
        if stop_after is not None and epoch + 1 - start_epoch >= stop_after:
            break
        if len(val_idx) and bad >= cfg.patience and epoch + 1 >= cfg.min_epochs:
            log.info("%s: early stop at epoch %d (best %d)", desc, epoch + 1, result.best_epoch)
            break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    result.seconds = time.time() - t0
    return result


# --------------------------------------------------------------------------- cross-validation


def summarize(per_fold: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """mean and std (population, over folds) of each metric."""
    keys = sorted({k for m in per_fold for k in m})
    mean = {k: float(np.nanmean([m.get(k, math.nan) for m in per_fold])) for k in keys}
    std = {k: float(np.nanstd([m.get(k, math.nan) for m in per_fold])) for k in keys}
    return {"mean": mean, "std": std}


def cross_validate(
    clips: Sequence[Clip],
    audio: Sequence[np.ndarray],
    model_factory: Callable[[], EmotionModel],
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    fit_cfg: FitConfig | None = None,
    aug: AugmentConfig | None = None,
    only_folds: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Fit one model per fold on its training clips, score its test clips (mean of window
    outputs, ``fit_cfg.eval_hop_seconds`` apart), and return::

        {"folds": [metrics per fold], "mean": {...}, "std": {...}, "oof": [n, 2] scores (NaN
         for clips in folds not run), "best_epochs": [...], "seconds": [...], "fit": asdict(fit_cfg),
         "augment": asdict(aug), "histories": [...]}
    """
    fit_cfg = fit_cfg or FitConfig()
    aug = aug or AugmentConfig()
    y = targets(clips)
    quads = np.array([c.quadrant for c in clips])
    oof = np.full((len(clips), 2), np.nan, np.float32)
    per_fold, best_epochs, secs, hist = [], [], [], []
    for k, (tr, te) in enumerate(folds):
        if only_folds is not None and k not in only_folds:
            continue
        model = model_factory()
        cfg_k = FitConfig(**{**asdict(fit_cfg), "seed": fit_cfg.seed + k,
                             "checkpoint_dir": (str(Path(fit_cfg.checkpoint_dir) / f"fold{k}")
                                                if fit_cfg.checkpoint_dir else None)})
        res = fit_model(model, [clips[i] for i in tr], [audio[i] for i in tr], cfg_k, aug,
                        desc=f"fold {k + 1}/{len(folds)}")
        s = predict_clips(res.model, [audio[i] for i in te], fit_cfg.eval_hop_seconds)
        oof[te] = s
        m = clip_metrics(y[te], s, quads[te])
        m["best_epoch"] = res.best_epoch
        per_fold.append(m)
        best_epochs.append(res.best_epoch)
        secs.append(res.seconds)
        hist.append(res.history)
        log.info("fold %d: %s (%.0f s)", k + 1, ", ".join(f"{a}={b:.3f}" for a, b in m.items()), res.seconds)
    out: dict[str, Any] = {"folds": per_fold, **summarize(per_fold), "oof": oof, "best_epochs": best_epochs,
                           "seconds": secs, "fit": asdict(fit_cfg), "augment": asdict(aug),
                           "histories": hist}
    return out


def copy_model(model: EmotionModel) -> EmotionModel:
    return copy.deepcopy(model)
