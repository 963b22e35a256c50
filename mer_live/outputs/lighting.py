"""Direct lighting output: emotion sets the colour, the beat flashes it, sent as sACN or Art-Net.

Why: turning /mer/av into light used to need a console or a bridge script
(examples/osc_to_color.py). This sink drives DMX fixtures itself: ``LightingOutput`` is a
pipeline sink (``sink(estimate)`` stores, ``event(ev)`` notes beats) with its own thread that
renders one DMX frame per ``1 / fps`` and hands it to the protocol library (``sacn`` for
E1.31, ``stupidartnet`` for Art-Net). Nothing is sent unless ``[lighting]`` is enabled and names
a target; the target is unicast unless ``broadcast = true`` is asked for (Art-Net broadcast,
sACN multicast); on stop every channel goes to 0 (blackout) before the socket closes.

The mapping is one pure function, ``light_state`` (documented in docs/show.md):

- hue from valence: ``hue_sad`` (240 deg, blue) at valence 0 to ``hue_happy`` (60 deg, yellow) at
  valence 1, through cyan and green;
- saturation from arousal: ``saturation_min`` at arousal 0 to 1 at arousal 1 (calm: pastel);
- intensity from arousal: ``intensity_min`` .. ``intensity_max``, scaled by the input level
  (``level_weight`` of it follows ``level_floor_db`` .. ``level_ceil_db``), plus a beat flash of
  ``beat_flash`` that decays with ``beat_decay_s``; ``idle_intensity`` while no music plays.

``dmx_frame`` lays the state onto the fixtures: ``dimmer`` 1 channel (intensity), ``rgb`` 3,
``rgbw`` 4 (white = the common part of r, g, b), 0..255 each.
"""

from __future__ import annotations

import colorsys
import ipaddress
import logging
import math
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from mer_live.common.validate import ShowConfigError, check, config_from_dict
from mer_live.live.records import Estimate, Event
from mer_live.live.stopping import describe
from mer_live.registry import OutputSpec, register_output

log = logging.getLogger(__name__)

PROTOCOLS = ("sacn", "artnet")
FIXTURE_WIDTH = {"dimmer": 1, "rgb": 3, "rgbw": 4}
_BROKEN: list[Any] = []  #: senders whose close raised (never collected, see LightingOutput.stop)


@dataclass(frozen=True)
class Fixture:
    """One DMX fixture: where its channels start and what they mean."""

    name: str
    address: int  #: first DMX channel, 1..512
    kind: str = "rgb"  #: dimmer | rgb | rgbw

    @property
    def width(self) -> int:
        return FIXTURE_WIDTH[self.kind]


@dataclass(frozen=True)
class LightMapping:
    """``[lighting.mapping]``: how arousal, valence, level and beat become colour and intensity."""

    hue_sad: float = 240.0  #: hue in degrees at valence 0 (blue)
    hue_happy: float = 60.0  #: hue at valence 1 (yellow)
    saturation_min: float = 0.35  #: saturation at arousal 0 (1.0 at arousal 1)
    intensity_min: float = 0.25  #: intensity at arousal 0
    intensity_max: float = 1.0  #: intensity at arousal 1
    level_weight: float = 0.0  #: 0: level ignored; 1: intensity fully follows the input level
    level_floor_db: float = -50.0  #: input RMS (dBFS) at which the level factor is 0
    level_ceil_db: float = -10.0  #: ... and 1
    beat_flash: float = 0.3  #: intensity added on a beat
    beat_decay_s: float = 0.15  #: time constant of the flash's decay
    idle_intensity: float = 0.1  #: intensity while no music plays (0: dark)

    def __post_init__(self) -> None:
        s = "lighting.mapping"
        for k in ("hue_sad", "hue_happy"):
            v = getattr(self, k)
            check(0.0 <= v <= 360.0, s, k, "a hue in degrees 0..360", v)
        for k in ("saturation_min", "intensity_min", "intensity_max", "level_weight", "beat_flash",
                  "idle_intensity"):
            v = getattr(self, k)
            check(0.0 <= v <= 1.0, s, k, "a number in 0..1", v)
        check(self.intensity_min <= self.intensity_max, s, "intensity_min",
              f"<= intensity_max ({self.intensity_max})", self.intensity_min)
        check(-120.0 <= self.level_floor_db < self.level_ceil_db <= 0.0, s, "level_floor_db",
              f"a level in -120..0 dBFS below level_ceil_db ({self.level_ceil_db})", self.level_floor_db)
        check(0.0 < self.beat_decay_s <= 10.0, s, "beat_decay_s", "seconds in (0, 10]", self.beat_decay_s)


@dataclass(frozen=True)
class LightingConfig:
    """``[lighting]``: where DMX goes, which fixtures, and the mapping. Off unless enabled."""

    enabled: bool = False
    protocol: str = "sacn"  #: sacn (E1.31) | artnet
    host: str = ""  #: the node or console to send to (unicast)
    broadcast: bool = False  #: artnet: allow a broadcast host; sacn: send to the universe's multicast group
    universe: int = 1  #: sacn 1..63999, artnet 0..32767 (15-bit port-address)
    fps: float = 30.0  #: frames per second (DMX refreshes at most ~44 Hz)
    bind: str = ""  #: local address to send from ("": any)
    source_name: str = "mer-live"  #: sACN source name shown on consoles
    priority: int = 100  #: sACN priority 0..200
    fixtures: tuple[Fixture, ...] = ()
    mapping: LightMapping = field(default_factory=LightMapping)

    def __post_init__(self) -> None:
        s = "lighting"
        check(self.protocol in PROTOCOLS, s, "protocol", "sacn or artnet", self.protocol)
        lo, hi = (1, 63999) if self.protocol == "sacn" else (0, 32767)
        check(lo <= self.universe <= hi, s, "universe", f"in {lo}..{hi} for {self.protocol}", self.universe)
        check(1.0 <= self.fps <= 44.0, s, "fps", "a number in 1..44", self.fps)
        check(0 <= self.priority <= 200, s, "priority", "in 0..200", self.priority)
        if self.enabled:
            needs_host = not (self.protocol == "sacn" and self.broadcast)
            check(bool(self.host) or not needs_host, s, "host",
                  "the node's address (or, for sacn, broadcast = true for multicast)", self.host)
            check(bool(self.fixtures), s, "fixtures", "at least one fixture when enabled",
                  list(self.fixtures))
        if self.host:
            kind = address_kind(self.host)
            check(kind == "unicast" or self.broadcast, s, "host",
                  f"a unicast address (it is {kind}; set broadcast = true to send there)", self.host)
        for i, f in enumerate(self.fixtures):
            check(f.kind in FIXTURE_WIDTH, s, f"fixtures[{i}].kind", "dimmer, rgb or rgbw", f.kind)
            check(1 <= f.address <= 512 - f.width + 1, s, f"fixtures[{i}].address",
                  f"a DMX address in 1..{512 - f.width + 1} (a {f.kind} fixture uses {f.width} channels)",
                  f.address)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> LightingConfig:
        """From the ``[lighting]`` TOML table (fixtures as ``[[lighting.fixtures]]``)."""
        if data is not None and not isinstance(data, dict):
            raise ShowConfigError(f"[lighting] must be a table of keys, got {data!r}")
        d = dict(data or {})
        fx = d.pop("fixtures", [])
        check(isinstance(fx, list), "lighting", "fixtures", "a list of {name, address, kind} tables", fx)
        fixtures = []
        for i, f in enumerate(fx):
            if not isinstance(f, dict):
                raise ShowConfigError(f"[lighting] fixtures[{i}] must be a table {{name, address, kind}}, "
                                      f"got {f!r}")
            unknown = sorted(set(f) - {"name", "address", "kind"})
            if unknown:
                raise ShowConfigError(f"[lighting] fixtures[{i}]: unknown key {unknown[0]!r} "
                                      "(known: address, kind, name)")
            addr = f.get("address")
            check(isinstance(addr, int) and not isinstance(addr, bool), "lighting", f"fixtures[{i}].address",
                  "a DMX address in 1..512", addr)
            kind = f.get("kind", "rgb")
            check(kind in FIXTURE_WIDTH, "lighting", f"fixtures[{i}].kind", "dimmer, rgb or rgbw", kind)
            fixtures.append(Fixture(name=str(f.get("name", f"fixture {i + 1}")), address=addr, kind=kind))
        mapping = config_from_dict(LightMapping, d.pop("mapping", None), "lighting.mapping")
        return config_from_dict(cls, {**d, "fixtures": tuple(fixtures), "mapping": mapping}, "lighting")


def address_kind(host: str) -> str:
    """'unicast', 'broadcast' or 'multicast' for a literal IPv4/IPv6 address; names count as unicast.

    Without the netmask a x.x.x.255 address is taken for a broadcast (the usual /24 case).
    """
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return "unicast"
    if ip.is_multicast:
        return "multicast"
    if ip.version == 4 and (str(ip) == "255.255.255.255" or str(ip).endswith(".255")):
        return "broadcast"
    return "unicast"


@dataclass(frozen=True)
class LightState:
    """Colour at full brightness (0..1 each) and intensity (0..1)."""

    r: float
    g: float
    b: float
    intensity: float


def _unit(x: float, default: float = 0.5) -> float:
    return min(max(x, 0.0), 1.0) if math.isfinite(x) else default


def light_state(arousal: float, valence: float, level_db: float, since_beat_s: float, music: bool,
                m: LightMapping) -> LightState:
    """The mapping (a pure function): arousal/valence in [0, 1], input level in dBFS, seconds since
    the last beat (inf: none), whether music plays -> colour and intensity. See the module doc."""
    a, v = _unit(arousal), _unit(valence)
    hue = (m.hue_sad + (m.hue_happy - m.hue_sad) * v) % 360.0
    sat = m.saturation_min + (1.0 - m.saturation_min) * a
    r, g, b = colorsys.hsv_to_rgb(hue / 360.0, sat, 1.0)
    if not music:
        return LightState(r, g, b, m.idle_intensity)
    inten = m.intensity_min + (m.intensity_max - m.intensity_min) * a
    if m.level_weight > 0:
        lf = _unit((level_db - m.level_floor_db) / (m.level_ceil_db - m.level_floor_db), 0.0)
        inten *= 1.0 - m.level_weight + m.level_weight * lf
    if since_beat_s >= 0 and math.isfinite(since_beat_s):
        inten += m.beat_flash * math.exp(-since_beat_s / m.beat_decay_s)
    return LightState(r, g, b, _unit(inten, 0.0))


def fixture_values(state: LightState, kind: str) -> list[int]:
    """One fixture's channel values 0..255 for ``state``."""
    i = state.intensity
    if kind == "dimmer":
        return [round(255 * i)]
    r, g, b = state.r * i, state.g * i, state.b * i
    if kind == "rgbw":
        w = min(r, g, b)
        return [round(255 * x) for x in (r - w, g - w, b - w, w)]
    return [round(255 * x) for x in (r, g, b)]


def dmx_frame(state: LightState | None, fixtures: tuple[Fixture, ...] | list[Fixture]) -> bytearray:
    """A 512-channel DMX frame with each fixture's values at its address (all 0 for ``None``)."""
    frame = bytearray(512)
    if state is None:
        return frame
    for f in fixtures:
        vals = fixture_values(state, f.kind)
        frame[f.address - 1:f.address - 1 + len(vals)] = bytes(vals)
    return frame


class _SacnSender:
    """E1.31 through the ``sacn`` library (its own thread sends changed frames at ``fps``).

    Bound to an ephemeral port (never 5568: a receiver on the same host would get our packets on
    our own socket), universe discovery off (it broadcasts), never ``flush()`` (it multicasts a
    sync packet): unicast means unicast.
    """

    def __init__(self, c: LightingConfig) -> None:
        import sacn

        self.universe = c.universe
        self.sender = sacn.sACNsender(bind_address=c.bind or "0.0.0.0", bind_port=0,
                                      source_name=c.source_name[:63], fps=int(round(c.fps)),
                                      universeDiscovery=False)
        self.sender.activate_output(c.universe)
        out = self.sender[c.universe]
        out.priority = c.priority
        if c.broadcast and not c.host:
            out.multicast = True
        else:
            out.multicast = address_kind(c.host) == "multicast"
            out.destination = c.host
        self.sender.start()

    def send(self, frame: bytes) -> None:
        self.sender[self.universe].dmx_data = tuple(frame)

    def close(self, fps: float) -> None:
        """Blackout, stream-terminated packets, then the library's stop: in a ``finally``, since its
        sending thread is not a daemon and would keep the process alive whatever went wrong before."""
        try:
            out = self.sender[self.universe]
            if out is None:  # the library answers None for a universe it does not send
                raise KeyError(f"universe {self.universe} is not an active output")
            out.dmx_data = tuple(bytes(512))
            # The library's thread sends a changed frame within a frame and then clears its private
            # ``_changed``; wait for that (a loaded machine may take longer than three frames), but
            # never longer than half a second: the stop has a deadline (mer_live.live.stopping).
            deadline = time.monotonic() + max(3.0 / fps, 0.5)
            time.sleep(1.0 / fps)
            while getattr(out, "_changed", False) and time.monotonic() < deadline:
                time.sleep(0.005)
            self.sender.deactivate_output(self.universe)  # three stream-terminated packets (E1.31)
        finally:
            self.sender.stop()


class _ArtnetSender:
    """Art-Net ArtDmx through ``stupidartnet``; sent from our thread (its own thread unused).

    The packet is the library's (header + buffer); the datagram goes out through its socket
    here because its ``show()`` prints socket errors to stdout on every frame instead of raising.
    """

    def __init__(self, c: LightingConfig) -> None:
        from stupidArtnet import StupidArtnet

        self.node = StupidArtnet(c.host, c.universe, 512, int(round(c.fps)), True, c.broadcast,
                                 source_address=(c.bind, 0) if c.bind else None)

    def send(self, frame: bytes) -> None:
        self.node.set(bytearray(frame))
        self.node.socket_client.sendto(bytes(self.node.packet_header) + bytes(self.node.buffer),
                                       (self.node.target_ip, self.node.port))

    def close(self, fps: float) -> None:
        """Three blackout frames, each tried even if one failed, then the socket closes (``finally``)."""
        first: Exception | None = None
        try:
            for _ in range(3):  # UDP may drop one: three blackout frames, a frame apart
                try:
                    self.send(bytes(512))
                except Exception as e:  # noqa: BLE001 - raised below, after the other two tries
                    first = first or e
                time.sleep(1.0 / fps)
        finally:
            self.node.close()
        if first is not None:
            raise first


class LightingOutput:
    """Pipeline sink that drives the fixtures: ``sink(estimate)``, ``event(ev)``, ``start``/``stop``.

    ``sink`` and ``event`` only store (return at once); the thread renders ``dmx_frame`` at
    ``fps`` from the newest estimate and the last beat, and sends it. A send that fails (network
    down) is warned about once and retried each frame; the show goes on.
    """

    def __init__(self, config: LightingConfig, clock: Any = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self._latest: Estimate | None = None
        self._last_beat_wall = -math.inf
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sender: _SacnSender | _ArtnetSender | None = None
        self.frames_sent = 0
        self.last_frame = bytearray(512)
        self.error = ""

    def __call__(self, estimate: Estimate) -> None:
        self._latest = estimate

    def event(self, ev: Event) -> None:
        if ev.kind == "beat":
            self._last_beat_wall = ev.wall

    def start(self) -> None:
        """Open the sender and start the frame thread; a bad host is a one-line ``OSError``."""
        c = self.config
        if not c.enabled or self._thread is not None:
            return
        if c.host:
            try:
                socket.getaddrinfo(c.host, None)
            except OSError as e:
                raise OSError(f"[lighting] host {c.host!r} cannot be resolved: {e.strerror or e}") from None
        try:
            self._sender = _SacnSender(c) if c.protocol == "sacn" else _ArtnetSender(c)
        except OSError as e:
            raise OSError(f"[lighting] cannot open the {c.protocol} sender (bind {c.bind or 'any'!r}): "
                          f"{e.strerror or e}") from None
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="mer-lighting", daemon=True)
        self._thread.start()

    def frame_now(self) -> bytearray:
        """The frame the thread would send now (also what a test can compare against)."""
        e = self._latest
        if e is None:
            return dmx_frame(None, self.config.fixtures)
        st = light_state(e.arousal, e.valence, e.level_rms_db, self.clock() - self._last_beat_wall,
                         e.music, self.config.mapping)
        return dmx_frame(st, self.config.fixtures)

    def _run(self) -> None:
        period = 1.0 / self.config.fps
        nxt = time.monotonic()
        while not self._stop.is_set():
            frame = self.frame_now()
            try:
                assert self._sender is not None
                self._sender.send(bytes(frame))
                self.frames_sent += 1
                self.last_frame = frame
                if self.error:
                    log.warning("lighting: sending again")
                    self.error = ""
            except Exception as e:  # noqa: BLE001 - OSError, or whatever the library raises: the show goes on
                if not self.error:
                    log.warning("lighting: send to %s failed: %s (retrying each frame)", self.config.host,
                                e if isinstance(e, OSError) else describe(e))
                self.error = str(e)
            nxt += period
            delay = nxt - time.monotonic()
            if delay < -period:  # fell behind (machine busy): do not burst to catch up
                nxt = time.monotonic()
                delay = 0.0
            self._stop.wait(max(0.0, delay))

    @property
    def part_name(self) -> str:
        """How stop warnings name this output (``mer_live.live.stopping``)."""
        c = self.config
        return f"lighting ({c.protocol} to {c.host or 'multicast'})"

    def stop(self) -> None:
        """Blackout, then close; whatever the library raises, its own stop still runs (a warning
        names the output). Safe to call twice."""
        th, self._thread = self._thread, None
        if th is None:
            return
        self._stop.set()
        th.join(timeout=1.0)
        sender, self._sender = self._sender, None
        self.last_frame = bytearray(512)
        if sender is not None:
            try:
                sender.close(self.config.fps)
            except Exception as e:  # noqa: BLE001 - any library error: warn, the process goes on stopping
                _BROKEN.append(sender)  # kept: the library's __del__ would retry the stop that failed
                log.warning("%s: blackout or close failed: %s", self.part_name, describe(e))


# ---- registration: the [lighting] section (nested tables) and the factory ------------------------

register_output(OutputSpec(
    name="lighting", order=110, config=LightingConfig, from_dict=LightingConfig.from_dict,
    build=lambda cfg: LightingOutput(cfg.lighting) if cfg.lighting.enabled else None,
))
