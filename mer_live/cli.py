"""``mer-live``: listen, estimate arousal/valence every hop, send OSC, show the dashboard.

Startup order matters on stage: parse and validate the whole config first, then load the model
(a bad model fails in one line, exit 2, before any audio device opens), then open the source,
start OSC, then the window (or the terminal printer when headless). SIGINT/SIGTERM stop everything
within 2 s with exit code 0, whatever a library does (``mer_live.live.stopping``: what did not stop is
named in one warning line and abandoned). Every user-facing error is one line
``mer-live: error: ...`` and a non-zero exit code; tracebacks only with ``-vv``.

Exit codes: 0 ok (stopped by signal, --duration or a finished file), 1 runtime error (device,
file, unexpected), 2 usage, config or model error.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from mer_live import __version__, registry
from mer_live.assemble import (
    EXIT_OK,
    EXIT_RUNTIME,
    EXIT_USAGE,
    PROG,
    live_model,
    live_parts,
    notice,
    status_lines,
)
from mer_live.assemble import StartError as CliError  # one error type from parsing to a started app

log = logging.getLogger("mer_live")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line, no usage block: errors must be readable in a log and on a small screen."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from mer_live.live.pipeline import PipelineConfig

    pd = PipelineConfig()  # --help shows its defaults, never a copy of them
    p = _Parser(
        prog=PROG,
        description="Real-time music emotion recognition: arousal and valence of the input, "
        "sent over OSC and shown in a window. Flags override the --config file.",
    )
    S = argparse.SUPPRESS  # noqa: N806 - flags not given do not override the config file
    groups = {title: p.add_argument_group(title) for title in registry.GROUPS}
    a = groups["input"]
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
    e = groups["estimation"]
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
    e.add_argument("--no-song-cut", action="store_const", const=True, default=S,
                   help="do not act on a detected hard cut between songs: the values follow a new song "
                   "as the 6-s window slides")
    g = groups["display and run"]
    g.add_argument("--headless", action="store_const", const=True, default=S, help="no window: print values")
    g.add_argument("--duration", type=float, default=S, metavar="S", help="stop after S seconds")
    g.add_argument("--reset-window", action="store_true",
                   help="forget the window's remembered size, position and fullscreen state first")
    for f in registry.flags():  # every output's and analyser's own flags (outputs/, analysers/)
        groups[f.group].add_argument(*f.args, **({} if f.command else {"default": S}), **f.kwargs)
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
        "verbose": ("log", "verbosity", lambda v: min(int(v), 2)),
        "log_file": ("log", "file", None),
        "realtime": ("pipeline", "realtime", None),
        "no_song_cut": ("pipeline", "song_cut", lambda v: not v),
    }
    out: dict[tuple[str, str], tuple[Any, str]] = {}
    for dest, (section, key, conv) in table.items():
        if dest in given:
            value = given[dest]
            out[(section, key)] = (conv(value) if conv else value, "--" + dest.replace("_", "-"))
    for f in registry.flags():  # the outputs' and analysers' own flags
        if f.target is None or f.dest not in given:
            continue
        value, flag = given[f.dest], "--" + f.dest.replace("_", "-")
        out[f.target] = (f.convert(value) if f.convert else value, flag)
        for section, key, fn in f.also:  # --midi PORT turns the output on
            out[(section, key)] = (fn(value), flag)
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
        # a signal sets the event (an instant wake); the poll only notices a finished file, so 4 Hz
        # (it was 20 Hz: ~0.1 % of a core for nothing; issue #28)
        wait = 0.25 if deadline is None else max(0.0, min(0.25, deadline - time.monotonic()))
        stopper.event.wait(wait)


def run_gui(app: Any, cfg: Any, stopper: _Stopper, duration: float | None) -> int:
    from PySide6 import QtCore, QtWidgets

    from mer_live.ui.dashboard import run_dashboard

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
            from mer_live.ui.dashboard import reset_window_settings
        except ImportError as e:
            raise CliError(f"--reset-window: the dashboard is not available ({e})") from None
        notice(f"window settings reset ({reset_window_settings()})")
    if ns.print_config:
        print(dumps_toml(cfg), end="")
        return EXIT_OK
    if ns.list_devices:
        from mer_live.sources.capture import DeviceError, format_devices

        try:
            print(format_devices())
        except DeviceError as e:
            raise CliError(str(e)) from None
        return EXIT_OK

    for f in registry.flags():  # an output's own listing (--list-midi)
        if f.command is not None and getattr(ns, f.dest, False):
            try:
                print(f.command(cfg))
            except (ImportError, OSError) as e:
                raise CliError(str(e)) from None
            return EXIT_OK

    # 2. the model, before any audio opens
    model = live_model(cfg)
    from mer_live.inference.roominput import input_kind

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
    from mer_live.inference.roominput import input_kind
    from mer_live.live.stopping import abandon_line, exit_anyway, stray_threads
    from mer_live.outputs.record import RecordError
    from mer_live.outputs.terminal import TerminalPrinter
    from mer_live.sources.capture import DeviceError
    from mer_live.sources.filesource import SourceError

    # 3. the window or the terminal
    headless = cfg.gui.headless
    if not headless and not display_available():
        notice("no display (DISPLAY/WAYLAND_DISPLAY unset): running headless")
        headless = True
    if not headless:
        try:
            import mer_live.ui.dashboard  # noqa: F401 - fail here, before audio opens, if Qt is broken
        except Exception as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            notice(f"dashboard unavailable ({first}): running headless")
            headless = True

    # 4. source, OSC, pipeline
    printer = TerminalPrinter(label=input_kind(model)) if headless else None
    parts = live_parts(cfg, model, stopper.event, extra_sinks=[printer] if printer else [])
    osc, outputs = parts.osc, parts.outputs
    try:
        app = parts.app()
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
    for line in status_lines(cfg, osc, outputs):  # OSC's targets, the MIDI port, the Link session
        notice(line)
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
    if abandoned:  # one line; the process exits anyway, not waiting for what was left (live.stopping)
        log.warning(abandon_line(abandoned, app.PIPELINE_DEADLINE_S + app.OUTPUTS_DEADLINE_S))
        exit_anyway(rc)
    st = app.pipeline.stats
    hops = st.get("hops", 0)
    notice(
        f"stopped after {time.monotonic() - started:.1f} s: {hops} estimate{'' if hops == 1 else 's'}, "
        f"{st.get('hops_skipped', 0)} skipped"
    )
    return rc


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
