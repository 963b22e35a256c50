"""``LiveApp``: everything one live run needs, behind one object the CLI and the dashboard drive.

The GUI never touches pipeline internals: it calls ``start/stop/switch_device/set_smoothing/
set_osc_targets``, reads ``history.snapshot()`` and ``history.events()`` on its timer and
``status()`` for the status bar.
Data still flows one way: source -> pipeline -> sinks (History, OSC sender, extra sinks).
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from mer_live.inference.model import Model
from mer_live.live.pipeline import Pipeline, PipelineConfig, Source
from mer_live.live.records import Estimate, Event
from mer_live.live.sinks import Sink
from mer_live.live.stopping import Part, part_name, started_threads, stop_parts

log = logging.getLogger(__name__)


class History:
    """A sink keeping the last ``seconds`` of estimates and events (by wall clock) for plots; thread-safe.

    Events (beats, sections, drops) are kept too, so the window reads them on its own timer like the
    estimates: the pipeline thread only appends under a short lock and never waits for the GUI.
    """

    MAX_EVENTS = 4096  #: a bound even for a flood of onsets

    def __init__(self, seconds: float = 120.0) -> None:
        if not seconds > 0:
            raise ValueError(f"history seconds must be > 0, got {seconds!r}")
        self.seconds = float(seconds)
        self._d: deque[Estimate] = deque()
        self._ev: deque[Event] = deque(maxlen=self.MAX_EVENTS)
        self._lock = threading.Lock()

    def __call__(self, e: Estimate) -> None:
        with self._lock:
            self._d.append(e)
            cutoff = e.wall - self.seconds
            while self._d and self._d[0].wall < cutoff:
                self._d.popleft()

    def event(self, ev: Event) -> None:
        """Keep an analyser's event (called on the pipeline thread, like ``__call__``)."""
        with self._lock:
            self._ev.append(ev)
            cutoff = ev.wall - self.seconds
            while self._ev and self._ev[0].wall < cutoff:
                self._ev.popleft()

    def events(self) -> list[Event]:
        """A copy of the kept events, oldest first (safe to use from any thread)."""
        with self._lock:
            return list(self._ev)

    def __len__(self) -> int:
        return len(self._d)

    def snapshot(self) -> list[Estimate]:
        """A copy of the kept estimates, oldest first (safe to use from any thread)."""
        with self._lock:
            return list(self._d)

    def clear(self) -> None:
        with self._lock:
            self._d.clear()
            self._ev.clear()


class LiveApp:
    """One live run: model, source (made by ``source_factory``), pipeline, history, OSC sender.

    ``source_factory(spec)`` opens an input for a device spec (name, index or None = default,
    or whatever the CLI maps to a file); it may raise with a one-line message. The ``osc``
    object is duck-typed: a sink callable with ``start()``, ``stop()``, ``set_targets(list)``,
    ``stats() -> dict``.
    """

    def __init__(
        self,
        model: Model,
        pipeline_config: PipelineConfig,
        source_factory: Callable[[str | int | None], Source],
        osc: Any | None = None,
        device: str | int | None = None,
        extra_sinks: Iterable[Sink] = (),
        presence: Any | None = None,
        gate: Any | None = None,
        analysers: Iterable[Any] = (),
        outputs: Iterable[Any] = (),
        teacher: Any | None = None,
    ) -> None:
        self.model = model
        self.config = pipeline_config.validate()
        self.source_factory = source_factory
        self.osc = osc
        self.device = device
        self.history = History(self.config.history_s)
        self.source: Source = source_factory(device)
        sinks: list[Sink] = [self.history]
        if osc is not None:
            sinks.append(osc)
        sinks.extend(extra_sinks)
        self.outputs = list(outputs)  #: sinks with start()/stop(): the show record, DMX lighting
        sinks.extend(self.outputs)
        self.pipeline = Pipeline(self.source, model, self.config, sinks, presence=presence, gate=gate,
                                 analysers=analysers, teacher=teacher)
        self._lock = threading.Lock()
        self._stopped = False
        self._threads: dict[int, tuple[threading.Thread, ...]] = {}  #: id(output) -> threads its start made
        self.abandoned: list[str] = []  #: what the last stop() had to abandon (see mer_live.live.stopping)

    @property
    def source_name(self) -> str:
        return self.source.name

    @property
    def running(self) -> bool:
        return self.pipeline.running

    @property
    def done(self) -> threading.Event:
        """Set when the pipeline ends (stopped, or a non-looping file finished)."""
        return self.pipeline.done

    def start(self) -> None:
        """Start the OSC sender, then the source and pipeline. Errors propagate (one line)."""
        with self._lock:
            self._stopped = False
            started: list[Any] = []
            try:
                for out in [self.osc, *self.outputs]:
                    if out is not None:
                        self._threads[id(out)] = started_threads(out.start)
                        started.append(out)
                self.pipeline.start()
            except BaseException:
                stop_parts([self._part(out) for out in started], self.OUTPUTS_DEADLINE_S)
                raise

    #: seconds the pipeline (its thread and the source) may take to stop, then the outputs (all at
    #: once: blackout, last rows, sockets closed): 1.7 s in all, whatever a library does
    PIPELINE_DEADLINE_S = 0.7
    OUTPUTS_DEADLINE_S = 1.0

    def stop(self, also: Iterable[Any] = ()) -> list[str]:
        """Stop the pipeline and source, then OSC, the outputs and ``also`` (the terminal printer)
        at once, each within its deadline; idempotent. Returns (and keeps in ``abandoned``) what did
        not stop in time: the caller says so in one line and exits anyway."""
        extra = [Part(part_name(o), o.stop) for o in also]
        with self._lock:
            if self._stopped:
                return self.abandoned + stop_parts(extra, self.OUTPUTS_DEADLINE_S)
            self._stopped = True
            pipe = Part("pipeline", lambda: self.pipeline.stop(timeout=0.8 * self.PIPELINE_DEADLINE_S))
            abandoned = stop_parts([pipe], self.PIPELINE_DEADLINE_S)
            outs = [self._part(out) for out in [self.osc, *self.outputs] if out is not None]
            abandoned += stop_parts(outs + extra, self.OUTPUTS_DEADLINE_S)
            self.abandoned = abandoned
            return list(abandoned)

    def _part(self, out: Any) -> Part:
        return Part(part_name(out), out.stop, self._threads.pop(id(out), ()))

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the pipeline ends (a file finished); True when it has."""
        return self.pipeline.join(timeout)

    def switch_device(self, spec: str | int | None) -> None:
        """Re-open the input for ``spec`` and swap it in. On failure the old input keeps running
        and the error propagates (show its message)."""
        new = self.source_factory(spec)
        try:
            self.pipeline.set_source(new)
        except BaseException:
            try:
                new.stop()
            except Exception:
                pass
            raise
        self.source = new
        self.device = spec

    def set_smoothing(self, attack_s: float, release_s: float) -> None:
        self.pipeline.set_smoothing(attack_s, release_s)

    def set_osc_targets(self, targets: list[str]) -> None:
        """Replace the OSC targets ("host:port" strings); no-op without an OSC sender."""
        if self.osc is not None:
            self.osc.set_targets(list(targets))

    def status(self) -> dict[str, Any]:
        """Everything the status bar shows, as plain values (NaN where not known yet)."""
        st = self.pipeline.stats
        latest = self.pipeline.latest
        src = self.source
        d: dict[str, Any] = {
            "device": self.device,
            "source": src.name,
            "samplerate": int(src.samplerate),
            "channels": int(src.channels),
            "input_ok": bool(src.ok),
            "model": self.model.card.name,
            "model_rate": self.model.sample_rate,
            "provider": self.model.active_provider,
            "model_ms": st["model_ms_median"],
            "model_ms_p99": st["model_ms_p99"],
            "latency_ms": latest.latency_ms if latest is not None else math.nan,
            "latency_ms_median": st["latency_ms_median"],
            "overflows": int(getattr(src, "overflows", 0)) + int(src.ring.frames_lost),
            "hops": st["hops"],
            "hops_skipped": st["hops_skipped"],
            "sink_errors": st["sink_errors"],
            "running": self.running,
            "message": getattr(src, "message", "") or st["message"],
            "osc_targets": [],
            "osc_rate_hz": math.nan,
        }
        if self.osc is not None and hasattr(self.osc, "stats"):
            try:
                o = dict(self.osc.stats())
            except Exception as e:
                o = {"error": str(e)}
            d["osc"] = o
            d["osc_targets"] = list(o.get("targets", []))
            d["osc_rate_hz"] = o.get("rate_hz", o.get("send_rate_hz", math.nan))
        return d
