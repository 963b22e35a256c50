"""What each hop boundary says: is this music, and if so what the model hears in it.

``Estimator.judge`` runs, per boundary, the decisions of docs/architecture.md in order:

1. lost input, a silent input or a window not yet full: nothing to judge;
2. the music-presence gate (``presence``: a small model and a hysteresis, ``mer_live.inference.presence``):
   talk, applause, room tone or a line check between songs is not music;
3. the emotion model on the window, only for music (a model error or non-finite output counts as
   "not trusted" and is warned about, throttled); for a fused model (``mer_live.inference.fusion``) a patch
   goes to the teacher's thread every ``live_every_s`` of music and the CNN's output is fused
   with the teacher's recent logits; a song change brings a patch early (see ``_fused``); a hard
   cut found by ``live/songcut.py`` makes the model hear only the new song (``_follow_cut``, ``_music_part``);
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
from mer_live.live.songcut import CutDetector
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
#: a hard cut detected in the music (``live/songcut.py``): once this much of the new song has
#: arrived, the model hears only it (repeated to fill its window), the teacher forgets the last
#: song and the smoother jumps to the new reading (bench_show measures the settle time); with a
#: music gate only (mer-live's default; not with ``--no-music-gate``); ``[pipeline] song_cut`` /
#: ``--no-song-cut`` turn it off (the Estimator's ``song_cut``)
CUT_MIN_FRESH_S = 1.5
#: a "cut" before the gate reopened after a break, or this soon after, is the music's return (handled
#: by ``FRESH_AFTER_BREAK``); a short closure (an old song's fade-out at a cut) is no break
CUT_BREAK_MARGIN_S = 0.5


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
    #: the music gate hears music, from its first window on, before the emotion model's window is
    #: full (without a presence model: the same as ``music``); ``music`` implies it
    heard: bool = False


class Estimator:
    """Presence gate -> emotion model -> smoother, one boundary at a time (the pipeline thread)."""

    def __init__(self, model: Model, smoother: Smoother, presence: Any | None = None,
                 gate: Any | None = None, teacher: Any | None = None, song_cut: bool = True) -> None:
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
        #: the song-change detector: with a music gate only, as ``FRESH_AFTER_BREAK`` (the show's path;
        #: without a gate every window is the one mer-analyze evaluates, which bench/soak.py checks)
        self.cuts = CutDetector(self.rate) if song_cut and presence is not None else None
        self.cuts_acted = 0  #: detected cuts the model, teacher and smoother acted on
        #: stream times (s) where those new songs began: for a window's length after each, the live
        #: model heard only the new song, so its values differ from mer-analyze's there
        self.cut_times: deque[float] = deque(maxlen=64)
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
        self._closed_from = 0.0  # stream time that stretch without music began
        self._gate_was_open = False
        self._last_prob = math.nan  # the presence model's last probability (NaN: none to reuse)
        self._fed_end: int | None = None  # stream sample up to which the cut detector has heard
        self._cut_end: int | None = None  # stream sample where a detected new song began
        self._cut_new = False  # this hop is the first that hears only the new song
        self._cut_heard = False  # the model has heard the new song alone since the last cut
        self._cut_restart_until = -math.inf  # stream time until which teacher patches replace its memory
        if self.cuts is not None:
            self.cuts.reset()
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
        cut = self._hear_cuts(b, audible)
        prob = 1.0 if music else 0.0  # without a presence model: every audible full window
        hears = False  # the gate's own word (without a presence model: the same as ``music``)
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
                if self._gate_was_open:
                    self._closed_from = b.end / self.rate
                self._gate_closed_t = b.end / self.rate
            self._gate_was_open = gate_open
            music = gate_open and music
            hears = gate_open and audible
        if cut and not self._fresh(b):  # even where the gate closed a moment (a fade-out at a cut)
            self._cut_end = b.end - int(self.cuts.samples_since_cut())
            self._cut_heard = False
        model_ms = 0.0
        if music:
            t0 = time.perf_counter()
            window = self._music_part(b, self._follow_cut(b))
            av = self._predict(window)
            model_ms = (time.perf_counter() - t0) * 1000.0
            self.model_ms.append(model_ms)
            if av is None:
                music = False
            else:
                self._last_raw = av if self.teacher is None else self._fused(b, av, window)
                if self._cut_new:  # the new song's first reading goes out at once
                    self.smoother.reset()
                    self.cuts_acted += 1
                    self.cut_times.append(self._cut_end / self.rate)
        self._cut_new = False
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
        if self._cut_new:
            # a new song: the teacher forgets the last, and hears the new one as a fresh start
            # would: a patch once one holds only the new song, then each patch up to the model's
            # window length after the cut replaces the memory (from there the live path matches
            # the song played alone: patches every ``live_every_s``, the memory of the last ones)
            th.reset()
            cut_t = self._cut_end / self.rate
            self._next_patch_t = cut_t + th.fusion.patch_samples / self.rate
            self._cut_restart_until = cut_t + len(window) / self.rate + 0.5 * every
        self._last_music_t = t
        q = _quadrant(av)
        if q != self._cnn_q:
            self._cnn_q, self._cnn_q_since = q, t
        fused = np.clip(th.fusion.fuse(av, th.recent(t)), 0.0, 1.0)
        probe = (self._probed != self._cnn_q_since and t - self._cnn_q_since >= PROBE_AFTER_S
                 and _quadrant(fused) != q)
        if t >= self._next_patch_t or probe:
            restart = probe or t <= self._cut_restart_until + 1e-9
            th.submit(window[-th.fusion.window_samples :], t, restart=restart)
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

    def _follow_cut(self, b: Boundary) -> int | None:
        """Samples of a detected cut's new song that the model should hear alone at this music
        hop (None: no cut to act on). Moves the cut's state on: a cut a window ago, or one that
        was the music's return after a break (``_music_part`` handles those), is retired; the first
        hop with ``CUT_MIN_FRESH_S`` of the new song arms the new-song reset (``_cut_new``)."""
        if self._cut_end is None:
            return None
        since = b.end - self._cut_end
        after_break = (self._gate_closed_t - self._closed_from >= RESTART_AFTER_S
                       and self._cut_end / self.rate <= self._gate_closed_t + CUT_BREAK_MARGIN_S)
        if since >= len(b.window) or after_break:
            self._cut_end = None
            return None
        if since < CUT_MIN_FRESH_S * self.rate:
            return None
        self._cut_new = self._cut_new or not self._cut_heard
        self._cut_heard = True
        return since

    def _music_part(self, b: Boundary, since_cut: int | None) -> np.ndarray:
        """The model's window, in the first seconds after the gate opened on music after talk,
        applause or silence: only the music heard since (the gate's opening time plus its lead),
        repeated to fill the window. The older part would be the break, whose sound the model was
        never meant to judge, and it held the values off the new song for the window's length.
        After a detected cut (``since_cut``, from ``_follow_cut``): only the new song."""
        w = b.window
        n = len(w)
        if self.presence is not None and FRESH_AFTER_BREAK:
            n = int(round((b.end / self.rate - self._gate_closed_t + GATE_LEAD_S) * self.rate))
        if since_cut is not None:
            n = min(n, since_cut) if n > 0 else since_cut
        if n >= len(w) or n <= 0:
            return w
        return np.tile(w[-n:], -(-len(w) // n))[-len(w):]

    def _fresh(self, b: Boundary) -> bool:
        """Whether the model's window still begins at a song's start (a cut acted on, or music
        back after a break, less than a window ago): a song does not change again that soon, so a
        detection there (an intro's first chorus) is not acted on."""
        t, w = b.end / self.rate, len(b.window) / self.rate
        if self._cut_end is not None and t < self._cut_end / self.rate + w:
            return True
        back = self._gate_closed_t - self._closed_from >= RESTART_AFTER_S
        return back and t < self._gate_closed_t - GATE_LEAD_S + w

    def _hear_cuts(self, b: Boundary, audible: bool) -> bool:
        """Feed the cut detector the samples since the last boundary; whether it found a cut."""
        if self.cuts is None:
            return False
        if not audible:  # silence or no input: a song that starts after it is a new start anyway
            if self._fed_end is not None:
                self.cuts.reset()
            self._fed_end = None
            return False
        new = 0 if self._fed_end is None else b.end - self._fed_end  # the first audible hop: a start
        self._fed_end = b.end
        if new <= 0:
            return False
        return self.cuts.update(b.window[-min(new, len(b.window)) :])

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
