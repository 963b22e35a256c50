"""What each hop boundary says: is this music, and if so what the model hears in it.

``Estimator.judge`` runs, per boundary, the decisions of docs/architecture.md in order:

1. lost input, a silent input or a window not yet full: nothing to judge;
2. the music-presence gate (``presence``: a small model and a hysteresis, ``mer_live.presence``):
   talk, applause, room tone or a line check between songs is not music;
3. the emotion model on the window, only for music (a model error or non-finite output counts as
   "not trusted" and is warned about, throttled); for a fused model (``mer_live.fusion``) a patch
   goes to the teacher's thread every ``live_every_s`` of music and the CNN's output is fused
   with the teacher's recent logits;
4. the smoother: trusted values move the outputs; otherwise they hold or drift to neutral
   (``on_silence``), and before any music they stay neutral (0.5, 0.5).

The result, a ``Judgement``, is what the pipeline turns into an ``Estimate``.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from mer_live.logs import Throttled, one_line
from mer_live.model import Model, ModelError
from mer_live.smoothing import Smoother
from mer_live.stream import Boundary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Judgement:
    raw: tuple[float, float]  #: the last trusted model output (0.5, 0.5 before any)
    smooth: tuple[float, float]  #: the smoothed values that go out
    music: bool  #: music plays and ``raw`` is this window's output
    music_prob: float  #: the presence model's probability (0 when not heard; 1/0 without a model)
    model_ms: float  #: time in the emotion model for this window (0: not run)


class Estimator:
    """Presence gate -> emotion model -> smoother, one boundary at a time (the pipeline thread)."""

    def __init__(self, model: Model, smoother: Smoother, presence: Any | None = None,
                 gate: Any | None = None, teacher: Any | None = None) -> None:
        self.model = model
        self.rate = int(model.sample_rate)
        self.teacher = teacher  #: a fusion.TeacherThread or None (a plain CNN)
        self.smoother = smoother
        self.presence = presence  #: a PresenceModel (``predict(windows) -> probs``) or None: no gate
        self.gate = gate  #: a MusicGate (``update(prob, dt, silent) -> bool``, ``reset()``)
        self.model_errors = 0
        self.model_ms: deque[float] = deque(maxlen=600)
        self._throttle = Throttled(log)
        self.reset()

    def reset(self) -> None:
        """A new source: the gate forgets, the outputs keep their last values (no jump)."""
        self._last_raw = np.full(2, 0.5)
        self._next_patch_t = 0.0
        if self.gate is not None:
            self.gate.reset()
        if self.teacher is not None:
            self.teacher.reset()

    def start(self) -> None:
        """Start the teacher's thread (a fused model); the pipeline calls it as it starts."""
        if self.teacher is not None:
            self.teacher.start()

    def stop(self) -> None:
        if self.teacher is not None:
            self.teacher.stop()

    def judge(self, b: Boundary, input_ok: bool, dt: float) -> Judgement:
        """The judgement for boundary ``b``, ``dt`` seconds after the previous one."""
        audible = input_ok and not b.silent
        music = audible and b.full
        prob = 1.0 if music else 0.0  # without a presence model: every audible full window
        if self.presence is not None:
            n = int(self.presence.window_samples)
            heard = audible and b.end >= n
            prob = self._presence_prob(b.window[-n:]) if heard else 0.0
            music = bool(self.gate.update(prob, dt, silent=not heard)) and music
        model_ms = 0.0
        if music:
            t0 = time.perf_counter()
            av = self._predict(b.window)
            model_ms = (time.perf_counter() - t0) * 1000.0
            self.model_ms.append(model_ms)
            if av is None:
                music = False
            else:
                self._last_raw = av if self.teacher is None else self._fused(b, av)
        smooth = self.smoother.update(self._last_raw, dt, silent=not music)
        return Judgement((float(self._last_raw[0]), float(self._last_raw[1])),
                         (float(smooth[0]), float(smooth[1])), music, prob, model_ms)

    def idle(self, dt: float) -> Judgement:
        """No audio at all (a lost input): hold or drift, and the gate closes."""
        if self.gate is not None:
            self.gate.update(0.0, dt, silent=True)
        smooth = self.smoother.update(self._last_raw, dt, silent=True)
        return Judgement((float(self._last_raw[0]), float(self._last_raw[1])),
                         (float(smooth[0]), float(smooth[1])), False, 0.0, 0.0)

    def _fused(self, b: Boundary, av: np.ndarray) -> np.ndarray:
        """Hand the teacher a patch when one is due; fuse with what it has heard recently."""
        th, t = self.teacher, b.end / self.rate
        if t >= self._next_patch_t:
            th.submit(b.window[-th.fusion.window_samples :], t)
            self._next_patch_t = t + th.fusion.spec.live_every_s
        return np.clip(th.fusion.fuse(av, th.recent(t)), 0.0, 1.0)

    def _presence_prob(self, w: np.ndarray) -> float:
        try:
            p = float(np.asarray(self.presence.predict(w[None, :])).reshape(-1)[0])
        except (ModelError, ValueError, RuntimeError) as e:
            self._throttle.warn("presence", "music-presence model failed: %s (treating as music)",
                                one_line(e))
            return 1.0  # a broken gate must not silence the show: the emotion model still runs
        return p if math.isfinite(p) else 1.0

    def _predict(self, window: np.ndarray) -> np.ndarray | None:
        try:
            av = self.model.predict(window[None, :])[0].astype(np.float64)
        except ModelError as e:
            self.model_errors += 1
            self._throttle.warn("model", "%s (holding values)", one_line(e))
            return None
        if not np.all(np.isfinite(av)):
            self.model_errors += 1
            self._throttle.warn("model-nan", "model returned non-finite values (holding values)")
            return None
        return np.clip(av, 0.0, 1.0)
