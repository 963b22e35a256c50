"""``mer-live``: listen, estimate arousal/valence every hop, send OSC, show the dashboard.

Startup order matters on stage: parse and validate the whole config first, then load the model
(a bad model fails in one line, exit 2, before any audio device opens), then open the source,
start OSC, then the window (or the terminal printer when headless). SIGINT/SIGTERM stop everything
within 2 s with exit code 0, whatever a library does (``mer_live.stopping``: what did not stop is
named in one warning line and abandoned). Every user-facing error is one line
``mer-live: error: ...`` and a non-zero exit code; tracebacks only with ``-vv``.

Exit codes: 0 ok (stopped by signal, --duration or a finished file), 1 runtime error (device,
file, unexpected), 2 usage, config or model error.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from mer_live import __version__

log = logging.getLogger("mer_live")

PROG = "mer-live"
EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A one-line user-facing error with its exit code."""

    def __init__(self, message: str, code: int = EXIT_RUNTIME) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line, no usage block: errors must be readable in a log and on a small screen."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from mer_live.osc import OscConfig
    from mer_live.pipeline import PipelineConfig

    pd, od = PipelineConfig(), OscConfig()  # --help shows their defaults, never a copy of them
    p = _Parser(
        prog=PROG,
        description="Real-time music emotion recognition: arousal and valence of the input, "
        "sent over OSC and shown in a window. Flags override the --config file.",
    )
    S = argparse.SUPPRESS  # noqa: N806 - flags not given do not override the config file
    a = p.add_argument_group("input")
    a.add_argument("--device", default=S, metavar="DEV", help="input device: index or part of its name")
    a.add_argument("--list-devices", action="store_true", help="list input devices and exit")
    a.add_argument("--samplerate", type=int, default=S, metavar="HZ", help="device sample rate")
    a.add_argument("--blocksize", type=int, default=S, metavar="N",
                   help="frames per callback (0: automatic: blocks of at most 20 ms that divide the hop; "
                   "128 frames with --low-latency)")
    a.add_argument("--channels", type=int, default=S, metavar="N", help="channels to open")
    a.add_argument("--pick", default=S, metavar="1,2", help="1-based channels to mix (default: all)")
    a.add_argument("--gain-db", type=float, default=S, metavar="DB", help="input gain in dB")
    a.add_argument("--wait-for-device", action="store_const", const=True, default=S,
                   help="wait for a missing device instead of failing")
    a.add_argument("--low-latency", action="store_const", const=True, default=S,
                   help="the model's rate if the device takes it (no resampling), blocks dividing the hop")
    a.add_argument("--realtime", action="store_const", const=True, default=S,
                   help="real-time scheduling (SCHED_FIFO) for the pipeline and OSC threads if allowed")
    a.add_argument("--input", default=S, metavar="FILE", help="rehearse with an audio file, in real time")
    a.add_argument("--play", action="store_const", const=True, default=S, help="also play --input aloud")
    a.add_argument("--loop", action="store_const", const=True, default=S, help="loop --input")
    a.add_argument("--demo", action="store_const", const=True, default=S, help="run on the bundled demo")
    e = p.add_argument_group("estimation")
    e.add_argument("--hop", type=float, default=S, metavar="S",
                   help=f"seconds between estimates (default {pd.hop_s:g})")
    e.add_argument("--attack", type=float, default=S, metavar="S",
                   help=f"smoothing time for rising values (default {pd.attack_s:g})")
    e.add_argument("--release", type=float, default=S, metavar="S",
                   help=f"smoothing time for falling values (default {pd.release_s:g})")
    e.add_argument("--on-silence", choices=("hold", "neutral"), default=S, help="on silence: hold or drift")
    e.add_argument("--model", default=S, metavar="PATH", help="ONNX model (default: the shipped one)")
    e.add_argument("--provider", choices=("auto", "cuda", "cpu"), default=S, help="execution provider")
    e.add_argument("--require-gpu", action="store_const", const=True, default=S, help="fail unless CUDA runs")
    e.add_argument("--threads", type=int, default=S, metavar="N", help="onnxruntime threads (0: all)")
    e.add_argument("--no-teacher", action="store_const", const=True, default=S,
                   help="a fused model's CNN alone, without its pretrained teacher (less CPU)")
    e.add_argument("--room", action="store_const", const="room", default=S,
                   help="the input is a laptop or room microphone in front of the PA, not a desk feed: "
                   "the room model and its re-centring (docs/room.md)")
    e.add_argument("--no-music-gate", action="store_const", const=True, default=S,
                   help="estimate emotion for every sound, not only music (test tones, sound checks)")
    o = p.add_argument_group("OSC")
    o.add_argument("--osc", action="append", default=S, metavar="HOST:PORT",
                   help="send to HOST:PORT (repeatable; default 127.0.0.1:9000)")
    o.add_argument("--osc-prefix", default=S, metavar="/mer", help="address prefix")
    o.add_argument("--osc-rate", type=float, default=S, metavar="HZ",
                   help=f"sends per second (default {od.rate_hz:g})")
    o.add_argument("--range", choices=("01", "pm1"), default=S, help="values on the wire: 0..1 or -1..1")
    o.add_argument("--bundle", action="store_const", const=True, default=S, help="one OSC bundle per tick")
    o.add_argument("--osc-fixed-rate", action="store_const", const=True, default=S,
                   help="send only on the fixed tick (default: each new estimate at once, then the tick)")
    o.add_argument("--broadcast", action="store_const", const=True, default=S, help="allow broadcast targets")
    o.add_argument("--no-osc", action="store_const", const=True, default=S, help="do not send OSC")
    g = p.add_argument_group("display and run")
    g.add_argument("--headless", action="store_const", const=True, default=S, help="no window: print values")
    g.add_argument("--duration", type=float, default=S, metavar="S", help="stop after S seconds")
    g.add_argument("--reset-window", action="store_true",
                   help="forget the window's remembered size, position and fullscreen state first")
    g.add_argument("--record", default=S, metavar="FILE",
                   help="append one row per estimate to FILE (.csv or .jsonl): a record of the show")
    g.add_argument("--no-beat", action="store_const", const=True, default=S,
                   help="no beat, tempo or onset tracking (/mer/beat, /mer/bpm, /mer/onset)")
    g.add_argument("--no-sections", action="store_const", const=True, default=S,
                   help="no section-change or drop detection (/mer/section, /mer/drop)")
    t = p.add_argument_group("tempo sync")
    t.add_argument("--midi", default=S, metavar="PORT",
                   help="MIDI out: beat clock, CCs, notes ([midi]); PORT: an output's index or name, "
                   "or 'virtual' for a port of mer-live's own (needs the [midi] extra)")
    t.add_argument("--list-midi", action="store_true", help="list MIDI output ports and exit")
    t.add_argument("--link", action="store_const", const=True, default=S,
                   help="Ableton Link: drive the session's tempo and beat phase from the beat, only while "
                   "a steady beat is heard ([link]; needs the [link] extra)")
    g.add_argument("--config", metavar="FILE", help="TOML config file (see examples/show.toml)")
    g.add_argument("--print-config", action="store_true", help="print the effective config as TOML and exit")
    g.add_argument("-v", "--verbose", action="count", default=S, help="-v info, -vv debug and tracebacks")
    g.add_argument("--log-file", default=S, metavar="FILE", help="also log to FILE")
    g.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    return p


def _pick(text: str) -> tuple[int, ...]:
    try:
        chans = tuple(int(c) for c in text.replace(" ", "").split(",") if c)
    except ValueError:
        raise CliError(f"--pick must be 1-based channel numbers like 1,2, got {text!r}", EXIT_USAGE) from None
    if not chans:
        raise CliError("--pick must name at least one channel", EXIT_USAGE)
    if min(chans) < 1:
        raise CliError(f"--pick must be 1-based channel numbers like 1,2, got {text!r}", EXIT_USAGE)
    return chans


def overrides_from(ns: argparse.Namespace) -> dict[tuple[str, str], tuple[Any, str]]:
    """Flags the user gave -> ``{(section, key): (value, "--flag")}`` for ``build_config``."""
    given = vars(ns)
    table: dict[str, tuple[str, str, Callable[[Any], Any] | None]] = {
        "device": ("capture", "device", lambda v: int(v) if str(v).strip().isdigit() else v),
        "samplerate": ("capture", "samplerate", None),
        "blocksize": ("capture", "blocksize", None),
        "channels": ("capture", "channels", None),
        "wait_for_device": ("capture", "wait_for_device", None),
        "low_latency": ("capture", "low_latency", None),
        "pick": ("pipeline", "pick", _pick),
        "gain_db": ("pipeline", "gain_db", None),
        "hop": ("pipeline", "hop_s", None),
        "attack": ("pipeline", "attack_s", None),
        "release": ("pipeline", "release_s", None),
        "on_silence": ("pipeline", "on_silence", None),
        "input": ("source", "input", None),
        "play": ("source", "play", None),
        "loop": ("source", "loop", None),
        "demo": ("source", "demo", None),
        "model": ("model", "path", None),
        "provider": ("model", "provider", None),
        "require_gpu": ("model", "require_gpu", None),
        "threads": ("model", "threads", None),
        "no_music_gate": ("model", "music_gate", lambda v: not v),
        "no_teacher": ("model", "teacher", lambda v: not v),
        "room": ("model", "input", None),
        "headless": ("gui", "headless", None),
        "duration": ("run", "duration", None),
        "record": ("run", "record", None),
        "no_beat": ("beat", "enabled", lambda v: not v),
        "no_sections": ("sections", "enabled", lambda v: not v),
        "verbose": ("log", "verbosity", lambda v: min(int(v), 2)),
        "log_file": ("log", "file", None),
        "osc": ("osc", "targets", None),
        "osc_prefix": ("osc", "prefix", None),
        "osc_rate": ("osc", "rate_hz", None),
        "range": ("osc", "value_range", None),
        "bundle": ("osc", "bundle", None),
        "osc_fixed_rate": ("osc", "send_on_estimate", lambda v: not v),
        "broadcast": ("osc", "broadcast", None),
        "no_osc": ("osc", "enabled", lambda v: not v),
        "realtime": ("pipeline", "realtime", None),
        "midi": ("midi", "port", None),
        "link": ("link", "enabled", None),
    }
    out: dict[tuple[str, str], tuple[Any, str]] = {}
    for dest, (section, key, conv) in table.items():
        if dest in given:
            value = given[dest]
            out[(section, key)] = (conv(value) if conv else value, "--" + dest.replace("_", "-"))
    if "midi" in given:  # --midi PORT turns the output on
        out[("midi", "enabled")] = (True, "--midi")
    if "realtime" in given:  # one flag for both threads on the audio path
        out[("osc", "realtime")] = (given["realtime"], "--realtime")
    return out


def setup_logging(verbosity: int, log_file: Path | None) -> None:
    """Warnings as one line ``mer-live: warning: ...`` on stderr; more with -v; a file with times."""

    class _Fmt(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            msg = record.getMessage()
            if record.exc_info and verbosity >= 2:
                msg += "\n" + self.formatException(record.exc_info)
            return f"{PROG}: {record.levelname.lower()}: {msg}"

    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(max(verbosity, 0), 2)]
    root.setLevel(level)
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(_Fmt())
    h.setLevel(level)  # a log file may lower the root's level; the terminal keeps -v's
    h.addFilter(lambda r: not getattr(r, "notice", False))  # notice() has printed it already
    root.addHandler(h)
    if log_file is not None:
        try:
            fh = logging.FileHandler(log_file, encoding="utf-8")
        except OSError as e:
            raise CliError(f"cannot open log file {log_file}: {e.strerror or e}", EXIT_USAGE) from None
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        fh.setLevel(logging.DEBUG if verbosity >= 1 else logging.INFO)
        root.addHandler(fh)
        root.setLevel(min(level, fh.level))


def notice(msg: str) -> None:
    """A one-line status message on stderr (and in the log file)."""
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)
    logging.getLogger("mer_live.cli").debug(msg, extra={"notice": True})


def load_model(cfg: Any) -> Any:
    """Load the configured model for the configured input (``[model] input``: line, or room: the
    room model and its re-centring, ``mer_live.roominput``); every failure is a one-line CliError
    with exit code 2."""
    from mer_live.model import ModelError, default_model_path
    from mer_live.roominput import load_for_input

    path = cfg.model.path
    if path is None and cfg.model.input == "line":
        path = default_model_path()
        if not path.is_file():
            raise CliError(
                f"no model: the default model {path.name} is not installed in this version "
                "(pass --model PATH)",
                EXIT_USAGE,
            )
    try:
        return load_for_input(cfg.model.input, path, provider=cfg.model.provider,
                              threads=cfg.model.threads or None, require_gpu=cfg.model.require_gpu)
    except ModelError as e:
        raise CliError(str(e), EXIT_USAGE) from None


def load_presence(cfg: Any) -> tuple[Any, Any]:
    """``(PresenceModel, MusicGate)`` for the music gate, or ``(None, None)`` without one.

    An explicit ``[model] presence`` path that cannot be loaded is an error (exit 2); a missing
    shipped model is a warning, and every audible window then counts as music."""
    if not cfg.model.music_gate:
        return None, None
    from mer_live.model import ModelError
    from mer_live.presence import MusicGate, PresenceModel, default_presence_path

    path = cfg.model.presence
    if path is None and not default_presence_path().is_file():
        log.warning("the music-presence model is not installed in this version: every sound counts as "
                    "music (pass [model] presence = PATH, or --no-music-gate to silence this)")
        return None, None
    try:
        return PresenceModel(path, provider="cpu", threads=1), MusicGate()
    except ModelError as e:
        raise CliError(f"music-presence model: {e}", EXIT_USAGE) from None


def load_teacher(cfg: Any, model: Any) -> Any:
    """A fused model's teacher on its own thread (``fusion.TeacherThread``), or None: a plain
    model, or ``--no-teacher``. A broken teacher file is an error (exit 2), like a broken model."""
    if not cfg.model.teacher:
        return None
    from mer_live.fusion import Fusion, TeacherThread
    from mer_live.model import ModelError

    try:
        fusion = Fusion.of(model)
    except ModelError as e:
        raise CliError(f"teacher model: {e}", EXIT_USAGE) from None
    if fusion is None:
        return None
    notice(f"teacher {fusion.name}: a {fusion.window_samples / model.sample_rate:.1f}-s patch every "
           f"{fusion.spec.live_every_s:g} s of music, fused at weight {fusion.w:g}, "
           f"on {fusion.active_provider}")
    return TeacherThread(fusion)


def _no_input_devices() -> bool:
    """True when PortAudio is missing or lists no input device at all (then the demo runs)."""
    from mer_live.capture import DeviceError, list_devices

    try:
        return not list_devices()
    except DeviceError:
        return True


def source_factory(cfg: Any, model: Any, cancel: threading.Event) -> tuple[Callable[[Any], Any], Any]:
    """``(factory(spec) -> Source, initial spec)`` for the configured input.

    A file (``--input``) or the demo ignore the device spec; a device spec opens that device.
    With no device given and no input device at all, the demo runs (one-line notice).
    """
    from mer_live.capture import DeviceSource
    from mer_live.filesource import FileSource
    from mer_live.framing import hop_samples

    src = cfg.source
    if src.input is not None:
        path = Path(src.input)
        return (lambda _spec: FileSource(path, realtime=True, play=src.play, loop=src.loop)), str(path)
    demo = src.demo
    if not demo and cfg.capture.device is None and not cfg.capture.wait_for_device and _no_input_devices():
        notice("no input device found: running the bundled demo instead (see --list-devices)")
        demo = True
    if demo:
        from mer_live.demo import demo_audio

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


def display_available() -> bool:
    """A window can be shown: an X/Wayland display, or Qt told to render offscreen."""
    if os.environ.get("QT_QPA_PLATFORM", "").startswith("offscreen"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class _Stopper:
    """SIGINT/SIGTERM -> a clean stop. A second signal while stopping exits at once (nothing hangs).

    The handler only writes a byte to a pipe. It runs in the main thread between any two bytecodes,
    so taking a lock there can deadlock: ``Event.set`` takes the lock that the main thread holds
    for an instant on every pass of its own ``event.wait``. A small thread reads the pipe and sets
    ``event``; the loops that wait (headless, the window's timer, a device wait) see it at once.
    """

    def __init__(self) -> None:
        self.event = threading.Event()
        self._signalled = False
        self._old: dict[int, Any] = {}
        self._pipe: tuple[int, int] | None = None
        self._thread: threading.Thread | None = None

    def install(self) -> None:
        r, w = os.pipe()
        self._pipe = (r, w)
        self._thread = threading.Thread(target=self._watch, args=(r,), name="mer-signals", daemon=True)
        self._thread.start()
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()
        if self._pipe is not None:
            r, w = self._pipe
            os.write(w, b"q")
            if self._thread is not None:
                self._thread.join(1.0)
            os.close(r)
            os.close(w)
            self._pipe, self._thread = None, None

    def _watch(self, r: int) -> None:
        while True:
            b = os.read(r, 1)
            if not b or b == b"q":
                return
            self.event.set()

    def _handle(self, signum: int, _frame: Any) -> None:
        if self._signalled:
            os._exit(EXIT_OK if signum == signal.SIGTERM else 130)
        self._signalled = True
        if self._pipe is not None:
            os.write(self._pipe[1], b"s")


def run_headless(app: Any, printer: Any, stopper: _Stopper, duration: float | None) -> None:
    """Wait for a signal, --duration or the end of a non-looping file."""
    printer.start()
    deadline = None if duration is None else time.monotonic() + duration
    while not stopper.event.is_set():
        if app.done.is_set():
            notice("input finished")
            break
        if deadline is not None and time.monotonic() >= deadline:
            break
        wait = 0.05 if deadline is None else max(0.0, min(0.05, deadline - time.monotonic()))
        stopper.event.wait(wait)


def run_gui(app: Any, cfg: Any, stopper: _Stopper, duration: float | None) -> int:
    from PySide6 import QtCore, QtWidgets

    from mer_live.dashboard import run_dashboard

    qapp = QtWidgets.QApplication.instance() or QtWidgets.QApplication([PROG])
    timers = []
    if duration is not None:
        QtCore.QTimer.singleShot(int(duration * 1000), qapp.closeAllWindows)
    watch = QtCore.QTimer()  # a finished file or a signal closes the window too
    watch.timeout.connect(lambda: (app.done.is_set() or stopper.event.is_set()) and qapp.closeAllWindows())
    watch.start(200)
    timers.append(watch)
    try:
        return int(run_dashboard(app, cfg.gui))
    finally:
        watch.stop()


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    verbosity = min(getattr(ns, "verbose", 0), 2)
    try:
        return _main(ns)
    except CliError as e:
        if verbosity >= 2:
            logging.getLogger("mer_live.cli").debug("traceback of the error below:", exc_info=True)
        print(f"{PROG}: error: {e}", file=sys.stderr, flush=True)
        return e.code
    except KeyboardInterrupt:
        return EXIT_OK
    except Exception as e:  # the last line of defence: one line, not a traceback
        if verbosity >= 2:
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        print(f"{PROG}: error: unexpected {type(e).__name__}: {first} (run with -vv for details)",
              file=sys.stderr, flush=True)
        return EXIT_RUNTIME


def _main(ns: argparse.Namespace) -> int:
    from mer_live.config import ConfigError, build_config, dumps_toml, load_toml

    # 1. config: file, then flags on top; validated before anything opens
    try:
        overrides = overrides_from(ns)
        if ns.config:
            cfg = load_toml(ns.config, overrides)
        else:
            cfg = build_config({}, overrides=overrides)
    except ConfigError as e:
        raise CliError(str(e), EXIT_USAGE) from None
    if cfg.source.input is not None and cfg.source.demo:
        raise CliError("--input and --demo cannot be used together", EXIT_USAGE)
    if "device" in vars(ns) and (cfg.source.demo or cfg.source.input is not None):
        other = "--demo" if cfg.source.demo else "--input"
        raise CliError(f"--device and {other} cannot be used together", EXIT_USAGE)
    setup_logging(cfg.log.verbosity, cfg.log.file)
    if ns.reset_window:  # before anything else, so that even --print-config can do just this
        try:
            from mer_live.dashboard import reset_window_settings
        except ImportError as e:
            raise CliError(f"--reset-window: the dashboard is not available ({e})") from None
        notice(f"window settings reset ({reset_window_settings()})")
    if ns.print_config:
        print(dumps_toml(cfg), end="")
        return EXIT_OK
    if ns.list_devices:
        from mer_live.capture import DeviceError, format_devices

        try:
            print(format_devices())
        except DeviceError as e:
            raise CliError(str(e)) from None
        return EXIT_OK

    if ns.list_midi:
        from mer_live.midi import format_ports

        try:
            print(format_ports(cfg.midi.api))
        except (ImportError, OSError) as e:
            raise CliError(str(e)) from None
        return EXIT_OK

    # 2. the model, before any audio opens
    model = load_model(cfg)
    from mer_live.roominput import input_kind

    notice(
        f"model {model.card.name} ({model.sample_rate} Hz, {model.card.window_seconds:.2f} s window) "
        f"on {model.active_provider}, {input_kind(model)} input"
    )

    stopper = _Stopper()
    stopper.install()
    try:
        return _run(cfg, model, stopper)
    finally:
        stopper.restore()


def _run(cfg: Any, model: Any, stopper: _Stopper) -> int:
    from mer_live.app import LiveApp
    from mer_live.capture import DeviceError
    from mer_live.filesource import SourceError
    from mer_live.record import RecordError
    from mer_live.roominput import input_kind
    from mer_live.stopping import abandon_line, exit_anyway, stray_threads
    from mer_live.terminal import TerminalPrinter

    # 3. the window or the terminal
    headless = cfg.gui.headless
    if not headless and not display_available():
        notice("no display (DISPLAY/WAYLAND_DISPLAY unset): running headless")
        headless = True
    if not headless:
        try:
            import mer_live.dashboard  # noqa: F401 - fail here, before audio opens, if Qt is broken
        except Exception as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            notice(f"dashboard unavailable ({first}): running headless")
            headless = True

    # 4. source, OSC, pipeline
    factory, spec = source_factory(cfg, model, stopper.event)
    osc = make_osc(cfg)
    printer = TerminalPrinter(label=input_kind(model)) if headless else None
    pipeline_cfg = dataclasses.replace(cfg.pipeline, history_s=max(cfg.pipeline.history_s, cfg.gui.history_s))
    presence, gate = load_presence(cfg)
    teacher = load_teacher(cfg, model)
    analysers, hooks = make_analysers(cfg)
    outputs = make_outputs(cfg)
    outputs += [a for a in analysers if hasattr(a, "start")]  # bars: the estimates' music flag, reset port
    try:
        app = LiveApp(model, pipeline_cfg, factory, osc=osc, device=spec,
                      extra_sinks=[*hooks, *([printer] if printer else [])], presence=presence, gate=gate,
                      analysers=analysers, outputs=outputs, teacher=teacher)
        app.start()
    except (DeviceError, SourceError) as e:
        if stopper.event.is_set():
            return EXIT_OK  # stopped while waiting for the device
        raise CliError(str(e)) from None
    except (RecordError, OSError) as e:  # the record file or the lighting socket
        raise CliError(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__) from None
    said = app.source.message or app.source_name
    notice(said if said.startswith("input: ") else f"input: {said}")
    duration = getattr(app.source, "duration_s", None)
    if cfg.source.input is not None and duration is not None and duration < model.card.window_seconds:
        notice(f"note: {app.source_name} ({duration:.1f} s) is shorter than the model's "
               f"{model.card.window_seconds:g}-s window: "
               + ("no emotion estimate until it has looped to a full window" if cfg.source.loop
                  else "one estimate, on a zero-padded window at its end (--loop fills a window)"))
    if osc is not None:
        notice(f"OSC: {describe_osc(cfg)}")
    for out in outputs:  # the tempo outputs say where they went (MIDI port, Link session)
        if hasattr(out, "describe"):
            notice(out.describe())
    started = time.monotonic()
    rc = EXIT_OK
    try:
        if headless:
            run_headless(app, printer, stopper, cfg.run.duration)
        else:
            rc = run_gui(app, cfg, stopper, cfg.run.duration)
    finally:
        abandoned = app.stop(also=[printer] if printer is not None else [])
        abandoned += stray_threads(abandoned)
    if abandoned:  # one line; the process exits anyway, not waiting for what was left (mer_live.stopping)
        log.warning(abandon_line(abandoned, app.PIPELINE_DEADLINE_S + app.OUTPUTS_DEADLINE_S))
        exit_anyway(rc)
    st = app.pipeline.stats
    hops = st.get("hops", 0)
    notice(
        f"stopped after {time.monotonic() - started:.1f} s: {hops} estimate{'' if hops == 1 else 's'}, "
        f"{st.get('hops_skipped', 0)} skipped"
    )
    return rc


def make_osc(cfg: Any) -> Any:
    """The OSC sender for the [osc] section, or None with --no-osc."""
    if not cfg.osc_enabled:
        return None
    from mer_live.osc import OscSender

    try:
        return OscSender(cfg.osc)
    except (OSError, ValueError) as e:
        raise CliError(f"cannot start OSC: {e}") from None


def make_analysers(cfg: Any) -> tuple[list[Any], list[Any]]:
    """The block analysers ``[beat]`` and ``[sections]`` enable, and the sinks that feed them
    back the estimates they may use (the section detector's arousal gate for drops)."""
    analysers: list[Any] = []
    hooks: list[Any] = []
    if cfg.beat.enabled:
        try:
            from mer_live.beat import BeatTracker
        except ImportError as e:  # aubio-ledfx missing: the emotion path goes on without beats
            log.warning("no beat tracking: %s (pip install aubio-ledfx)", e)
        else:
            tracker = BeatTracker(cfg.beat)
            analysers.append(tracker)
            if cfg.bars.enabled:  # right after the tracker: it reads the tracker's new beats
                from mer_live.bars import Bars

                analysers.append(Bars(tracker, cfg.bars))
    if cfg.sections.enabled:
        from mer_live.sections import SectionDetector

        sections = SectionDetector(cfg.sections)
        analysers.append(sections)
        hooks.append(sections.observe)
    return analysers, hooks


def make_outputs(cfg: Any) -> list[Any]:
    """Sinks with a life of their own (``start``/``stop``): the show record and the DMX output."""
    outputs: list[Any] = []
    if cfg.run.record is not None:
        from mer_live.record import Recorder

        outputs.append(Recorder(cfg.run.record))
    if cfg.lighting.enabled:
        from mer_live.lighting import LightingOutput

        outputs.append(LightingOutput(cfg.lighting))
    if cfg.midi.enabled:
        from mer_live.midi import MidiOutput

        outputs.append(MidiOutput(cfg.midi))
    if cfg.link.enabled:
        from mer_live.link import LinkOutput

        outputs.append(LinkOutput(cfg.link))
    return outputs


def describe_osc(cfg: Any) -> str:
    o = cfg.osc
    extra = [f"{o.rate_hz:g} Hz", f"range {o.value_range}"] + (["bundled"] if o.bundle else [])
    return f"{', '.join(o.targets)} prefix {o.prefix} ({', '.join(extra)})"


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
