"""What each hop boundary says: is this music, and if so what the model hears in it.

``Estimator.judge`` runs, per boundary, the decisions of docs/architecture.md in order:

1. lost input, a silent input or a window not yet full: nothing to judge;
2. the music-presence gate (``presence``: a small model and a hysteresis, ``mer_live.inference.presence``):
   talk, applause, room tone or a line check between songs is not music;
3. the emotion model on the window, only for music (a model error or non-finite output counts as
   "not trusted" and is warned about, throttled); for a fused model (``mer_live.inference.fusion``) a patch
   goes to the teacher's thread every ``live_every_s`` of music and the CNN's output is fused
   with the teacher's recent logits; a song change brings a patch early (see ``_fused``);
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

from mer_live.common.logs import Throttled, one_line
from mer_live.inference.model import Model, ModelError
from mer_live.inference.phrase import FRAME, PhraseTrack
from mer_live.live.smoothing import Smoother
from mer_live.live.stream import Boundary

log = logging.getLogger(__name__)

#: music after at least this long without any: a new song, the teacher forgets the last one
RESTART_AFTER_S = 2.0
#: the CNN alone in a new quadrant this long while the fused output is not: ask the teacher now
PROBE_AFTER_S = 0.5
#: the music gate opens when the presence model has heard about this much music (its 2-s window)
GATE_LEAD_S = 2.0
#: after a break, the model hears only the music: the window's older part is filled with it
FRESH_AFTER_BREAK = True
#: while the gate is settled (open on a probability of at least ``on_prob``, or closed on one
#: under ``off_prob``), the presence model runs every other hop and the hop between reuses its
#: probability: half its cost in steady music or talk (issue #28). A change is then seen at most
#: one hop late (the gate opens or closes <= one hop later); tests/live/test_presence_cadence.py
#: and bench_show's gate accuracy measure it. False: every hop, as mer-analyze's ``music_flags``.
PRESENCE_SKIP_SETTLED = True


_ZEROS = np.zeros(FRAME, np.float32)  #: a frame of no input (a lost input): never tonal


@dataclass(frozen=True)
class Judgement:
    raw: tuple[float, float]  #: the last trusted model output (0.5, 0.5 before any)
    smooth: tuple[float, float]  #: the smoothed values that go out
    music: bool  #: music plays and ``raw`` is this window's output
    #: the probability the gate judged: the presence model's, raised by its phrase head where the
    #: card has one (0 when not heard; 1/0 without a model)
    music_prob: float
    model_ms: float  #: time in the emotion model for this window (0: not run)
    #: the gate hears music (without a presence model: the input is audible), from the gate's first
    #: window on, before the emotion model's window is full; ``music`` implies it
    heard: bool = False


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
        self.presence_skip_settled = PRESENCE_SKIP_SETTLED
        self.presence_runs = 0  #: hops the presence model ran on
        self.presence_reused = 0  #: hops that reused the previous hop's probability (settled gate)
        #: the presence model's phrase head (its card's "phrase") and the cue it reads: fed every
        #: hop, also the hops that reuse the model's probability, so its 8-s ring is the CV's
        self.phrase = getattr(presence, "phrase", None) if presence is not None else None
        self.phrase_track = PhraseTrack(self.phrase.context_s) if self.phrase is not None else None
        self.model_ms: deque[float] = deque(maxlen=600)
        self._throttle = Throttled(log)
        self.reset()

    def reset(self) -> None:
        """A new source: the gate forgets, the outputs keep their last values (no jump)."""
        self._last_raw = np.full(2, 0.5)
        self._next_patch_t = 0.0
        self._last_music_t = -math.inf  # stream time of the last music window fused
        self._cnn_q = 0  # the CNN's own quadrant, since when, and the change a probe answered
        self._cnn_q_since = 0.0
        self._probed = -1.0
        self._gate_closed_t = 0.0  # stream time the music gate last said "no music"
        self._last_prob = math.nan  # the presence model's last probability (NaN: none to reuse)
        if self.phrase_track is not None:
            self.phrase_track.reset()
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
        hears = audible  # the gate's own word (without a presence model: any audible hop)
        if self.presence is not None:
            n = int(self.presence.window_samples)
            heard = audible and b.end >= n
            if not heard:
                prob, self._last_prob = 0.0, math.nan
            elif self._settled():
                prob, self._last_prob = self._last_prob, math.nan  # reuse once, then run again
                self.presence_reused += 1
            else:
                prob = self._last_prob = self._presence_prob(b.window[-n:])
                self.presence_runs += 1
            if self.phrase_track is not None:  # every hop, heard or not (silence: no tonal frame)
                cue = self.phrase_track.push(b.window[-FRAME:] if input_ok else _ZEROS)
                if heard:  # the gate runs on max(p, head), as the CV measured it
                    prob = float(self.phrase.raise_(np.float32(prob), cue)[0])
            gate_open = bool(self.gate.update(prob, dt, silent=not heard))
            if not gate_open:
                self._gate_closed_t = b.end / self.rate
            music = gate_open and music
            hears = gate_open and audible
        model_ms = 0.0
        if music:
            t0 = time.perf_counter()
            window = self._music_part(b)
            av = self._predict(window)
            model_ms = (time.perf_counter() - t0) * 1000.0
            self.model_ms.append(model_ms)
            if av is None:
                music = False
            else:
                self._last_raw = av if self.teacher is None else self._fused(b, av, window)
        smooth = self.smoother.update(self._last_raw, dt, silent=not music)
        return Judgement((float(self._last_raw[0]), float(self._last_raw[1])),
                         (float(smooth[0]), float(smooth[1])), music, prob, model_ms, hears or music)

    def idle(self, dt: float) -> Judgement:
        """No audio at all (a lost input): hold or drift, and the gate closes."""
        if self.gate is not None:
            self.gate.update(0.0, dt, silent=True)
        if self.phrase_track is not None:
            self.phrase_track.push(_ZEROS)
        smooth = self.smoother.update(self._last_raw, dt, silent=True)
        return Judgement((float(self._last_raw[0]), float(self._last_raw[1])),
                         (float(smooth[0]), float(smooth[1])), False, 0.0, 0.0)

    def _fused(self, b: Boundary, av: np.ndarray, window: np.ndarray) -> np.ndarray:
        """Hand the teacher a patch when one is due; fuse with what it has heard recently.

        A patch is due every ``live_every_s`` of music, and at once when the song may have
        changed: music after a break (the teacher then forgets the last song), or the CNN alone
        settled for ``PROBE_AFTER_S`` in a quadrant the fused output is not in (the teacher's
        memory may hold the last song: this patch replaces it, ``TeacherThread``).
        Without these the old song's patches held the values for up to ``memory_s`` after a cut.
        """
        th, t = self.teacher, b.end / self.rate
        every = th.fusion.spec.live_every_s
        if t - self._last_music_t >= RESTART_AFTER_S:
            th.reset()
            self._next_patch_t = t
        self._last_music_t = t
        q = _quadrant(av)
        if q != self._cnn_q:
            self._cnn_q, self._cnn_q_since = q, t
        fused = np.clip(th.fusion.fuse(av, th.recent(t)), 0.0, 1.0)
        probe = (self._probed != self._cnn_q_since and t - self._cnn_q_since >= PROBE_AFTER_S
                 and _quadrant(fused) != q)
        if t >= self._next_patch_t or probe:
            th.submit(window[-th.fusion.window_samples :], t, restart=probe)
            self._next_patch_t = t + every
            self._probed = self._cnn_q_since
        return fused

    def _settled(self) -> bool:
        """The last hop's probability agrees with the gate's state beyond its thresholds (and was
        measured, not reused): this hop may reuse it (``PRESENCE_SKIP_SETTLED``)."""
        p = self._last_prob
        if not self.presence_skip_settled or not math.isfinite(p):
            return False
        c = self.gate.config
        return p >= c.on_prob if self.gate.music else p < c.off_prob

    def _music_part(self, b: Boundary) -> np.ndarray:
        """The model's window, in the first seconds after the gate opened on music after talk,
        applause or silence: only the music heard since (the gate's opening time plus its lead),
        repeated to fill the window. The older part would be the break, whose sound the model was
        never meant to judge, and it held the values off the new song for the window's length."""
        w = b.window
        if self.presence is None or not FRESH_AFTER_BREAK:
            return w
        n = int(round((b.end / self.rate - self._gate_closed_t + GATE_LEAD_S) * self.rate))
        if n >= len(w) or n <= 0:
            return w
        return np.tile(w[-n:], -(-len(w) // n))[-len(w):]

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


def _quadrant(av: np.ndarray) -> int:
    """Russell quadrant 1..4 of (arousal, valence) in [0, 1]."""
    hi_a, hi_v = av[0] >= 0.5, av[1] >= 0.5
    return (1 if hi_v else 2) if hi_a else (4 if hi_v else 3)
