"""Two-rate fusion at runtime: the fast CNN every hop, the teacher on a 3-s patch every few seconds.

Why: the CNN learnt from 716 labelled clips; musicnn (``mer_live.teacher``: Million Song Dataset
tags, ISC licence) knows far more music, but costs ~40x the CNN per call. Run on one patch every
``live_every_s`` on its own thread, it costs a few per cent of a core, and its opinion of a song
changes slowly anyway. docs/teacher.md has the cross-validation of each cadence.

The emotion model's card declares its teacher::

    "fusion": {"teacher": "musicnn-msd.onnx", "head": "musicnn-msd-head.json",
               "live_every_s": 3.0, "analyze_every_s": 15.0, "memory_s": 6.0}

and the fused output of a window is ``teacher.fuse(p_cnn, z, w)`` with ``z`` the mean logits of
the teacher's patches that ended in the last ``memory_s`` (the head is linear, so this equals the
head on their mean features, as the cross-validation averaged a clip's patches). A card without
``fusion`` is a plain CNN and nothing here runs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mer_live.logs import Throttled, one_line
from mer_live.model import ModelError
from mer_live.teacher import Teacher, fuse

log = logging.getLogger(__name__)

#: samples before a patch that the teacher's first frame also reads (centred on the patch's first sample)
CONTEXT = 256


@dataclass(frozen=True)
class FusionSpec:
    """The card's ``fusion`` entry, validated."""

    teacher: Path
    head: Path
    live_every_s: float = 3.0  #: mer-live: a teacher patch every this many seconds of music
    #: mer-analyze: patches starting every this many seconds (0: one patch, the middle one)
    analyze_every_s: float = 15.0
    memory_s: float = 6.0  #: live: the patches that ended in the last memory_s are averaged

    @classmethod
    def from_card(cls, model: Any) -> FusionSpec | None:
        d = model.card.extra.get("fusion")
        if d is None:
            return None
        src = f"model card {model.path.with_suffix('.json').name}"
        if not isinstance(d, dict):
            raise ModelError(f"{src}: 'fusion' must be an object")
        base = model.path.parent
        try:
            teacher, head = base / str(d["teacher"]), base / str(d["head"])
        except KeyError as e:
            raise ModelError(f"{src}: fusion needs {e.args[0]!r}") from None
        vals = {}
        limits = (("live_every_s", 0.5, 600.0), ("analyze_every_s", 0.0, 600.0), ("memory_s", 0.5, 3600.0))
        for key, lo, hi in limits:
            v = d.get(key, getattr(cls, key))
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not lo <= v <= hi:
                raise ModelError(f"{src}: fusion {key} must be a number in {lo}..{hi}, got {v!r}")
            vals[key] = float(v)
        return cls(teacher, head, **vals)


class Fusion:
    """The teacher of a fused model: patches in, fused outputs out (live and offline)."""

    def __init__(self, spec: FusionSpec, threads: int = 1, provider: str = "cpu",
                 offsets: tuple[float, float] | None = None) -> None:
        self.spec = spec
        self.teacher = Teacher(spec.teacher, head=spec.head, threads=threads, provider=provider)
        self.active_provider = self.teacher.session.get_providers()[0]
        self.w = self.teacher.head.w
        self.window_samples = self.teacher.window_samples
        self.patch_samples = self.window_samples - CONTEXT  #: the patch itself, without its context
        self.name = spec.teacher.stem
        #: added to the teacher's logits: a room model's re-centring (``mer_live.roominput``)
        self.offsets = None if offsets is None else np.asarray(offsets, np.float64)

    @classmethod
    def of(cls, model: Any, threads: int = 1, provider: str | None = None) -> Fusion | None:
        """The model's teacher, or None for a plain CNN (ModelError, one line, if it is broken).
        ``provider`` None: the provider the model really runs on (CUDA when the model got it).
        A model loaded for room input (``RoomModel``) passes its ``teacher_offsets`` on."""
        spec = FusionSpec.from_card(model)
        if spec is None:
            return None
        if provider is None:
            provider = "cuda" if getattr(model, "active_provider", "") == "CUDAExecutionProvider" else "cpu"
        return cls(spec, threads, provider, getattr(model, "teacher_offsets", None))

    def fuse(self, p_cnn: np.ndarray, z: np.ndarray | None) -> np.ndarray:
        return np.asarray(p_cnn, np.float64) if z is None else fuse(p_cnn, z, self.w)

    def patch_starts(self, n: int, rate: int) -> np.ndarray:
        """mer-analyze's patches of a recording of ``n`` samples: starts (samples) every
        ``analyze_every_s`` from 0 while a patch fits, or the middle one of the 1-s grid when
        ``analyze_every_s`` is 0 (the placements docs/teacher.md cross-validated)."""
        patch = self.patch_samples
        fit = max(1, (n - patch) // rate + 1)  # patches on the 1-s grid that fit (at least one)
        if self.spec.analyze_every_s <= 0:
            return np.array([((fit - 1) // 2) * rate], np.int64)
        starts = np.arange(0, n - patch + 1, int(round(self.spec.analyze_every_s * rate)), dtype=np.int64)
        return starts if len(starts) else np.zeros(1, np.int64)  # shorter than a patch: one, padded

    def patches(self, x: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """``[len(starts), window_samples]``: each patch with the 256 samples before it (zeros
        before the start, and past the end of a recording shorter than a patch)."""
        w, pre = self.window_samples, CONTEXT
        out = np.zeros((len(starts), w), np.float32)
        for i, s in enumerate(starts):
            lo = int(s) - pre
            seg = x[max(0, lo) : lo + w]
            out[i, max(0, -lo) : max(0, -lo) + len(seg)] = seg
        return out

    def logits(self, patches: np.ndarray) -> np.ndarray:
        z = self.teacher.logits(patches)
        return z if self.offsets is None else z + self.offsets[None, :]


class TeacherThread:
    """The teacher off the pipeline thread. ``submit`` a patch (returns at once; a patch still
    waiting is replaced, so a slow machine skips patches instead of queueing them); ``recent(t)``
    is the mean logits of the patches that ended in the ``memory_s`` before stream time ``t``.

    The memory restarts at a patch that disagrees with it (``disagrees``: another quadrant, by a
    margin) or that was submitted with ``restart`` (the estimator's sign of a song change): after
    a song change the old song's patches would otherwise hold the fused values in
    the old quadrant for up to ``memory_s`` (bench/bench_show.py measures the settle time).
    mer-analyze places its patches itself (``Fusion.patch_starts``), so the CV is not affected."""

    def __init__(self, fusion: Fusion) -> None:
        self.fusion = fusion
        self.memory_s = fusion.spec.memory_s
        self._pending: tuple[float, np.ndarray, bool] | None = None
        self._done: deque[tuple[float, np.ndarray]] = deque(maxlen=64)
        self._cv = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._throttle = Throttled(log)
        self.runs = 0
        self.skipped = 0
        self.restarts = 0  #: times the memory restarted at a disagreeing patch
        self.ms: deque[float] = deque(maxlen=100)

    def start(self) -> None:
        if self._thread is None:
            self._stop = False
            self._thread = threading.Thread(target=self._run, name="mer-teacher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify()
        t, self._thread = self._thread, None
        if t is not None:
            t.join(1.0)  # a daemon thread: a patch still in the model is left to finish on its own

    def reset(self) -> None:
        """A new source: forget what was heard."""
        with self._cv:
            self._pending = None
            self._done.clear()

    def submit(self, patch: np.ndarray, t_end: float, restart: bool = False) -> None:
        """``restart``: the song may have changed; this patch's result replaces the memory."""
        with self._cv:
            if self._pending is not None:
                self.skipped += 1
                restart = restart or self._pending[2]  # a newer patch still says the song changed
            self._pending = (t_end, np.array(patch, np.float32), restart)
            self._cv.notify()

    def recent(self, t: float) -> np.ndarray | None:
        with self._cv:
            z = [lz for te, lz in self._done if t - self.memory_s < te <= t + 1e-9]
        return np.mean(z, axis=0) if z else None

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._pending is None and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                t_end, patch, restart = self._pending  # type: ignore[misc]
                self._pending = None
            t0 = time.perf_counter()
            try:
                z = self.fusion.logits(patch[None, :])[0]
            except (ModelError, ValueError, RuntimeError) as e:
                why = one_line(e)
                self._throttle.warn("teacher", "teacher model failed: %s (the CNN goes on alone)", why)
                continue
            self.ms.append((time.perf_counter() - t0) * 1000.0)
            self._land(t_end, z, restart)

    def _land(self, t_end: float, z: np.ndarray, restart: bool = False) -> None:
        """Keep a finished patch; the memory restarts at it when asked to or when it disagrees
        with the memory."""
        if not np.all(np.isfinite(z)):
            return
        with self._cv:
            held = [lz for te, lz in self._done if t_end - self.memory_s < te <= t_end + 1e-9]
            if held and (restart or disagrees(z, np.mean(held, axis=0))):
                self._done.clear()
                self.restarts += 1
            self._done.append((t_end, z))
            self.runs += 1


#: how far (logit) a patch must be from the memory, in a dimension where they lie on opposite
#: sides of 0, to count as another song (0.5 moves the fused value by 0.15 logit): a memory that
#: hovers at 0 does not restart at every patch
DISAGREE_MARGIN = 0.5


def disagrees(z: np.ndarray, memory: np.ndarray, margin: float = DISAGREE_MARGIN) -> bool:
    """Whether teacher logits ``z`` put the music in another quadrant than ``memory`` does, in a
    dimension where they differ by at least ``margin``."""
    z, m = np.asarray(z, np.float64), np.asarray(memory, np.float64)
    return bool(np.any((np.sign(z) != np.sign(m)) & (np.abs(z - m) >= margin)))


def crosses(end: int, step: int, every: int) -> bool:
    """Whether the hop ending at sample ``end`` (``step`` samples long) passes a multiple of ``every``."""
    return end // every != (end - step) // every
