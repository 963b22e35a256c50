"""MIDI out: beat clock, control changes and notes for lighting desks, lasers and VJ software.

Why: lighting and laser software and desks follow MIDI beat clock, not OSC or Link. ``MidiOutput``
is a pipeline sink (``sink(estimate)``, ``event(ev)`` only store) with its own thread, the one that
owns the port (RtMidi ports are not thread-safe). It sends:

* **beat clock**, 24 pulses per quarter note at the published tempo, phase-locked to the beats:
  Start (0xFA) with the first pulse on a beat once music with a steady beat has started
  (``BeatFollower.steady``: regular beats heard, each with an onset); between beats the
  pulses run on the grid of the last beat (a flywheel); each new beat re-anchors the grid (half the
  phase error at a time, so a tracker's few-ms jitter does not jitter the clock); pulses owed by an
  early beat go out at once, a late beat makes the clock wait, so every beat gets 24 pulses.
  Stop (0xFC) when the music or the beat stops (no beat for ``stop_beats`` periods).
* **control changes** for arousal, valence, level (0..1 like ``/mer/level01``) and music (0/127),
  on ``channel``, at most ``cc_rate_hz`` times a second and only when the value changes;
* **notes** on each beat, bar (beat 1) and section change (note on, note off ``note_s`` later).

Ports: ``port = ""`` opens a virtual output port named ``virtual_name`` (ALSA, JACK, CoreMIDI;
not on Windows); otherwise an existing output port by index or by (part of) its name
(``mer-live --list-midi``). A missing port is a one-line ``OSError`` at start; a port that fails
or vanishes while running (checked every ``CHECK_S``: RtMidi itself drops sends to a vanished
port or server silently) is warned about (throttled) and reopened every ``RETRY_S``: the show
goes on. Under JACK that check asks libjack through ctypes (``jack_ports``), which lets go of the
GIL: RtMidi's own listing opens a JACK client while holding it, which stalled every thread of
mer-live (pipeline, OSC, the clock itself) every ``CHECK_S`` (bench/bench_midi_stall.py: OSC gaps
of 261-265 ms and skipped hops before, none skipped after).
Needs the ``[midi]`` extra (mido + python-rtmidi).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from mer_live.analysers.beatfollow import BeatFollower
from mer_live.common.validate import check, config_from_dict
from mer_live.live.sinks import ThreadedSink
from mer_live.registry import Flag, OutputSpec, register_output

log = logging.getLogger(__name__)

#: ``[midi] api`` -> mido's rtmidi backend (""; mido's default, or the MIDO_BACKEND variable)
APIS = {"": "", "alsa": "mido.backends.rtmidi/LINUX_ALSA", "jack": "mido.backends.rtmidi/UNIX_JACK",
        "coremidi": "mido.backends.rtmidi/MACOSX_CORE", "winmm": "mido.backends.rtmidi/WINDOWS_MM"}
RETRY_S = 2.0  #: a failed port is reopened this often
#: how often the thread checks that its port still exists (RtMidi does not report a vanished port
#: or MIDI server: sends to it just go nowhere)
CHECK_S = 5.0
PPQN = 24  #: MIDI beat clock pulses per quarter note (one beat)
LEVEL_FLOOR_DB = -60.0  #: level CC: -60 dBFS -> 0, 0 dBFS -> 127 (as /mer/level01)


@dataclass(frozen=True)
class MidiConfig:
    """``[midi]``: where to send and what (CC and note numbers 0..127; -1 turns one off)."""

    enabled: bool = False
    port: str = ""  #: "": a virtual port named virtual_name; else an output port's index or name
    virtual_name: str = "mer-live"
    api: str = ""  #: "", alsa, jack, coremidi, winmm ("": mido's default or MIDO_BACKEND)
    channel: int = 1  #: 1..16, for the CCs and notes
    clock: bool = True  #: beat clock (24 ppqn) with Start and Stop
    cc_arousal: int = 20
    cc_valence: int = 21
    cc_level: int = 22
    cc_music: int = 23
    cc_rate_hz: float = 30.0  #: at most this many CC updates a second (each only on a change)
    note_beat: int = 36  #: C1 on each beat (-1: off)
    note_bar: int = 37  #: C#1 on each beat 1
    note_section: int = 38  #: D1 on each section change
    velocity: int = 100
    note_s: float = 0.05  #: note length
    stop_beats: float = 2.0  #: no beat for this many periods: Stop

    def __post_init__(self) -> None:
        s = "midi"
        check(self.api in APIS, s, "api", f"one of {', '.join(repr(a) for a in APIS)}", self.api)
        check(bool(self.virtual_name.strip()), s, "virtual_name", "a non-empty name", self.virtual_name)
        check(1 <= self.channel <= 16, s, "channel", "a MIDI channel in 1..16", self.channel)
        for k in ("cc_arousal", "cc_valence", "cc_level", "cc_music", "note_beat", "note_bar",
                  "note_section"):
            v = getattr(self, k)
            check(-1 <= v <= 127, s, k, "a number in 0..127 (-1: off)", v)
        check(1 <= self.velocity <= 127, s, "velocity", "a velocity in 1..127", self.velocity)
        check(0.1 <= self.cc_rate_hz <= 1000, s, "cc_rate_hz", "a rate in 0.1..1000", self.cc_rate_hz)
        check(0.005 <= self.note_s <= 2.0, s, "note_s", "seconds in 0.005..2", self.note_s)
        check(1.0 <= self.stop_beats <= 16.0, s, "stop_beats", "beats in 1..16", self.stop_beats)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> MidiConfig:
        return config_from_dict(cls, data, "midi")


def _mido(api: str) -> tuple[Any, Any]:
    """(mido, its backend for ``api``); ImportError names the extra."""
    try:
        import mido
    except ImportError as e:
        raise ImportError(f"MIDI needs the [midi] extra: pip install 'mer-live[midi]' ({e})") from None
    name = APIS[api]
    try:
        backend = mido.Backend(name, load=True) if name else mido.Backend(load=True)
    except Exception as e:  # python-rtmidi missing or the API not compiled in
        raise ImportError(f"MIDI backend {name or 'default'} unavailable: {e} "
                          "(pip install 'mer-live[midi]')") from None
    return mido, backend


_JACK: Any = None  #: libjack through ctypes, loaded on first use (False: not loadable)
_JACK_MIDI = b"8 bit raw midi"  #: JACK_DEFAULT_MIDI_TYPE


def jack_ports(sources: bool) -> list[str] | None:
    """JACK's MIDI port names, sources (what others read) or destinations; None when no JACK server
    answers. Through libjack and ctypes, which releases the GIL for the call, so the rest of
    mer-live runs on while a probe client connects."""
    global _JACK
    if _JACK is None:
        try:
            lib = ctypes.CDLL(ctypes.util.find_library("jack") or "libjack.so.0")
            lib.jack_client_open.restype = ctypes.c_void_p
            lib.jack_get_ports.restype = ctypes.POINTER(ctypes.c_char_p)
            lib.jack_get_ports.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong]
            lib.jack_free.argtypes = [ctypes.c_void_p]
            lib.jack_client_close.argtypes = [ctypes.c_void_p]
            _JACK = lib
        except (OSError, AttributeError):
            _JACK = False
    if _JACK is False:
        raise OSError("libjack is not loadable")
    status = ctypes.c_int(0)
    client = _JACK.jack_client_open(b"mer-live-probe", 0x01, ctypes.byref(status))  # JackNoStartServer
    if not client:
        return None
    try:
        found = _JACK.jack_get_ports(client, None, _JACK_MIDI, 0x2 if sources else 0x1)  # IsOutput / IsInput
        names = []
        if found:
            i = 0
            while found[i] is not None:
                names.append(found[i].decode(errors="replace"))
                i += 1
            _JACK.jack_free(ctypes.cast(found, ctypes.c_void_p))
        return names
    finally:
        _JACK.jack_client_close(client)


def list_ports(api: str = "") -> list[str]:
    """The output ports, in index order (``--list-midi``); ImportError/OSError in one line."""
    _, backend = _mido(api)
    try:
        return list(backend.get_output_names())
    except Exception as e:
        raise OSError(f"cannot list MIDI ports: {e}") from None


def format_ports(api: str = "") -> str:
    names = list_ports(api)
    lines = [f"{i:3d}  {n}" for i, n in enumerate(names)] or ["  (no MIDI output ports)"]
    return "\n".join(["MIDI output ports (--midi INDEX or part of the name; --midi virtual: a port "
                      "of mer-live's own):", *lines])


def open_port(c: MidiConfig) -> Any:
    """The configured output port, or a one-line OSError (ImportError without the extra)."""
    mido, backend = _mido(c.api)
    spec = c.port.strip()
    try:
        if not spec or spec == "virtual":
            try:
                return backend.open_output(c.virtual_name, virtual=True, client_name=c.virtual_name)
            except TypeError:  # an older mido without client_name
                return backend.open_output(c.virtual_name, virtual=True)
        names = list(backend.get_output_names())
        if spec.isdigit():
            i = int(spec)
            if i >= len(names):
                raise OSError(f"MIDI port {i} does not exist ({len(names)} output ports; see --list-midi)")
            return backend.open_output(names[i])
        hits = [n for n in names if spec.lower() in n.lower()]
        if not hits:
            raise OSError(f"no MIDI output port matches {spec!r} (see --list-midi)")
        return backend.open_output(hits[0])
    except OSError:
        raise
    except Exception as e:  # rtmidi's errors: no ALSA sequencer, no JACK server, ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise OSError(f"cannot open MIDI port {spec or c.virtual_name!r}: {first}") from None


class MidiClock:
    """Pure logic: when each clock pulse is due, from the beats (tested without a port).

    Pulse ``n`` (counted from Start) is due at ``anchor_wall + (n - anchor_n) * period / 24``; each
    beat moves the anchor to its own pulse number (24 per beat since Start) and half-way to its
    time, so the phase follows the beats without copying their jitter.
    """

    def __init__(self) -> None:
        self.running = False
        self.sent = 0  #: pulses sent since Start
        self._first_count = 0
        self._anchor_n = 0
        self._anchor_wall = 0.0
        self._pp = 0.0  #: seconds per pulse

    def beat(self, wall: float, count: int, bpm: float) -> bool:
        """A beat at ``wall``; returns True when it starts the clock (send Start first)."""
        self._pp = 60.0 / bpm / PPQN
        if not self.running:
            self.running, self.sent, self._first_count = True, 0, count
            self._anchor_n, self._anchor_wall = 0, wall
            return True
        n = PPQN * (count - self._first_count)
        predicted = self._anchor_wall + (n - self._anchor_n) * self._pp
        err = wall - predicted
        if abs(err) > 6 * self._pp:  # a big jump (a re-phased tracker): take it as it is
            self._anchor_wall = wall
        else:
            self._anchor_wall = predicted + 0.5 * err
        self._anchor_n = n
        return False

    def due(self, n: int) -> float:
        return self._anchor_wall + (n - self._anchor_n) * self._pp

    def stop(self) -> None:
        self.running = False


class MidiOutput(ThreadedSink):
    """Pipeline sink: ``sink(estimate)``, ``event(ev)``, ``start``/``stop``; a thread owns the port."""

    def __init__(self, config: MidiConfig) -> None:
        super().__init__()
        self.config = config
        self._port: Any = None
        self._mido: Any = None
        self.follow = BeatFollower()
        self.clock = MidiClock()
        self._cc_last: dict[int, int] = {}
        self._cc_next = 0.0
        self._notes_off: list[tuple[float, int]] = []
        self.counts = {"clock": 0, "start": 0, "stop": 0, "cc": 0, "note": 0, "errors": 0}
        self._failed_at = -math.inf
        self._warned = -math.inf
        self._gone: Any = None  #: the port the watcher found gone (the sending thread acts on it)
        self._dead: list[Any] = []

    # -- life ------------------------------------------------------------------------------------
    def start(self) -> None:
        """Open the port (a one-line OSError if it is missing) and start the sending thread."""
        if not self.config.enabled or self._thread is not None:
            return
        try:
            self._mido, _ = _mido(self.config.api)
        except ImportError as e:
            raise OSError(str(e)) from None
        self._port = open_port(self.config)
        self._start_thread("mer-midi")
        threading.Thread(target=self._watch, name="mer-midi-watch", daemon=True).start()

    def stop(self) -> None:
        """Stop (0xFC) and notes off if possible, close the port; returns within about 0.5 s."""
        th = self._stop_thread(0.5)
        if th is not None and th.is_alive():
            log.warning("MIDI: the sending thread did not stop in time; the port is left to the OS")
            return
        log.info("MIDI: sent %(clock)d clock pulses, %(start)d starts, %(stop)d stops, %(cc)d CCs, "
                 "%(note)d notes, %(errors)d errors", self.counts)
        port, self._port = self._port, None
        if port is not None and not self._port_present(port):  # its server died: closing it would crash
            log.info("MIDI: the port is gone; left unclosed")
            self._abandon(port)
            return
        if port is not None:
            try:
                if self.clock.running:
                    port.send(self._mido.Message("stop"))
                for _t, note in self._notes_off:
                    port.send(self._note(note, False))
            except Exception:
                pass
            finally:
                try:
                    port.close()
                except Exception:
                    pass

    def describe(self) -> str:
        c = self.config
        what = ", ".join(x for x, on in (("clock 24 ppqn", c.clock), ("CCs", True), ("notes", True)) if on)
        return f"MIDI: {self.port_name or c.port or c.virtual_name} ({what} on channel {c.channel})"

    @property
    def port_name(self) -> str:
        return str(getattr(self._port, "name", "")) if self._port is not None else ""

    # -- the thread --------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.clear()
                now = time.monotonic()
                try:
                    self._step(now)
                except Exception as e:  # the port went away: warn, reopen later; the show goes on
                    self._fail(e, now)
                self._wake.wait(max(0.0, min(self._next_due(), time.monotonic() + 0.05) - time.monotonic()))
        except BaseException as e:  # never silently: the clock would just stop
            log.warning("MIDI: the sending thread ended: %s", e)

    def _fail(self, e: Exception, now: float) -> None:
        self.counts["errors"] += 1
        if now - self._warned >= 10.0:
            self._warned = now
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            log.warning("MIDI: %s; the show goes on, reopening every %g s", first, RETRY_S)
        if self._port is not None:
            self._abandon(self._port)
        self._port = None
        self._failed_at = now
        self.clock.stop()

    def _abandon(self, port: Any) -> None:
        """Never close nor free a port that failed: closing or destroying a JACK client whose
        server died crashes libjack (measured: SIGSEGV); one leaked object per failure is the
        lesser harm."""
        import ctypes

        ctypes.pythonapi.Py_IncRef(ctypes.py_object(port))
        self._dead.append(port)

    def _next_due(self) -> float:
        t = time.monotonic() + 0.05
        if self.clock.running:
            t = min(t, self.clock.due(self.clock.sent))
        if self._notes_off:
            t = min(t, min(x for x, _ in self._notes_off))
        return t

    def _send(self, msg: Any) -> None:
        if self._port is None:
            return
        self._port.send(msg)

    def _note(self, note: int, on: bool) -> Any:
        ch = self.config.channel - 1
        if on:
            return self._mido.Message("note_on", channel=ch, note=note, velocity=self.config.velocity)
        return self._mido.Message("note_off", channel=ch, note=note, velocity=0)

    def _watch(self) -> None:
        """Every ``CHECK_S``, whether the port is still there, on a thread of its own: a probe waits
        on the MIDI server (a JACK client connects), and the clock must not."""
        while not self._stop.wait(CHECK_S):
            port = self._port
            if port is not None and not self._port_present(port):
                self._gone = port
                self._wake.set()

    def _port_present(self, port: Any) -> bool:
        """Whether ``port`` is still listed (a virtual one among the inputs others can open)."""
        virtual = not self.config.port.strip() or self.config.port.strip() == "virtual"
        try:
            names = None
            if self._on_jack(port):
                try:
                    names = jack_ports(sources=virtual)
                except OSError:  # libjack not loadable through ctypes: RtMidi's listing below
                    pass
                else:
                    if names is None:  # the JACK server is gone
                        return False
            if names is None:
                _, backend = _mido(self.config.api)
                names = backend.get_input_names() if virtual else backend.get_output_names()
            if virtual:
                return any(self.config.virtual_name in n for n in names)
            return str(getattr(port, "name", "")) in names
        except Exception:  # the MIDI server itself is gone
            return False

    def _on_jack(self, port: Any) -> bool:
        if self.config.api == "jack":
            return True
        try:
            import rtmidi

            return port._rt.get_current_api() == rtmidi.API_UNIX_JACK
        except Exception:  # another backend than rtmidi's, or its internals moved: ask mido
            return False

    def _step(self, now: float) -> None:
        c, M = self.config, self._mido  # noqa: N806
        if self._port is None:
            if now - self._failed_at < RETRY_S:
                self._events.clear()
                return
            try:
                self._port = open_port(c)
                log.warning("MIDI: port %s open again", self.port_name)
            except OSError as e:
                self._fail(e, now)
                return
        if self._gone is not None:
            gone, self._gone = self._gone, None
            if gone is self._port:  # (not a verdict on a port already replaced)
                raise OSError(f"port {self.port_name or c.virtual_name!r} is gone (MIDI server or device)")
        est = self._latest
        if est is not None:
            self.follow.estimate(est)
        while self._events:
            ev = self._events.popleft()
            b = self.follow.event(ev)
            if ev.kind == "beat" and b is not None:
                # Start only on a steady beat heard in the music (not a tracker's beats on a held
                # chord); once running, every beat keeps the clock locked
                go = self.clock.running or self.follow.steady(now)
                if c.clock and go and b.bpm > 0 and self.clock.beat(b.wall, b.count, b.bpm):
                    self._send(M.Message("start"))
                    self.counts["start"] += 1
                self._play(c.note_beat, now)
            elif ev.kind == "bar":
                self._play(c.note_bar, now)
            elif ev.kind == "section":
                self._play(c.note_section, now)
        if self.clock.running and not self.follow.alive(now, c.stop_beats):
            self._send(M.Message("stop"))
            self.counts["stop"] += 1
            self.clock.stop()
        if self.clock.running:
            burst = 0
            tick = M.Message("clock")  # immutable in use: one object for the burst
            while self.clock.due(self.clock.sent) <= time.monotonic() and burst < PPQN:
                self._send(tick)
                self.clock.sent += 1
                self.counts["clock"] += 1
                burst += 1
        for t_off, note in [x for x in self._notes_off if x[0] <= now]:
            self._send(self._note(note, False))
            self._notes_off.remove((t_off, note))
        if est is not None and now >= self._cc_next:
            self._cc_next = now + 1.0 / c.cc_rate_hz
            level = min(1.0, max(0.0, (est.level_rms_db - LEVEL_FLOOR_DB) / -LEVEL_FLOOR_DB)) \
                if math.isfinite(est.level_rms_db) else 0.0
            for cc, v in ((c.cc_arousal, est.arousal), (c.cc_valence, est.valence), (c.cc_level, level),
                          (c.cc_music, 1.0 if est.hears_music else 0.0)):
                if cc < 0:
                    continue
                value = int(round(127 * min(1.0, max(0.0, v if math.isfinite(v) else 0.5))))
                if self._cc_last.get(cc) != value:
                    self._send(M.Message("control_change", channel=c.channel - 1, control=cc, value=value))
                    self._cc_last[cc] = value
                    self.counts["cc"] += 1

    def _play(self, note: int, now: float) -> None:
        if note < 0:
            return
        self._send(self._note(note, True))
        self.counts["note"] += 1
        self._notes_off.append((now + self.config.note_s, note))


# ---- registration: the [midi] section, --midi / --list-midi, the factory --------------------------

register_output(OutputSpec(
    name="midi", order=130, config=MidiConfig,
    build=lambda cfg: MidiOutput(cfg.midi) if cfg.midi.enabled else None,
    flags=(
        Flag(("--midi",), dict(metavar="PORT", help="MIDI out: beat clock, CCs, notes ([midi]); PORT: an "
                               "output's index or name, or 'virtual' for a port of mer-live's own (needs "
                               "the [midi] extra)"),
             ("midi", "port"), also=(("midi", "enabled", lambda _v: True),), group="tempo sync"),
        Flag(("--list-midi",), dict(action="store_true", help="list MIDI output ports and exit"),
             command=lambda cfg: format_ports(cfg.midi.api), group="tempo sync"),
    ),
))
