"""One assembly: the parts ``mer-live`` and ``mer-analyze`` run, built from their configuration.

Why one place: the live app (model, music gate, teacher, source, OSC, analysers, outputs) used to
be built inside the CLI, and ``mer-analyze`` kept its own copies of model and presence loading, so
the benches and tests that wanted "what mer-live runs" imported the CLI. Here a ``Config`` becomes
a ``LiveApp`` (``build_live``), and ``mer-analyze`` loads its model and music gate with the same
``load_model`` and ``load_presence``; ``cli.py`` and ``analyze.py`` only parse, report and run.

Every failure a user can cause is a ``StartError``: one line and the exit code the CLI returns
(2 for a usage, config or model problem, 1 for a runtime one).
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mer_live import registry
from mer_live.registry import StartError

__all__ = ["StartError", "build_live", "live_parts", "load_model", "load_presence"]

log = logging.getLogger("mer_live")

PROG = "mer-live"
EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2

#: what mer-live and mer-analyze say when the shipped presence model is missing
PRESENCE_MISSING_LIVE = ("the music-presence model is not installed in this version: every sound counts as "
                         "music (pass [model] presence = PATH, or --no-music-gate to silence this)")
PRESENCE_MISSING_OFFLINE = ("the music-presence model is not installed in this version: every audible "
                            "window counts as music (--no-music-gate silences this)")


def notice(msg: str) -> None:
    """A one-line status message on stderr (and in the log file)."""
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)
    logging.getLogger("mer_live.cli").debug(msg, extra={"notice": True})


# ---- models (shared by mer-live and mer-analyze) -------------------------------------------------


def load_model(path: Path | None, provider: str = "auto", threads: int | None = None, input: str = "line",
               require_gpu: bool = False) -> Any:
    """The model for ``input`` ("line", or "room": the room model and its re-centring,
    ``mer_live.inference.roominput``); a ``ModelError`` says what to do when it cannot load."""
    from mer_live.inference.model import ModelError, default_model_path
    from mer_live.inference.roominput import load_for_input

    if path is None and input == "line":
        path = default_model_path()
        if not path.is_file():
            raise ModelError(f"no model: the default model {path.name} is not installed in this version "
                             "(pass --model PATH)")
    return load_for_input(input, path, provider=provider, threads=threads or None, require_gpu=require_gpu)


def load_presence(path: Path | None = None, missing: str = PRESENCE_MISSING_LIVE) -> Any | None:
    """The music-presence model (``path``, else the shipped one), or None with the warning
    ``missing`` when the shipped one is not installed (every audible window then counts as music).
    An explicit path that cannot be loaded raises ``ModelError``."""
    from mer_live.inference.presence import PresenceModel, default_presence_path

    if path is None and not default_presence_path().is_file():
        log.warning(missing)
        return None
    return PresenceModel(path, provider="cpu", threads=1)


# ---- the live app ---------------------------------------------------------------------------------


def live_model(cfg: Any) -> Any:
    """``[model]``'s model for ``[model] input``; a failure is a StartError with exit code 2."""
    from mer_live.inference.model import ModelError

    m = cfg.model
    try:
        return load_model(m.path, m.provider, m.threads or None, m.input, require_gpu=m.require_gpu)
    except ModelError as e:
        raise StartError(str(e), EXIT_USAGE) from None


def live_presence(cfg: Any) -> tuple[Any, Any]:
    """``(PresenceModel, MusicGate)`` for the music gate, or ``(None, None)`` without one.

    An explicit ``[model] presence`` path that cannot be loaded is an error (exit 2); a missing
    shipped model is a warning, and every audible window then counts as music."""
    if not cfg.model.music_gate:
        return None, None
    from mer_live.inference.model import ModelError
    from mer_live.inference.presence import MusicGate

    try:
        presence = load_presence(cfg.model.presence)
    except ModelError as e:
        raise StartError(f"music-presence model: {e}", EXIT_USAGE) from None
    return (presence, MusicGate()) if presence is not None else (None, None)


def load_teacher(cfg: Any, model: Any) -> Any:
    """A fused model's teacher on its own thread (``fusion.TeacherThread``), or None: a plain
    model, or ``--no-teacher``. A broken teacher file is an error (exit 2), like a broken model."""
    if not cfg.model.teacher:
        return None
    from mer_live.inference.fusion import Fusion, TeacherThread
    from mer_live.inference.model import ModelError

    try:
        fusion = Fusion.of(model)
    except ModelError as e:
        raise StartError(f"teacher model: {e}", EXIT_USAGE) from None
    if fusion is None:
        return None
    notice(f"teacher {fusion.name}: a {fusion.window_samples / model.sample_rate:.1f}-s patch every "
           f"{fusion.spec.live_every_s:g} s of music, fused at weight {fusion.w:g}, "
           f"on {fusion.active_provider}")
    return TeacherThread(fusion)


def _no_input_devices() -> bool:
    """True when PortAudio is missing or lists no input device at all (then the demo runs)."""
    from mer_live.sources.capture import DeviceError, list_devices

    try:
        return not list_devices()
    except DeviceError:
        return True


def source_factory(cfg: Any, model: Any, cancel: threading.Event) -> tuple[Callable[[Any], Any], Any]:
    """``(factory(spec) -> Source, initial spec)`` for the configured input.

    A file (``--input``) or the demo ignore the device spec; a device spec opens that device.
    With no device given and no input device at all, the demo runs (one-line notice).
    """
    from mer_live.common.framing import hop_samples
    from mer_live.sources.capture import DeviceSource
    from mer_live.sources.filesource import FileSource

    src = cfg.source
    if src.input is not None:
        path = Path(src.input)
        return (lambda _spec: FileSource(path, realtime=True, play=src.play, loop=src.loop)), str(path)
    demo = src.demo
    if not demo and cfg.capture.device is None and not cfg.capture.wait_for_device and _no_input_devices():
        notice("no input device found: running the bundled demo instead (see --list-devices)")
        demo = True
    if demo:
        from mer_live.sources.demo import demo_audio

        sr = model.sample_rate
        audio = demo_audio(sr)

        def open_demo(_spec: Any) -> Any:
            return FileSource(audio, sr, realtime=True, play=src.play, loop=True, name="demo")

        return open_demo, "demo"

    def open_device(spec: Any) -> Any:
        return DeviceSource(dataclasses.replace(cfg.capture, device=spec), cancel=cancel,
                            model_rate=model.sample_rate,
                            hop_frames=hop_samples(cfg.pipeline.hop_s, model.sample_rate))

    return open_device, cfg.capture.device


def make_osc(cfg: Any) -> Any:
    """The OSC sender for the [osc] section, or None with --no-osc (``outputs/osc.py``)."""
    return registry.output("osc").build(cfg)


def make_analysers(cfg: Any) -> tuple[list[Any], list[Any]]:
    """The block analysers their sections enable (``analysers/``, each after what it reads), and
    the sinks that feed them back the estimates they may use (an analyser's ``observe``: the
    section detector's arousal gate for drops)."""
    built: dict[str, Any] = {}
    for spec in registry.analysers_run_order():
        a = spec.build(getattr(cfg, spec.name), built)
        if a is not None:
            built[spec.name] = a
    analysers = list(built.values())
    return analysers, [a.observe for a in analysers if hasattr(a, "observe")]


def make_outputs(cfg: Any) -> list[Any]:
    """The outputs other than OSC that their sections enable (``outputs/``: the show record, DMX
    lighting, MIDI, Link), in registration order. OSC has its own slot in the app."""
    return [out for spec in registry.outputs() if spec.name != "osc" and (out := spec.build(cfg)) is not None]


def status_lines(cfg: Any, osc: Any, outputs: Sequence[Any]) -> list[str]:
    """The line each started output prints (``OutputSpec.status``, else its ``describe()``)."""
    lines = []
    if osc is not None:
        lines.append(registry.output("osc").status(osc, cfg))
    lines += [out.describe() for out in outputs if hasattr(out, "describe")]  # MIDI port, Link session
    return [line for line in lines if line]


@dataclass
class LiveParts:
    """Everything a ``LiveApp`` is made of, built but not yet joined: ``app()`` joins them (and
    opens the source, which may raise ``DeviceError``/``SourceError``: the CLI reports those)."""

    model: Any
    pipeline_config: Any
    source_factory: Callable[[Any], Any]
    device: Any
    osc: Any
    extra_sinks: list[Any]
    presence: Any
    gate: Any
    analysers: list[Any]
    outputs: list[Any]
    teacher: Any

    def app(self) -> Any:
        from mer_live.live.app import LiveApp

        return LiveApp(self.model, self.pipeline_config, self.source_factory, osc=self.osc,
                       device=self.device, extra_sinks=self.extra_sinks, presence=self.presence,
                       gate=self.gate, analysers=self.analysers, outputs=self.outputs, teacher=self.teacher)


def live_parts(cfg: Any, model: Any, cancel: threading.Event | None = None, extra_sinks: Sequence[Any] = (),
               source: tuple[Callable[[Any], Any], Any] | None = None) -> LiveParts:
    """The parts of the app mer-live runs for ``cfg``: the configured source (or ``source``:
    ``(factory, spec)``), OSC, the music gate, the teacher, the analysers and the outputs;
    ``extra_sinks`` (the terminal printer) get every estimate too. In this order, so that the
    notices and errors come as they always did."""
    factory, spec = source if source is not None else source_factory(cfg, model, cancel or threading.Event())
    osc = make_osc(cfg)
    pipeline_cfg = dataclasses.replace(cfg.pipeline, history_s=max(cfg.pipeline.history_s, cfg.gui.history_s))
    presence, gate = live_presence(cfg)
    teacher = load_teacher(cfg, model)
    analysers, hooks = make_analysers(cfg)
    outputs = make_outputs(cfg)
    outputs += [a for a in analysers if hasattr(a, "start")]  # bars: the estimates' music flag, reset port
    return LiveParts(model, pipeline_cfg, factory, spec, osc, [*hooks, *extra_sinks], presence, gate,
                     analysers, outputs, teacher)


def build_live(cfg: Any, model: Any, cancel: threading.Event | None = None, extra_sinks: Sequence[Any] = (),
               source: tuple[Callable[[Any], Any], Any] | None = None) -> Any:
    """The ``LiveApp`` mer-live runs for ``cfg``, not started (see ``live_parts``)."""
    return live_parts(cfg, model, cancel, extra_sinks, source).app()
