"""The live pipeline: source ring -> clean-up -> resample -> model -> smoothing -> Estimate -> sinks.

One thread does the whole data path (see docs/architecture.md)::

    read_new() -> sanitize (NaN/inf -> 0) -> pick/downmix -> gain -> DC blocker
    -> soxr.ResampleStream (source rate -> model rate, "HQ") -> model-rate history
    -> at every hop boundary: levels, silence, Model.predict, Smoother -> Estimate -> sinks

The hop schedule is sample-driven: a window is evaluated whenever the model-rate stream passes a
multiple of ``hop`` samples, and the window ends exactly there. ``frame_windows`` is the same
framing for a whole array, so a file pushed through an unpaced ``FileSource`` gives the same raw
values as ``mer-analyze`` (tested to 1e-4). Live (a paced source), when more than one boundary is
pending the pipeline evaluates only the newest and counts the rest in ``hops_skipped``.

Policies (documented choices):

* No estimate before the first full window (the first ``window`` seconds), except a source that
  ends sooner gets one zero-left-padded window, as in ``frame_windows``.
* Silent window (newest hop below ``silence_db`` for ``silence_s``) or lost input: the model is
  not run; the raw values hold the last trusted model output (0.5 before any) and the Smoother
  holds or drifts to neutral per ``on_silence``.
* No audio at all for ``lost_after_s`` (a stalled or vanished device): the pipeline keeps
  publishing an estimate every hop of wall time with ``input_ok=False``, so the lights can relax
  and OSC receivers see the input is gone.
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import soxr

from mer_live.estimate import Estimate
from mer_live.levels import (
    SILENCE_DB,
    DCBlocker,
    db_to_gain,
    is_clipping,
    peak_db,
    rms_db,
    sanitize,
    to_mono,
)
from mer_live.model import Model, ModelError
from mer_live.realtime import promote_or_warn
from mer_live.ringbuffer import RingBuffer
from mer_live.smoothing import ON_SILENCE, Smoother

log = logging.getLogger(__name__)

Sink = Callable[[Estimate], None]
RESAMPLE_QUALITY = "HQ"


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


@dataclass
class PipelineConfig:
    """Live pipeline settings; ``validate()`` at the edge (CLI, config file, GUI)."""

    hop_s: float = 0.1  #: seconds between estimates
    gain_db: float = 0.0  #: input gain before everything else (levels, silence, model)
    pick: tuple[int, ...] | None = None  #: 1-based input channels to mix; None = all
    attack_s: float = 0.3  #: smoothing time constant for rising values
    release_s: float = 1.0  #: smoothing time constant for falling values
    silence_db: float = -60.0  #: RMS (dBFS) below which a hop counts as quiet
    silence_s: float = 0.5  #: how long quiet before the input is "silent"
    on_silence: str = "hold"  #: "hold" the values or drift to "neutral" (0.5) when silent/lost
    neutral_s: float = 4.0  #: time constant of the drift to neutral
    clip_db: float = -0.1  #: peak (dBFS) at or above which the input counts as clipping
    history_s: float = 120.0  #: how many seconds of estimates the LiveApp keeps for plots
    dc_cutoff_hz: float = 10.0  #: DC blocker cut-off; 0 disables it
    lost_after_s: float = 0.5  #: no audio for this long -> estimates with input_ok=False
    #: run the pipeline thread with real-time scheduling (SCHED_FIFO) when the OS allows it, so a
    #: machine loaded by visuals does not delay the hop boundaries (``mer_live.realtime``)
    realtime: bool = False

    def validate(self) -> PipelineConfig:
        """Raise ValueError (one line) for the first bad setting; return self for chaining."""

        def num(name: str, lo: float, hi: float) -> None:
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                raise ValueError(f"{name} must be a number, got {v!r}")
            if not lo <= v <= hi:
                raise ValueError(f"{name} must be in [{lo}, {hi}], got {v}")

        num("hop_s", 0.01, 10.0)
        if not isinstance(self.realtime, bool):
            raise ValueError(f"realtime must be true or false, got {self.realtime!r}")
        num("gain_db", -60.0, 60.0)
        num("attack_s", 0.0, 600.0)
        num("release_s", 0.0, 600.0)
        num("silence_db", -200.0, 0.0)
        num("silence_s", 0.0, 3600.0)
        num("neutral_s", 0.0, 3600.0)
        num("clip_db", -60.0, 0.0)
        num("history_s", 1.0, 24 * 3600.0)
        num("dc_cutoff_hz", 0.0, 200.0)
        num("lost_after_s", 0.05, 60.0)
        if self.on_silence not in ON_SILENCE:
            raise ValueError(f"on_silence must be one of {', '.join(ON_SILENCE)}, got {self.on_silence!r}")
        if self.pick is not None:
            p = tuple(self.pick)
            if not p or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in p):
                raise ValueError(f"pick must be 1-based channel numbers (e.g. 1,2), got {self.pick!r}")
            if len(set(p)) != len(p):
                raise ValueError(f"pick lists a channel twice: {self.pick!r}")
            self.pick = p
        return self


def hop_samples(hop_s: float, samplerate: int) -> int:
    """Hop length in samples at ``samplerate`` (at least 1)."""
    return max(1, int(round(hop_s * samplerate)))


def frame_windows(audio: np.ndarray, window: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame model-rate mono audio the way the live pipeline does: windows ending at k * hop.

    Returns ``(ends, windows)``: ``ends`` are the end positions in samples (int64; divide by the
    model rate for seconds), one per window, for every ``k * hop`` with ``window <= k * hop <=
    len(audio)``; ``windows`` is a read-only strided VIEW ``[n, window]`` (no copy: an hour of
    audio would not fit in memory as copies; slice it into batches for ``Model.predict``).
    Audio shorter than one window gives a single window, zero-padded on the left, ending at
    ``len(audio)``; empty audio gives no windows.
    """
    x = np.ascontiguousarray(np.asarray(audio, dtype=np.float32).reshape(-1))
    if window < 1 or hop < 1:
        raise ValueError("window and hop must be >= 1")
    n = x.shape[0]
    if n == 0:
        return np.zeros(0, np.int64), np.zeros((0, window), np.float32)
    if n < window:
        w = np.zeros((1, window), np.float32)
        w[0, window - n :] = x
        return np.array([n], np.int64), w
    k0 = -(-window // hop)  # first k with k * hop >= window
    k1 = n // hop
    if k1 < k0:  # no hop boundary between window and n: the one full window ending at n
        return np.array([n], np.int64), x[None, n - window :]
    ends = np.arange(k0, k1 + 1, dtype=np.int64) * hop
    start0 = int(ends[0]) - window
    view = np.lib.stride_tricks.as_strided(
        x[start0:], shape=(ends.shape[0], window), strides=(hop * x.strides[0], x.strides[0]), writeable=False
    )
    return ends, view


def prepare_offline(
    audio: np.ndarray, samplerate: int, model_rate: int, config: PipelineConfig
) -> np.ndarray:
    """The pipeline's clean-up chain on a whole array: the model-rate mono audio it would see.

    ``audio`` is ``[frames]`` or ``[frames, channels]``. Applies sanitize, pick/downmix, gain, DC
    blocker and ``soxr.resample`` (HQ) in the same order as the live path, so offline analysis
    and the pipeline agree (the streaming resampler equals ``soxr.resample`` exactly).
    """
    x, _ = sanitize(audio)
    mono = to_mono(x, config.pick) * np.float32(db_to_gain(config.gain_db))
    if config.dc_cutoff_hz > 0:
        mono = DCBlocker(samplerate, config.dc_cutoff_hz).process(mono)
    if samplerate == model_rate:
        return np.ascontiguousarray(mono, dtype=np.float32)
    y = soxr.resample(mono, samplerate, model_rate, quality=RESAMPLE_QUALITY)
    return y.astype(np.float32, copy=False)


def _one_line(e: BaseException) -> str:
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__


class _Throttled:
    """Log a warning at most once per ``interval`` seconds per key (a failing sink at 10 Hz)."""

    def __init__(self, interval: float = 5.0) -> None:
        self.interval = interval
        self._last: dict[Any, float] = {}
        self.suppressed: dict[Any, int] = {}

    def warn(self, key: Any, msg: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -1e9) >= self.interval:
            n = self.suppressed.pop(key, 0)
            log.warning(msg + (f" (+{n} more)" if n else ""), *args)
            self._last[key] = now
        else:
            self.suppressed[key] = self.suppressed.get(key, 0) + 1


@dataclass
class _Pending:
    """A hop boundary whose window waits to be evaluated."""

    end: int  #: model-rate sample index (since the source started) of the window's last sample + 1
    window: np.ndarray
    rms_db: float
    peak_db: float
    silent: bool
    clipping: bool
    bad: int


class Pipeline:
    """Runs the data path on its own thread; owns its source's start/stop.

    ``start()`` starts the source then the thread; ``stop()`` stops both (idempotent, < 1 s).
    ``done`` is set when the thread ends: after ``stop()``, or by itself once a non-looping file
    source is finished and all its audio is processed. A Pipeline can be started again after
    it ended (its source restarts too).
    """

    def __init__(
        self,
        source: Source,
        model: Model,
        config: PipelineConfig | None = None,
        sinks: list[Sink] | tuple[Sink, ...] = (),
    ) -> None:
        self.config = (config or PipelineConfig()).validate()
        self.model = model
        self.source = source
        self._check_pick(source)
        self.model_rate = int(model.sample_rate)
        self.window = int(model.window_samples)
        self.hop = hop_samples(self.config.hop_s, self.model_rate)
        self._sinks: list[Sink] = list(sinks)
        self.smoother = Smoother(
            self.config.attack_s, self.config.release_s, self.config.on_silence, self.config.neutral_s
        )
        self.latest: Estimate | None = None
        self.done = threading.Event()
        self.done.set()  # not running yet
        self.message = "not started"
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pending_source: Source | None = None
        self._throttle = _Throttled()
        self._model_ms: deque[float] = deque(maxlen=600)
        self._latency_ms: deque[float] = deque(maxlen=600)
        self.hops = 0
        self.hops_skipped = 0
        self.sink_errors = 0
        self.model_errors = 0
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
                try:
                    s.stop()
                except Exception as e:
                    log.warning("stopping source %s failed: %s", getattr(s, "name", "?"), _one_line(e))

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the pipeline thread ends; True when it has (or never started)."""
        return self.done.wait(timeout)

    def add_sink(self, sink: Sink) -> None:
        """Add a sink (thread-safe; it sees the next estimate)."""
        with self._lock:
            self._sinks = [*self._sinks, sink]

    def remove_sink(self, sink: Sink) -> None:
        with self._lock:
            self._sinks = [s for s in self._sinks if s is not sink]

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
                try:
                    old.stop()
                except Exception as e:
                    log.warning("stopping source %s failed: %s", getattr(old, "name", "?"), _one_line(e))
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
        mm = np.array(self._model_ms) if self._model_ms else np.zeros(0)
        lat = np.array(self._latency_ms) if self._latency_ms else np.zeros(0)
        src = self.source
        return {
            "hops": self.hops,
            "hops_skipped": self.hops_skipped,
            "model_ms_median": float(np.median(mm)) if mm.size else math.nan,
            "model_ms_p99": float(np.percentile(mm, 99)) if mm.size else math.nan,
            "latency_ms_median": float(np.median(lat)) if lat.size else math.nan,
            "latency_ms_p99": float(np.percentile(lat, 99)) if lat.size else math.nan,
            "latency_ms_last": float(lat[-1]) if lat.size else math.nan,
            "sink_errors": self.sink_errors,
            "model_errors": self.model_errors,
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

    def _reset_stream(self) -> None:
        """Fresh resampler, DC blocker, history and hop clock for the current source."""
        src = self.source
        self.src_rate = int(src.samplerate)
        self._resampler = (
            soxr.ResampleStream(self.src_rate, self.model_rate, 1, dtype="float32", quality=RESAMPLE_QUALITY)
            if self.src_rate != self.model_rate
            else None
        )
        cfg = self.config
        self._dc = DCBlocker(self.src_rate, cfg.dc_cutoff_hz) if cfg.dc_cutoff_hz > 0 else None
        self._gain = np.float32(db_to_gain(cfg.gain_db))
        self._history = RingBuffer(self.window + self.hop, 1)
        self._n_out = 0  # model-rate samples produced since the source started
        self._src_read = 0  # source frames consumed
        self._next_b = -(-self.window // self.hop) * self.hop  # first boundary with a full window
        self._last_eval: int | None = None  # model-rate end of the last evaluated window
        self._quiet_since: int | None = None
        self._clip = False
        self._bad = 0
        self._evaluated_any = False
        self._last_raw = np.full(2, 0.5)
        self._read_log: deque[tuple[int, float]] = deque(maxlen=512)
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
                    self._throttle.warn("loop", "pipeline error (continuing): %s", _one_line(e))
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
            self._finish()
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
        try:
            old.stop()
        except Exception as e:
            log.warning("stopping source %s failed: %s", getattr(old, "name", "?"), _one_line(e))
        self._reset_stream()
        self.message = f"running: {new.name}"

    def _sleep(self, got: int) -> None:
        if not self._live:
            if not got:
                self._stop.wait(0.002)  # the unpaced writer refills within microseconds
            return
        # Sleep until the ring holds the next boundary's audio: the write that completes it wakes
        # us (RingBuffer.wait_for), so a window is evaluated as soon as its last sample arrives,
        # whenever the audio server's burst brings it. A wall-clock guess of that moment missed it
        # by up to a burst (PulseAudio delivers ~20 ms at once). With a resampler in between the
        # frame count is an estimate: an early wake-up only costs a pass. The timeout keeps the
        # lost-input check running when no audio comes at all.
        ring = self.source.ring
        remaining = max(1, self._next_b - self._n_out)
        need = max(1, int(math.ceil(remaining * self.src_rate / self.model_rate)))
        need = min(need, max(1, ring.capacity // 2))  # drain before a short ring could overflow
        ring.wait_for(ring.frames_written - ring.available() + need, self.config.hop_s)

    def _drain(self, src: Source) -> int:
        """Read everything new from the ring in hop-sized pieces; evaluate boundaries. Returns frames."""
        piece = max(1, int(math.ceil(self.hop * self.src_rate / self.model_rate)))
        total = 0
        pending: _Pending | None = None
        own_log = getattr(src, "write_log", None) is None
        while not self._stop.is_set():
            if own_log:  # the source does not log its writes: our read time bounds them
                self._read_log.append((src.ring.frames_written, time.monotonic()))
            block = src.ring.read_new(piece)
            n = block.shape[0]
            if n == 0:
                break
            total += n
            self._src_read += n
            for p in self._process(block):
                if self._live:
                    if pending is not None:
                        self.hops_skipped += 1
                    pending = p
                else:
                    self._evaluate(p)
        if pending is not None:
            self._evaluate(pending)
        return total

    def _process(self, block: np.ndarray) -> list[_Pending]:
        """Clean up one source block, resample it, and cut it at hop boundaries."""
        x, n_bad = sanitize(block)
        self._bad += n_bad
        self.bad_samples += n_bad
        pick = self.config.pick
        picked = x if pick is None else x[:, [c - 1 for c in pick]]
        if is_clipping(picked * self._gain if self._gain != 1 else picked, self.config.clip_db):
            self._clip = True
        mono = to_mono(picked, None)
        if self._gain != 1:
            mono = mono * self._gain
        if self._dc is not None:
            mono = self._dc.process(mono)
        y = self._resampler.resample_chunk(mono, last=False) if self._resampler else mono
        return self._append(np.asarray(y, dtype=np.float32))

    def _append(self, y: np.ndarray) -> list[_Pending]:
        out: list[_Pending] = []
        pos = 0
        while self._n_out + (y.shape[0] - pos) >= self._next_b:
            take = self._next_b - self._n_out
            self._history.write(y[pos : pos + take])
            pos += take
            self._n_out = self._next_b
            out.append(self._boundary(self._next_b))
            self._next_b += self.hop
        if pos < y.shape[0]:
            self._history.write(y[pos:])
            self._n_out += y.shape[0] - pos
        return out

    def _boundary(self, b: int) -> _Pending:
        """Levels and silence at boundary ``b``; takes the accumulated clip/bad flags."""
        newest = self._history.latest(self.hop)[:, 0]
        lvl = rms_db(newest)
        if lvl < self.config.silence_db:
            if self._quiet_since is None:
                self._quiet_since = b - self.hop
        else:
            self._quiet_since = None
        quiet_for = b - self._quiet_since if self._quiet_since is not None else -1
        silent = quiet_for >= 0 and quiet_for >= self.config.silence_s * self.model_rate
        p = _Pending(
            end=b,
            window=self._history.latest(self.window)[:, 0],
            rms_db=lvl,
            peak_db=peak_db(newest),
            silent=silent,
            clipping=self._clip,
            bad=self._bad,
        )
        self._clip = False
        self._bad = 0
        return p

    def _finish(self) -> None:
        """End of a non-looping source: flush the resampler, evaluate what is left."""
        if self._resampler is not None:
            y = self._resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            for p in self._append(np.asarray(y, dtype=np.float32)):
                self._evaluate(p)
        if not self._evaluated_any and self._n_out > 0:
            # Shorter than one window: one zero-left-padded window, as frame_windows does.
            n = self._n_out
            w = np.zeros(self.window, np.float32)
            w[self.window - n :] = self._history.latest(n)[:, 0]
            newest = w[-min(self.hop, n) :]
            lvl = rms_db(newest)
            self._evaluate(
                _Pending(
                    end=n,
                    window=w,
                    rms_db=lvl,
                    peak_db=peak_db(newest),
                    silent=lvl < self.config.silence_db and n >= self.config.silence_s * self.model_rate,
                    clipping=self._clip,
                    bad=self._bad,
                )
            )

    # -- estimates ----------------------------------------------------------------------------
    def _evaluate(self, p: _Pending) -> None:
        src = self.source
        input_ok = bool(src.ok)
        trusted = input_ok and not p.silent
        model_ms = 0.0
        if trusted:
            t0 = time.perf_counter()
            try:
                av = self.model.predict(p.window[None, :])[0].astype(np.float64)
            except ModelError as e:
                self.model_errors += 1
                self._throttle.warn("model", "%s (holding values)", _one_line(e))
                av = None
            model_ms = (time.perf_counter() - t0) * 1000.0
            self._model_ms.append(model_ms)
            if av is None or not np.all(np.isfinite(av)):
                if av is not None:
                    self.model_errors += 1
                    self._throttle.warn("model-nan", "model returned non-finite values (holding values)")
                trusted = False
            else:
                self._last_raw = np.clip(av, 0.0, 1.0)
        dt = (p.end - self._last_eval) / self.model_rate if self._last_eval is not None else self.config.hop_s
        self._last_eval = p.end
        self._evaluated_any = True
        smooth = self.smoother.update(self._last_raw, dt, silent=not trusted)
        now = time.monotonic()
        latency_ms = max(0.0, (now - self._written_at(p.end)) * 1000.0)
        self._latency_ms.append(latency_ms)
        t = p.end / self.model_rate
        self._t_last = t
        self._publish(
            Estimate(
                t=t,
                wall=now,
                arousal_raw=float(self._last_raw[0]),
                valence_raw=float(self._last_raw[1]),
                arousal=float(smooth[0]),
                valence=float(smooth[1]),
                level_rms_db=float(p.rms_db),
                level_peak_db=float(p.peak_db),
                silent=bool(p.silent),
                clipping=bool(p.clipping),
                input_ok=input_ok,
                bad_samples=int(p.bad),
                model_ms=model_ms,
                latency_ms=latency_ms,
                overflows=int(getattr(src, "overflows", 0)) + int(src.ring.frames_lost),
                hops_skipped=self.hops_skipped,
            )
        )

    def _written_at(self, end: int) -> float:
        """When the source frame holding model sample ``end - 1`` reached the ring (monotonic).

        Uses the source's ``write_log`` (FileSource records every write) or, for sources without
        one, the pipeline's own read times (an upper bound on the write time).
        """
        need = int(math.floor((end - 1) * self.src_rate / self.model_rate)) + 1  # frames written
        log = getattr(self.source, "write_log", None)
        entries = list(log) if log is not None else list(self._read_log)
        if not entries:
            return time.monotonic()
        i = bisect.bisect_left(entries, (need, -math.inf))
        if i < len(entries):
            return entries[i][1]
        frames, wall = entries[-1]  # newer than anything logged (cannot happen): extrapolate
        return wall + (need - frames) / self.src_rate

    def _emit_lost(self, now: float) -> None:
        """No audio is arriving: publish a hold/drift estimate flagged input_ok=False."""
        dt = now - self._last_emit_wall
        smooth = self.smoother.update(self._last_raw, dt, silent=True)
        self._t_last += dt
        src = self.source
        msg = getattr(src, "message", "")
        self.message = f"no input from {src.name}" + (f": {msg}" if msg else "")
        self._publish(
            Estimate(
                t=self._t_last,
                wall=now,
                arousal_raw=float(self._last_raw[0]),
                valence_raw=float(self._last_raw[1]),
                arousal=float(smooth[0]),
                valence=float(smooth[1]),
                level_rms_db=SILENCE_DB,
                level_peak_db=SILENCE_DB,
                silent=True,
                clipping=False,
                input_ok=False,
                bad_samples=0,
                model_ms=0.0,
                latency_ms=0.0,
                overflows=int(getattr(src, "overflows", 0)) + int(src.ring.frames_lost),
                hops_skipped=self.hops_skipped,
            )
        )

    def _publish(self, e: Estimate) -> None:
        self.latest = e
        self.hops += 1
        self._last_emit_wall = e.wall
        for sink in self._sinks:
            try:
                sink(e)
            except Exception as ex:
                self.sink_errors += 1
                name = getattr(sink, "__name__", type(sink).__name__)
                self._throttle.warn(("sink", id(sink)), "sink %s failed: %s", name, _one_line(ex))
