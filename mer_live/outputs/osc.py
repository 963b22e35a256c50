"""Send estimates over OSC/UDP to lighting and visuals software, at a steady rate of our own.

``OscSender`` is a pipeline sink: calling it only stores the newest :class:`Estimate`. Its thread
sends that estimate ``rate_hz`` times a second, whatever the hop, so receivers see a smooth,
regular stream and a ``/heartbeat`` even when the values do not change. The address scheme is the
table in docs/architecture.md (keep the two in agreement).

Each target gets its own connected UDP socket: a receiver that is not running makes the kernel's
ICMP "port unreachable" come back as ``ConnectionRefusedError`` on a later send, which is reported
(at most once per ``warn_interval_s`` per target) and otherwise ignored; sending simply goes on and
the target counts as up again once the refusals stop. Host names that do not resolve are retried
in the background. Nothing here listens on a socket.
"""

from __future__ import annotations

import logging
import math
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder

from mer_live.common.validate import Checked, check, check_fields, flag, number
from mer_live.live.realtime import DEFAULT_PRIORITY, promote_or_warn
from mer_live.live.records import Estimate, Event
from mer_live.registry import Flag, OutputSpec, StartError, register_output

log = logging.getLogger(__name__)

VALUE_RANGES = ("01", "pm1")
RESOLVE_EVERY_S = 3.0  #: how often an unresolved host name is looked up again
DOWN_CLEARS_S = 1.0  #: a target counts as up again after this long without a refusal
_BAD_PREFIX_CHARS = set(" #*,?[]{}")
#: ``/mer/level01``: the RMS level mapped linearly from LEVEL01_FLOOR_DB (0) to 0 dBFS (1)
LEVEL01_FLOOR_DB = -60.0


def check_prefix(p: object) -> str:
    """An OSC 1.0 address prefix (``/mer``, ``/show/mer``) or ValueError (one line) saying why not:
    printable ASCII, starting with '/', no empty part (``//`` or a trailing '/'), none of the
    characters OSC reserves for patterns (space # * , ? [ ] { })."""
    if not isinstance(p, str) or not p.startswith("/") or len(p) < 2 or p.endswith("/"):
        raise ValueError(f"osc.prefix must start with '/' and not end with it, like '/mer', got {p!r}")
    if not all(32 < ord(c) < 127 for c in p):
        raise ValueError(f"osc.prefix {p!r} must be printable ASCII (OSC 1.0 addresses)")
    if "//" in p:
        raise ValueError(f"osc.prefix {p!r} has an empty part ('//')")
    if _BAD_PREFIX_CHARS & set(p):
        raise ValueError(f"osc.prefix {p!r} contains characters OSC reserves (space # * , ? [ ] {{ }})")
    return p


def parse_target(spec: str) -> tuple[str, int]:
    """``"host:port"`` (or ``"[v6addr]:port"``) -> (host, port); ValueError (one line) otherwise."""
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(f"OSC target must be host:port, got {spec!r}")
    if spec.startswith("["):
        host, sep, port_s = spec[1:].partition("]:")
        if not sep:
            raise ValueError(f"OSC target must be [ipv6]:port, got {spec!r}")
    else:
        host, _, port_s = spec.rpartition(":")
    host = host.strip()
    if not host or any(c.isspace() for c in host):
        raise ValueError(f"OSC target {spec!r} has no valid host")
    try:
        port = int(port_s)
    except ValueError:
        raise ValueError(f"OSC target {spec!r}: port must be a number") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"OSC target {spec!r}: port must be in 1..65535")
    return host, port


@dataclass
class OscConfig(Checked):
    """Where and how to send; checked when made (``mer_live.common.validate``'s style)."""

    targets: list[str] = field(default_factory=lambda: ["127.0.0.1:9000"])
    prefix: str = "/mer"
    rate_hz: float = field(default=30.0, metadata=number(0.1, 1000, "a number in 0.1..1000"))
    value_range: str = "01"  #: "01" keeps [0, 1]; "pm1" sends 2v - 1 in [-1, 1]
    #: one bundle (immediate timetag) per tick instead of separate messages
    bundle: bool = field(default=False, metadata=flag())
    broadcast: bool = field(default=False, metadata=flag())  #: allow broadcast addresses (SO_BROADCAST)
    heartbeat_s: float = field(default=1.0, metadata=number(0.05, 3600, "a number of seconds in 0.05..3600"))
    warn_interval_s: float = field(default=10.0, metadata=number(0, 3600, "a number of seconds in 0..3600"))
    #: a new estimate goes out at once and the tick restarts from there, so the wire lags the model
    #: by microseconds instead of up to one period (false: a fixed-phase tick at rate_hz)
    send_on_estimate: bool = field(default=True, metadata=flag())
    #: run the sender thread with real-time scheduling when the OS allows it (``mer_live.live.realtime``)
    realtime: bool = field(default=False, metadata=flag())

    def __post_init__(self) -> None:
        t = self.targets
        check(isinstance(t, (list, tuple)) and not isinstance(t, str), "osc", "targets",
              'a list of "host:port" strings', t)
        check(bool(t), "osc", "targets", "at least one host:port", t)
        for spec in t:
            parse_target(spec)
        check_prefix(self.prefix)
        check_fields(self, "osc")
        check(self.value_range in VALUE_RANGES, "osc", "value_range", "'01' or 'pm1'", self.value_range)


def _finite(x: float, default: float, lo: float, hi: float) -> float:
    x = float(x)
    if not math.isfinite(x):
        return default
    return min(max(x, lo), hi)


def _osc_string(s: str) -> bytes:
    """An OSC-string: ASCII, NUL-terminated, NUL-padded to a multiple of 4 bytes."""
    b = s.encode("ascii") + b"\0"
    return b + b"\0" * (-len(b) % 4)


_HEADS: dict[tuple[str, str], tuple[bytes, struct.Struct]] = {}


def osc_message(address: str, tags: str, *values: float | int) -> bytes:
    """One OSC message of float32 ('f') and int32 ('i') arguments, as python-osc's builder makes
    it, from an address and type-tag head built once (why: the sender builds ~14 messages 30 times
    a second; python-osc's builder cost as much CPU as the music-presence model, docs/benchmarks.md)."""
    head = _HEADS.get((address, tags))
    if head is None:
        head = _HEADS[(address, tags)] = (_osc_string(address) + _osc_string("," + tags),
                                          struct.Struct(">" + tags))
    return head[0] + head[1].pack(*values)


def build_messages(est: Estimate | None, prefix: str, value_range: str, heartbeat: int | None = None,
                   beat_phase: float | None = None) -> list[bytes]:
    """The OSC datagrams for one tick (see the address table in docs/architecture.md).

    Values are always finite: arousal/valence are clamped to [0, 1] (NaN -> 0.5, neutral) before
    the optional ``pm1`` mapping, the level to [-120, 20] dBFS, ``level01`` to [0, 1].
    ``/bpm`` goes out once a tempo is known (``est.bpm > 0``), ``/beat_phase`` when given.
    """

    def av(v: float) -> float:
        v = _finite(v, 0.5, 0.0, 1.0)
        return 2.0 * v - 1.0 if value_range == "pm1" else v

    out: list[bytes] = []

    def add(addr: str, *args: tuple[Any, str]) -> None:
        out.append(osc_message(prefix + addr, "".join(k for _v, k in args), *(v for v, _k in args)))

    if est is not None:
        a, v = _finite(est.arousal, 0.5, 0, 1), _finite(est.valence, 0.5, 0, 1)
        level = _finite(est.level_rms_db, -120.0, -120.0, 20.0)
        add("/arousal", (av(a), "f"))
        add("/valence", (av(v), "f"))
        add("/av", (av(a), "f"), (av(v), "f"))
        add("/arousal_raw", (av(est.arousal_raw), "f"))
        add("/valence_raw", (av(est.valence_raw), "f"))
        add("/quadrant", (est.quadrant, "i"))
        add("/music", (int(est.hears_music), "i"))
        add("/level", (level, "f"))
        add("/level01", (min(1.0, max(0.0, (level - LEVEL01_FLOOR_DB) / -LEVEL01_FLOOR_DB)), "f"))
        add("/silent", (int(bool(est.silent)), "i"))
        add("/clip", (int(bool(est.clipping)), "i"))
        bpm = _finite(est.bpm, 0.0, 0.0, 1000.0)
        if bpm > 0:
            add("/bpm", (bpm, "f"))
        if beat_phase is not None:
            add("/beat_phase", (_finite(beat_phase, 0.0, 0.0, 1.0), "f"))
        add("/input", (int(bool(est.input_ok)), "i"))
    if heartbeat is not None:
        add("/heartbeat", (heartbeat, "i"))
    return out


def event_message(ev: Event, prefix: str) -> bytes:
    """``/<prefix>/<kind> i count`` for an analyser's event (a beat, an onset, a section change)."""
    return osc_message(f"{prefix}/{ev.kind}", "i", int(ev.count))


def bundle_of(dgrams: list[bytes]) -> bytes:
    """One bundle with the immediate timetag (never a future one: receivers would delay it)."""
    from pythonosc.osc_message import OscMessage

    b = OscBundleBuilder(IMMEDIATELY)
    for d in dgrams:
        b.add_content(OscMessage(d))
    return b.build().dgram


class _Target:
    """One destination: its own connected, non-blocking UDP socket and its own error state."""

    def __init__(self, spec: str, broadcast: bool, warn_interval: float) -> None:
        self.spec = spec
        self.warn_interval = warn_interval
        self.host, self.port = parse_target(spec)
        self.broadcast = broadcast
        self.sock: socket.socket | None = None
        self.sent = 0
        self.errors = 0
        self.state = "resolving"
        self.last_error = ""
        self.last_warn = -math.inf
        self.warned = False
        self.last_refused = -math.inf
        self.next_resolve = 0.0
        self._resolving = False
        self._resolved: tuple[int, Any] | None = None
        self._resolve_error = ""
        try:  # a numeric address needs no lookup: ready for the very first tick
            fam, _, _, _, addr = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM,
                                                    flags=socket.AI_NUMERICHOST)[0]
            self._resolved = (fam, addr)
        except (OSError, IndexError, UnicodeError):
            pass  # a host name: resolved in the background by ensure_socket

    def _resolve_bg(self) -> None:
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)
            fam, _, _, _, addr = infos[0]
            self._resolved = (fam, addr)
        except (OSError, IndexError, UnicodeError) as e:
            self._resolve_error = str(e) or type(e).__name__
        finally:
            self._resolving = False

    def ensure_socket(self, now: float) -> bool:
        """True when a socket is ready; otherwise starts or collects a background lookup."""
        if self.sock is not None:
            return True
        if self._resolved is not None:
            fam, addr = self._resolved
            self._resolved = None
            try:
                s = socket.socket(fam, socket.SOCK_DGRAM)
                s.setblocking(False)
                if self.broadcast:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                s.connect(addr)
            except OSError as e:
                s.close()
                self.fail(now, f"cannot connect: {self._why(e)}", "error")
                self.next_resolve = now + RESOLVE_EVERY_S
                return False
            self.sock = s
            self.state = "ok"
            if self.warned:
                log.info("OSC target %s: resolved, sending", self.spec)
                self.warned = False
            return True
        if self._resolve_error:
            self.fail(now, f"cannot resolve host {self.host!r}: {self._resolve_error}", "unresolved")
            self._resolve_error = ""
            self.next_resolve = now + RESOLVE_EVERY_S
        if not self._resolving and now >= self.next_resolve:
            self._resolving = True
            threading.Thread(target=self._resolve_bg, name="mer-osc-resolve", daemon=True).start()
        return False

    def fail(self, now: float, why: str, state: str) -> None:
        """Count an error; warn at most once per ``warn_interval`` for this target."""
        self.errors += 1
        self.state = state
        self.last_error = why
        if now - self.last_warn >= self.warn_interval:
            self.last_warn = now
            self.warned = True
            log.warning("OSC target %s: %s; still trying", self.spec, why)

    def send(self, dgrams: list[bytes], now: float) -> None:
        assert self.sock is not None
        for d in dgrams:
            try:
                self.sock.send(d)
                self.sent += 1
            except ConnectionRefusedError:
                self.last_refused = now
                self.fail(now, "nothing listening (port unreachable)", "down")
            except BlockingIOError:
                self.fail(now, "send buffer full, message dropped", "busy")
                return
            except OSError as e:
                self.fail(now, self._why(e), "error")
                return
        # A refusal arrives one send late, so "down" clears only after a quiet DOWN_CLEARS_S.
        if self.state != "ok" and now - self.last_refused > DOWN_CLEARS_S:
            self.state = "ok"
            if self.warned:
                log.info("OSC target %s: sending again", self.spec)
                self.warned = False

    def _why(self, e: OSError) -> str:
        why = e.strerror or str(e)
        if e.errno == 13 and not self.broadcast:  # EACCES: Linux refuses broadcast without SO_BROADCAST
            why += " (a broadcast address needs broadcast = true)"
        return why

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def stats(self) -> dict[str, Any]:
        return {"sent": self.sent, "errors": self.errors, "state": self.state, "last_error": self.last_error}


class OscSender:
    """Pipeline sink that sends the newest estimate at ``rate_hz`` on its own thread.

    Three clocks, all on the sender's thread:

    * values, ``rate_hz`` sends a second. With ``send_on_estimate`` (the default) a new estimate
      goes out the moment it arrives and the ticks between estimates are spaced from it; a tick
      that would fall within half a period before the next expected estimate is left out (the
      estimate takes that slot). A hop that is a whole number of periods (the default 0.1 s at
      30 Hz) thus gives exactly ``rate_hz`` evenly spaced sends a second; a hop shorter than the
      period sends every estimate. A budget of sends (``rate_hz`` a second; an estimate right after
      a tick makes the next tick wait) keeps the average at the rate when estimates come at
      irregular times (a paced file's blocks), where the slot cannot be predicted.
    * the heartbeat, every ``heartbeat_s`` on its own clock, whatever the values do.
    * events (``/beat``, ``/onset``, ``/section``, ``/drop`` with their counters) the moment the
      pipeline reports them (``event``).
    """

    part_name = "OSC"  #: how stop warnings name it (``mer_live.live.stopping``)

    def __init__(self, config: OscConfig) -> None:
        self.config = config.validate()
        self._lock = threading.Lock()
        self._targets = [self._make_target(t) for t in config.targets]
        self._latest: Estimate | None = None
        self._new = False  #: an estimate arrived that has not gone out yet
        self._events: deque[Event] = deque(maxlen=256)
        self._stop = threading.Event()
        self._wake = threading.Event()  #: set by a new estimate, an event or stop
        self._thread: threading.Thread | None = None
        self._ticks: deque[float] = deque(maxlen=256)  #: when values went out
        self._intervals: deque[float] = deque(maxlen=9)  #: recent gaps between estimates
        self._last_est: float | None = None
        self._last_beat: tuple[float, float] | None = None  #: (monotonic, bpm) of the newest beat
        self._heartbeat = 0
        self.heartbeats: deque[float] = deque(maxlen=64)  #: when heartbeats went out
        self._tick_count = 0
        #: the value datagrams of the estimate that last went out, without /beat_phase: a tick
        #: re-sends the same estimate (30 Hz over a 0.1-s hop: two ticks in three), so it is built once
        self._built_for: Estimate | None = None
        self._built: list[bytes] = []
        self._phase_addr = self.config.prefix + "/beat_phase"
        #: config.realtime: whether the sender thread got real-time scheduling (None: not asked for)
        self.realtime_active: bool | None = None

    def _make_target(self, spec: str) -> _Target:
        return _Target(spec, self.config.broadcast, self.config.warn_interval_s)

    def __call__(self, estimate: Estimate) -> None:
        """Store the newest estimate (called on the pipeline thread: returns at once)."""
        self._latest = estimate
        if self.config.send_on_estimate:
            self._new = True
            self._wake.set()

    def event(self, ev: Event) -> None:
        """Queue an analyser's event to go out at once (called on the pipeline thread)."""
        self._events.append(ev)
        self._wake.set()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="mer-osc", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sending and close the sockets; returns within about a second."""
        self._stop.set()
        self._wake.set()
        t, self._thread = self._thread, None
        if t is not None:
            t.join(1.0)
        with self._lock:
            for tg in self._targets:
                try:
                    tg.close()
                except OSError as e:  # one socket's error must not leave the others open
                    log.warning("OSC target %s: close failed: %s", tg.spec, e)

    def set_targets(self, targets: list[str]) -> None:
        """Swap the destinations while running (ValueError, nothing changed, if one is invalid)."""
        for t in targets:
            parse_target(t)
        if not targets:
            raise ValueError("osc.targets must name at least one host:port")
        with self._lock:
            keep = {t.spec: t for t in self._targets}
            new = [keep.pop(s) if s in keep else self._make_target(s) for s in dict.fromkeys(targets)]
            for old in keep.values():
                old.close()
            self._targets = new
        log.info("OSC targets: %s", ", ".join(targets))

    def stats(self) -> dict[str, Any]:
        """Targets, per-target sent/errors/state, and the value send rate over recent sends."""
        with self._lock:
            per = {t.spec: t.stats() for t in self._targets}
        ticks = list(self._ticks)
        rate = (len(ticks) - 1) / (ticks[-1] - ticks[0]) if len(ticks) >= 2 and ticks[-1] > ticks[0] else 0.0
        return {
            "targets": list(per),
            "per_target": per,
            "rate_hz": rate,
            "ticks": self._tick_count,
            "heartbeat": self._heartbeat,
        }

    def _run(self) -> None:
        if self.config.realtime:  # just below the pipeline that feeds it
            self.realtime_active = promote_or_warn("OSC sender", DEFAULT_PRIORITY - 1)
        cfg = self.config
        period = 1.0 / cfg.rate_hz
        next_tick = next_hb = credit_at = time.monotonic()
        credit = 1.0  #: sends owed: rate_hz a second, at most two banked; every value send costs one
        while not self._stop.is_set():
            self._wake.clear()
            now = time.monotonic()
            try:
                if now >= next_hb:
                    self._heartbeat += 1
                    self._send(build_messages(None, cfg.prefix, cfg.value_range, self._heartbeat), now)
                    self.heartbeats.append(now)
                    behind = now - next_hb >= cfg.heartbeat_s  # suspended? do not burst to catch up
                    next_hb = (now if behind else next_hb) + cfg.heartbeat_s
                while self._events:
                    ev = self._events.popleft()
                    if ev.kind == "beat" and ev.bpm > 0:
                        self._last_beat = (ev.wall, ev.bpm)
                    self._send([event_message(ev, cfg.prefix)], now)
                credit = min(2.0, credit + (now - credit_at) * cfg.rate_hz)
                credit_at = now
                if self._new:
                    self._new = False
                    if self._last_est is not None:
                        self._intervals.append(now - self._last_est)
                    self._last_est = now
                    self._send_values(now)
                    credit = max(-1.0, credit - 1.0)  # owe at most one tick
                    next_tick = now + period
                elif now >= next_tick:
                    exp = self._expected_estimate(period)
                    if exp is not None and exp - period / 2 < next_tick and now < exp + period / 2:
                        next_tick = exp + period / 2  # the estimate's slot; a tick if it is that late
                    elif credit < 1.0:  # estimates took the ticks' share (a late one): wait for it
                        next_tick = now + (1.0 - credit) / cfg.rate_hz
                    else:
                        self._send_values(now)
                        credit -= 1.0
                        next_tick = next_tick + period if now - next_tick < period else now + period
            except Exception as e:  # the sender must outlive any one bad tick
                log.warning("OSC send failed: %s", str(e).splitlines()[0] if str(e) else type(e).__name__)
            self._wake.wait(max(0.0, min(next_tick, next_hb) - time.monotonic()))

    def _expected_estimate(self, period: float) -> float | None:
        """When the next estimate should arrive, from the recent regular gaps (None: not regular)."""
        if not self.config.send_on_estimate or self._last_est is None or len(self._intervals) < 3:
            return None
        gap = sorted(self._intervals)[len(self._intervals) // 2]
        return self._last_est + gap if gap > period else None

    def _beat_phase(self, now: float) -> float | None:
        """0..1 through the current beat, from the newest beat and tempo (None: no recent beat)."""
        if self._last_beat is None:
            return None
        wall, bpm = self._last_beat
        beat_s = 60.0 / bpm
        if now - wall > 4 * beat_s:  # the beat stopped: no phase to follow
            return None
        return ((now - wall) / beat_s) % 1.0

    def _send_values(self, now: float) -> None:
        est = self._latest
        if est is None:
            return
        self._send(self._value_dgrams(est, self._beat_phase(now)), now)
        self._ticks.append(now)
        self._tick_count += 1

    def _value_dgrams(self, est: Estimate, phase: float | None) -> list[bytes]:
        """``build_messages(est, prefix, value_range, None, phase)``, byte for byte, from the
        estimate's datagrams built once (only /beat_phase changes from tick to tick)."""
        if est is not self._built_for:
            cfg = self.config
            self._built = build_messages(est, cfg.prefix, cfg.value_range)
            self._built_for = est
        if phase is None:
            return self._built
        # /beat_phase goes just before /input, the last value message (build_messages' order)
        return [*self._built[:-1], osc_message(self._phase_addr, "f", _finite(phase, 0.0, 0.0, 1.0)),
                self._built[-1]]

    def _send(self, dgrams: list[bytes], now: float) -> None:
        if self.config.bundle and dgrams:
            dgrams = [bundle_of(dgrams)]
        with self._lock:
            for t in self._targets:
                if t.ensure_socket(now) and dgrams:
                    t.send(dgrams, now)


# ---- registration: the [osc] section, its flags, its factory and its start-up line -------------


def _build(cfg: Any) -> OscSender | None:
    """The OSC sender for the [osc] section, or None with --no-osc."""
    if not cfg.osc_enabled:
        return None
    try:
        return OscSender(cfg.osc)
    except (OSError, ValueError) as e:
        raise StartError(f"cannot start OSC: {e}") from None


def describe_osc(cfg: Any) -> str:
    o = cfg.osc
    extra = [f"{o.rate_hz:g} Hz", f"range {o.value_range}"] + (["bundled"] if o.bundle else [])
    return f"{', '.join(o.targets)} prefix {o.prefix} ({', '.join(extra)})"


_S = "OSC"
register_output(OutputSpec(
    name="osc", order=50, build=_build, config=OscConfig,
    status=lambda _out, cfg: f"OSC: {describe_osc(cfg)}",
    flags=(
        Flag(("--osc",), dict(action="append", metavar="HOST:PORT",
                              help="send to HOST:PORT (repeatable; default 127.0.0.1:9000)"),
             ("osc", "targets"), group=_S),
        Flag(("--osc-prefix",), dict(metavar="/mer", help="address prefix"), ("osc", "prefix"), group=_S),
        Flag(("--osc-rate",), dict(type=float, metavar="HZ",
                                   help=f"sends per second (default {OscConfig().rate_hz:g})"),
             ("osc", "rate_hz"), group=_S),
        Flag(("--range",), dict(choices=("01", "pm1"), help="values on the wire: 0..1 or -1..1"),
             ("osc", "value_range"), group=_S),
        Flag(("--bundle",), dict(action="store_const", const=True, help="one OSC bundle per tick"),
             ("osc", "bundle"), group=_S),
        Flag(("--osc-fixed-rate",), dict(action="store_const", const=True, help="send only on the fixed "
                                         "tick (default: each new estimate at once, then the tick)"),
             ("osc", "send_on_estimate"), lambda v: not v, group=_S),
        Flag(("--broadcast",), dict(action="store_const", const=True, help="allow broadcast targets"),
             ("osc", "broadcast"), group=_S),
        Flag(("--no-osc",), dict(action="store_const", const=True, help="do not send OSC"),
             ("osc", "enabled"), lambda v: not v, group=_S),
    ),
))
