"""The live pipeline: a source's ring -> ``Stream`` -> analysers and ``Estimator`` -> sinks.

One thread does the whole data path (see docs/architecture.md)::

    ring.read_new() -> Stream.push: clean-up, resampling, hop boundaries
        -> each block analyser (beat, sections) on the cleaned device-rate block -> Events
        -> at every hop boundary: Estimator.judge (music gate, model, smoother) -> Estimate
    -> each sink: sink(estimate); sink.event(event) for the sinks that take events

Policies (documented choices):

* Estimates start at the first hop, before a whole model window has arrived: level, silence,
  clipping and input state go out from the first tenth of a second, with neutral values and
  ``music=False`` until the model has heard a full window of music.
* Live (a paced source), when more than one boundary is pending the pipeline evaluates only the
  newest and counts the rest in ``hops_skipped``; an unpaced file evaluates every boundary, so its
  values equal ``mer-analyze``'s over the same audio (with a music gate, not in the first seconds of
  music after a break: the live model then hears only the music, ``Estimator._music_part``).
* Analysers' events (beats, onsets, sections, drops) go to the sinks only while music plays (the
  latest estimate's ``music``): talk, applause and line checks between songs drive no chases.
  The analysers keep listening, so the counters run on and a beat is locked when a song starts.
  Beats, onsets and bars go out on rhythm alone too, above the silence floor (the beat tracker's
  rhythm gate: a steady groove, before the model's first window or where the presence model hears
  no music; ``estimate.beats_go_out``); the estimate's ``bpm`` is the tempo while beats may go out,
  0 otherwise.
* No audio at all for ``lost_after_s`` (a stalled or vanished device): the pipeline keeps
  publishing an estimate every hop of wall time with ``input_ok=False``, so the lights can relax
  and OSC receivers see the input is gone.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from mer_live import registry
from mer_live.common.cleanup import DEFAULT_DC_CUTOFF_HZ, DEFAULT_GAIN_DB
from mer_live.common.framing import hop_samples
from mer_live.common.levels import SILENCE_DB
from mer_live.common.logs import Throttled, one_line
from mer_live.common.silence import DEFAULT_SILENCE_DB, DEFAULT_SILENCE_S
from mer_live.common.validate import Checked, ShowConfigError, check, check_fields, flag, number
from mer_live.inference.model import Model
from mer_live.live.arrivals import Arrivals
from mer_live.live.estimator import Estimator, Judgement
from mer_live.live.realtime import promote_or_warn
from mer_live.live.records import Estimate, Event, beats_go_out
from mer_live.live.ringbuffer import RingBuffer
from mer_live.live.sinks import Sink, Sinks
from mer_live.live.smoothing import ON_SILENCE, Smoother
from mer_live.live.stream import Boundary, Stream

log = logging.getLogger(__name__)
_ESTIMATE_FIELDS = frozenset(f.name for f in dataclasses.fields(Estimate))


class Source(Protocol):
    """The duck-typed source interface of docs/architecture.md."""

    samplerate: int
    channels: int
    ring: RingBuffer
    name: str
    finished: bool
    ok: bool
    overflows: int
    message: str

    def start(self) -> None: ...
    def stop(self) -> None: ...


class Analyser(Protocol):
    """A block analyser (``analysers.beat``, ``analysers.sections``): hears every cleaned block."""

    def reset(self, samplerate: int) -> None: ...
    def process(self, mono: np.ndarray, t_end: float, wall: float) -> list[Event]: ...


@dataclass
class PipelineConfig(Checked):
    """Live pipeline settings, checked when made (``mer_live.common.validate``'s style)."""

    #: seconds between estimates
    hop_s: float = field(default=0.1, metadata=number(0.01, 10, "a number of seconds in 0.01..10"))
    #: input gain before everything else (levels, silence, model)
    gain_db: float = field(default=DEFAULT_GAIN_DB, metadata=number(-60, 60, "a number of dB in -60..60"))
    pick: tuple[int, ...] | None = None  #: 1-based input channels to mix; None = all
    #: smoothing time constant for rising values
    attack_s: float = field(default=0.3, metadata=number(0, 600, "a number of seconds in 0..600"))
    #: smoothing time constant for falling values
    release_s: float = field(default=1.0, metadata=number(0, 600, "a number of seconds in 0..600"))
    #: RMS (dBFS) below which a hop counts as quiet (common.silence)
    silence_db: float = field(default=DEFAULT_SILENCE_DB, metadata=number(-200, 0, "a level in -200..0 dBFS"))
    #: how long quiet before the input is "silent"
    silence_s: float = field(default=DEFAULT_SILENCE_S,
                             metadata=number(0, 3600, "a number of seconds in 0..3600"))
    on_silence: str = "hold"  #: "hold" the values or drift to "neutral" (0.5) when silent/lost
    #: time constant of the drift to neutral
    neutral_s: float = field(default=4.0, metadata=number(0, 3600, "a number of seconds in 0..3600"))
    #: peak (dBFS) at or above which the input counts as clipping
    clip_db: float = field(default=-0.1, metadata=number(-60, 0, "a level in -60..0 dBFS"))
    #: how many seconds of estimates the LiveApp keeps for plots
    history_s: float = field(default=120.0, metadata=number(1, 24 * 3600, "a number of seconds in 1..86400"))
    #: DC blocker cut-off; 0 disables it
    dc_cutoff_hz: float = field(default=DEFAULT_DC_CUTOFF_HZ,
                                metadata=number(0, 200, "a frequency in 0..200 Hz"))
    #: no audio for this long -> estimates with input_ok=False
    lost_after_s: float = field(default=0.5, metadata=number(0.05, 60, "a number of seconds in 0.05..60"))
    #: run the pipeline thread with real-time scheduling (SCHED_FIFO) when the OS allows it, so a
    #: machine loaded by visuals does not delay the hop boundaries (``mer_live.live.realtime``)
    realtime: bool = field(default=False, metadata=flag())
    #: act on a hard cut between songs (``live/songcut.py``, with a music gate only): the model
    #: hears only the new song, the teacher forgets the last one. False: a cut is followed as
    #: the window slides (~6 s), and no false detection inside a song ever shortens the window
    song_cut: bool = field(default=True, metadata=flag())

    def __post_init__(self) -> None:
        check_fields(self, "pipeline")
        check(self.on_silence in ON_SILENCE, "pipeline", "on_silence", f"one of {', '.join(ON_SILENCE)}",
              self.on_silence)
        if self.pick is not None:
            p = tuple(self.pick) if isinstance(self.pick, (list, tuple)) else ()
            check(bool(p) and all(isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in p),
                  "pipeline", "pick", "a list of 1-based channels like [1, 2]", self.pick)
            if len(set(p)) != len(p):
                raise ShowConfigError(f"[pipeline] pick lists a channel twice: {self.pick!r}")
            self.pick = p


class Pipeline:
    """Runs the data path on its own thread; owns its source's start/stop.

    ``start()`` starts the source then the thread; ``stop()`` stops both (idempotent, < 1 s).
    ``done`` is set when the thread ends: after ``stop()``, or by itself once a non-looping file
    source is finished and all its audio is processed. A Pipeline can be started again after
    it ended (its source restarts too). ``presence`` and ``gate`` (``mer_live.inference.presence``) make
    it judge music first; without them every audible full window counts as music. ``teacher`` (a
    ``fusion.TeacherThread``) makes it a two-rate fusion.
    """

    def __init__(
        self,
        source: Source,
        model: Model,
        config: PipelineConfig | None = None,
        sinks: Iterable[Sink] = (),
        presence: Any | None = None,
        gate: Any | None = None,
        analysers: Iterable[Analyser] = (),
        teacher: Any | None = None,
    ) -> None:
        self.config = (config or PipelineConfig()).validate()
        self.model = model
        self.source = source
        self._check_pick(source)
        self.model_rate = int(model.sample_rate)
        self.window = int(model.window_samples)
        self.hop = hop_samples(self.config.hop_s, self.model_rate)
        self._lock = threading.Lock()
        self.sinks = Sinks(sinks)
        cfg = self.config
        smoother = Smoother(cfg.attack_s, cfg.release_s, cfg.on_silence, cfg.neutral_s)
        self.estimator = Estimator(model, smoother, presence, gate, teacher, song_cut=cfg.song_cut)
        self.analysers = list(analysers)
        #: the analysers' declarations (``mer_live.registry``): which events go out on rhythm alone
        #: (an analyser's ``rhythm`` flag), without music, and the values events carry (the beat's bpm)
        self._rhythm_kinds = frozenset(registry.rhythm_kinds())
        self._value_rules = registry.value_rules()
        self.latest: Estimate | None = None
        self.done = threading.Event()
        self.done.set()  # not running yet
        self.message = "not started"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pending_source: Source | None = None
        self._throttle = Throttled(log)
        self._latency_ms: deque[float] = deque(maxlen=600)
        self.hops = 0
        self.hops_skipped = 0
        self.bad_samples = 0
        self.wakeups = 0  #: loop passes (proves the thread sleeps between hops instead of spinning)
        #: config.realtime: whether the thread got real-time scheduling (None: not asked for)
        self.realtime_active: bool | None = None
        self._reset_stream()

    # -- public API ---------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        t = self._thread
        return t is not None and t.is_alive()

    @property
    def smoother(self) -> Smoother:
        return self.estimator.smoother

    def start(self) -> None:
        """Start the source and the pipeline thread (no-op when already running)."""
        if self.running:
            return
        self._stop.clear()
        self.done.clear()
        self._reset_stream()
        try:
            self.source.start()
        except BaseException:
            self.done.set()
            raise
        self.message = f"running: {self.source.name}"
        self.estimator.start()
        self._thread = threading.Thread(target=self._run, name="mer-pipeline", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop the thread and the source; idempotent; returns within about ``timeout``."""
        self._stop.set()
        self.source.ring.wake()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)
            if t.is_alive():
                log.warning("pipeline thread did not stop within %.1f s", timeout)
        with self._lock:
            pending, self._pending_source = self._pending_source, None
        for s in (pending, self.source):
            if s is not None:
                self._stop_source(s)
        self.estimator.stop()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the pipeline thread ends; True when it has (or never started)."""
        return self.done.wait(timeout)

    def add_sink(self, sink: Sink) -> None:
        """Add a sink (thread-safe; it sees the next estimate, and events if it has ``event``)."""
        self.sinks.add(sink)

    def remove_sink(self, sink: Sink) -> None:
        self.sinks.remove(sink)

    def set_smoothing(self, attack_s: float, release_s: float) -> None:
        """Change the smoothing times while running (from the GUI thread)."""
        self.smoother.set_times(attack_s, release_s)
        self.config.attack_s, self.config.release_s = float(attack_s), float(release_s)

    def set_source(self, new_source: Source) -> None:
        """Swap the input. Running: the new source is started here (errors propagate and the old
        one keeps playing), then the pipeline thread stops the old one and resets its stream state
        (resampler, history, hop clock) before reading the new one."""
        self._check_pick(new_source)
        if not self.running:
            old, self.source = self.source, new_source
            if old is not new_source:
                self._stop_source(old)
            self._reset_stream()
            return
        new_source.start()
        with self._lock:
            replaced, self._pending_source = self._pending_source, new_source
        self.source.ring.wake()  # take the swap now, not at the end of a wait
        if replaced is not None and replaced is not new_source:
            replaced.stop()

    @property
    def stats(self) -> dict[str, Any]:
        """Counters and recent timings (median / p99 over the last 600 hops)."""
        mm = np.array(self.estimator.model_ms) if self.estimator.model_ms else np.zeros(0)
        lat = np.array(self._latency_ms) if self._latency_ms else np.zeros(0)
        src = self.source

        def pct(a: np.ndarray, q: float) -> float:
            return float(np.percentile(a, q)) if a.size else math.nan

        return {
            "hops": self.hops,
            "hops_skipped": self.hops_skipped,
            "model_ms_median": pct(mm, 50),
            "model_ms_p99": pct(mm, 99),
            "latency_ms_median": pct(lat, 50),
            "latency_ms_p99": pct(lat, 99),
            "latency_ms_last": float(lat[-1]) if lat.size else math.nan,
            "sink_errors": self.sinks.errors,
            "model_errors": self.estimator.model_errors,
            "bad_samples": self.bad_samples,
            "wakeups": self.wakeups,
            "frames_lost": int(src.ring.frames_lost),
            "overflows": int(getattr(src, "overflows", 0)),
            "source": src.name,
            "running": self.running,
            "message": self.message,
        }

    # -- stream state -------------------------------------------------------------------------
    def _check_pick(self, source: Source) -> None:
        pick = self.config.pick
        if pick is not None and max(pick) > source.channels:
            raise ValueError(
                f"channel(s) {[c for c in pick if c > source.channels]} requested but {source.name} "
                f"has {source.channels} channel(s)"
            )

    def _stop_source(self, s: Source) -> None:
        try:
            s.stop()
        except Exception as e:
            log.warning("stopping source %s failed: %s", getattr(s, "name", "?"), one_line(e))

    def _reset_stream(self) -> None:
        """Fresh stream state (resampler, DC blocker, history, hop clock) for the current source."""
        src, cfg = self.source, self.config
        self.src_rate = int(src.samplerate)
        self.stream = Stream(self.src_rate, self.model_rate, self.window, self.hop, cfg,
                             cfg.silence_db, cfg.silence_s, cfg.clip_db)
        self.estimator.reset()
        for a in self.analysers:
            a.reset(self.src_rate)
        self._values: dict[str, Any] = {}  #: the estimate values the analysers' events carry
        self._last_eval: int | None = None  # model-rate end of the last evaluated window
        self._arrivals = Arrivals(src, self.src_rate, self.model_rate)
        self._last_audio_wall = time.monotonic()
        self._last_emit_wall = time.monotonic()
        self._t_last = 0.0
        self._live = bool(getattr(src, "realtime", True))

    # -- thread -------------------------------------------------------------------------------
    def _run(self) -> None:
        if self.config.realtime:
            self.realtime_active = promote_or_warn("pipeline")
        try:
            while not self._stop.is_set():
                try:
                    if self._step():
                        break
                except Exception as e:  # a bug must not end the show: log, back off, go on
                    self._throttle.warn("loop", "pipeline error (continuing): %s", one_line(e))
                    self._stop.wait(self.config.hop_s)
        finally:
            self.message = "stopped" if self._stop.is_set() else f"finished: {self.source.name}"
            self.done.set()

    def _step(self) -> bool:
        """One pass: take a pending source swap, drain the ring, publish, sleep. True = finished."""
        self._take_pending_source()
        self.wakeups += 1
        src = self.source
        got = self._drain(src)
        now = time.monotonic()
        if got:
            if now - self._last_audio_wall > self.config.lost_after_s:
                self.message = f"running: {src.name}"  # input is back
            self._last_audio_wall = now
        elif src.finished and not getattr(src, "loop", False) and src.ring.available() == 0:
            for b in self.stream.flush():
                self._evaluate(b)
            return True
        elif now - self._last_audio_wall > self.config.lost_after_s:
            if now - self._last_emit_wall >= self.config.hop_s:
                self._emit_lost(now)
        self._sleep(got)
        return False

    def _take_pending_source(self) -> None:
        with self._lock:
            new, self._pending_source = self._pending_source, None
        if new is None:
            return
        old, self.source = self.source, new
        self._stop_source(old)
        self._reset_stream()
        self.message = f"running: {new.name}"

    def _sleep(self, got: int) -> None:
        if not self._live:
            if not got:
                self._stop.wait(0.002)  # the unpaced writer refills within microseconds
            return
        # Sleep until the ring holds the next boundary's audio: the write that completes it wakes
        # us (RingBuffer.wait_for), so a window is evaluated as soon as its last sample arrives,
        # whenever the audio server's burst brings it. With a resampler in between the frame count
        # is an estimate: an early wake-up only costs a pass. Block analysers (a beat must go out
        # the moment it is heard) wake us for every ~10 ms of audio. The timeout keeps the
        # lost-input check running when no audio comes at all.
        ring, st = self.source.ring, self.stream
        remaining = max(1, st.next_b - st.n_out)
        need = max(1, int(math.ceil(remaining * self.src_rate / self.model_rate)))
        if self.analysers:
            need = min(need, max(1, self.src_rate // 100))
        need = min(need, max(1, ring.capacity // 2))  # drain before a short ring could overflow
        ring.wait_for(ring.frames_written - ring.available() + need, self.config.hop_s)

    def _drain(self, src: Source) -> int:
        """Read everything new from the ring in hop-sized pieces; evaluate boundaries. Returns frames."""
        piece = max(1, int(math.ceil(self.hop * self.src_rate / self.model_rate)))
        total = 0
        pending: Boundary | None = None
        while not self._stop.is_set():
            self._arrivals.before_read()
            block = src.ring.read_new(piece)
            n = block.shape[0]
            if n == 0:
                break
            total += n
            mono, boundaries = self.stream.push(block)
            self.bad_samples += sum(b.bad for b in boundaries)
            if self.analysers:
                self._analyse(mono)
            for b in boundaries:
                if self._live:
                    if pending is not None:
                        self.hops_skipped += 1
                    pending = b
                else:
                    self._evaluate(b)
        if pending is not None:
            self._evaluate(pending)
        return total

    def _analyse(self, mono: np.ndarray) -> None:
        t_end, wall = self.stream.src_read / self.src_rate, time.monotonic()
        for a in self.analysers:
            try:
                events = a.process(mono, t_end, wall)
            except Exception as e:  # an analyser bug must not stop the emotion path
                name = type(a).__name__
                self._throttle.warn(("analyser", id(a)), "analyser %s failed: %s", name, one_line(e))
                continue
            # the gate's own word, from its first 2-s window: a song's first beats do not wait for
            # the emotion model's 6-s window (issue #31); sections and drops go out with it too
            music = self.latest is not None and self.latest.hears_music
            silent = self.latest is not None and self.latest.silent
            # a steady beat by itself (a drum intro, a TR-808 groove) sends beats, tempo and onsets
            # before, or without, the music gate; sections and drops wait for music
            beats_out = beats_go_out(music, bool(getattr(a, "rhythm", False)), silent)
            for ev in events:
                rule = self._value_rules.get(ev.kind)
                if rule is not None:  # a value that is no field of Estimate is left out, not a crash
                    self._values.update(kv for kv in rule(ev).items() if kv[0] in _ESTIMATE_FIELDS)
                if music or (beats_out and ev.kind in self._rhythm_kinds):  # talk or applause drive no lights
                    self.sinks.event(ev)

    # -- estimates ----------------------------------------------------------------------------
    def _evaluate(self, b: Boundary) -> None:
        dt = (b.end - self._last_eval) / self.model_rate if self._last_eval is not None else self.config.hop_s
        self._last_eval = b.end
        j = self.estimator.judge(b, bool(self.source.ok), dt)
        now = time.monotonic()
        latency_ms = max(0.0, (now - self._arrivals.written_at(b.end)) * 1000.0)
        self._latency_ms.append(latency_ms)
        self._t_last = b.end / self.model_rate
        self._publish(self._estimate(j, now, b.rms_db, b.peak_db, b.silent, b.clipping, bool(self.source.ok),
                                     b.bad, latency_ms))

    def _emit_lost(self, now: float) -> None:
        """No audio is arriving: publish a hold/drift estimate flagged input_ok=False."""
        dt = now - self._last_emit_wall
        self._t_last += dt
        src = self.source
        msg = getattr(src, "message", "")
        self.message = f"no input from {src.name}" + (f": {msg}" if msg else "")
        self._publish(self._estimate(self.estimator.idle(dt), now, SILENCE_DB, SILENCE_DB, True, False, False,
                                     0, 0.0))

    def _estimate(self, j: Judgement, now: float, rms: float, peak: float, silent: bool, clipping: bool,
                  input_ok: bool, bad: int, latency_ms: float) -> Estimate:
        src = self.source
        return Estimate(
            t=self._t_last, wall=now, arousal_raw=j.raw[0], valence_raw=j.raw[1], arousal=j.smooth[0],
            valence=j.smooth[1], level_rms_db=float(rms), level_peak_db=float(peak), silent=bool(silent),
            clipping=bool(clipping), input_ok=input_ok, bad_samples=int(bad), model_ms=j.model_ms,
            latency_ms=latency_ms, overflows=int(getattr(src, "overflows", 0)) + int(src.ring.frames_lost),
            hops_skipped=self.hops_skipped, music=j.music, music_prob=j.music_prob, music_heard=j.heard,
            **{**self._values, "bpm": self._live_bpm(j.heard, silent)},
        )

    def _live_bpm(self, music: bool, silent: bool) -> float:
        """The tempo, while beats go out (``beats_go_out``: music, or an analyser's rhythm gate open
        above the silence floor); else 0, so /mer/bpm stops with /mer/beat between songs (talk,
        applause, silence) instead of holding a stale one."""
        if beats_go_out(music, any(getattr(a, "rhythm", False) for a in self.analysers), silent):
            return self._values.get("bpm", 0.0)
        return 0.0

    def _publish(self, e: Estimate) -> None:
        self.latest = e
        self.hops += 1
        self._last_emit_wall = e.wall
        self.sinks.publish(e)
