"""OscSender over real UDP sockets on localhost, parsed back with python-osc."""

from __future__ import annotations

import logging
import math
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message import OscMessage
from pythonosc.osc_packet import OscPacket
from pythonosc.udp_client import SimpleUDPClient

from mer_live.live.records import Estimate
from mer_live.outputs.osc import OscConfig, OscSender, build_messages, parse_target
from tests.proc import LineProcess

pytestmark = pytest.mark.timeout(60)


def est(arousal: float = 0.8, valence: float = 0.3, **kw) -> Estimate:
    base = dict(
        t=1.0, wall=time.monotonic(), arousal_raw=arousal, valence_raw=valence, arousal=arousal,
        valence=valence, level_rms_db=-20.0, level_peak_db=-6.0, silent=False, clipping=False,
        input_ok=True, bad_samples=0, model_ms=1.0, latency_ms=5.0, overflows=0, hops_skipped=0,
    )
    base.update(kw)
    return Estimate(**base)


class Receiver:
    """A real UDP server socket on 127.0.0.1 that collects OSC messages (from bundles too)."""

    def __init__(self, port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(0.05)
        self.dgrams: list[bytes] = []
        self.messages: list[OscMessage] = []

    def pump(self, until, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                d = self.sock.recv(65536)
            except TimeoutError:
                d = None
            if d is not None:
                self.dgrams.append(d)
                self.messages.extend(m.message for m in OscPacket(d).messages)
            if until(self):
                return True
        return bool(until(self))

    def values(self, address: str) -> list[list]:
        return [m.params for m in self.messages if m.address == address]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def free_udp_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def has(address: str, n: int = 1):
    return lambda r: len(r.values(address)) >= n


def test_config_validation() -> None:
    assert OscConfig().validate().targets == ["127.0.0.1:9000"]
    assert parse_target("[::1]:9000") == ("::1", 9000)
    assert parse_target("lights.local:8000") == ("lights.local", 8000)
    bad = [
        dict(targets=[]),
        dict(targets="127.0.0.1:9000"),
        dict(targets=["127.0.0.1"]),
        dict(targets=["127.0.0.1:0"]),
        dict(targets=["127.0.0.1:70000"]),
        dict(targets=["127.0.0.1:abc"]),
        dict(prefix="mer"),
        dict(prefix="/mer/"),
        dict(prefix="/m er"),
        dict(rate_hz=0),
        dict(rate_hz=float("nan")),
        dict(value_range="-1..1"),
        dict(heartbeat_s=0),
    ]
    for kw in bad:
        with pytest.raises(ValueError) as e:  # checked when made (mer_live.common.validate)
            OscConfig(**kw)
        assert "\n" not in str(e.value) and ("osc" in str(e.value).lower())


def test_every_address_with_types_and_ranges(receiver: Receiver) -> None:
    s = OscSender(OscConfig(targets=[f"127.0.0.1:{receiver.port}"], rate_hz=50))
    s(est(0.8, 0.3, arousal_raw=0.9, valence_raw=0.2, level_rms_db=-18.5, clipping=True))
    s.start()
    try:
        assert receiver.pump(lambda r: has("/mer/arousal", 3)(r) and has("/mer/heartbeat")(r))
    finally:
        s.stop()
    one = {m.address: m.params for m in receiver.messages}
    assert one["/mer/arousal"] == [pytest.approx(0.8)]
    assert one["/mer/valence"] == [pytest.approx(0.3)]
    assert one["/mer/av"] == [pytest.approx(0.8), pytest.approx(0.3)]
    assert one["/mer/arousal_raw"] == [pytest.approx(0.9)]
    assert one["/mer/valence_raw"] == [pytest.approx(0.2)]
    assert one["/mer/quadrant"] == [2]
    assert one["/mer/level"] == [pytest.approx(-18.5)]
    assert one["/mer/silent"] == [0] and one["/mer/clip"] == [1] and one["/mer/input"] == [1]
    for addr in ("/mer/arousal", "/mer/valence", "/mer/level"):
        assert all(isinstance(p[0], float) for p in receiver.values(addr))
    for addr in ("/mer/quadrant", "/mer/silent", "/mer/clip", "/mer/input", "/mer/heartbeat"):
        assert all(type(p[0]) is int for p in receiver.values(addr))
    # One estimate stored, many ticks sent: the send rate does not depend on the hop.
    assert len(receiver.values("/mer/arousal")) >= 3
    beats = [p[0] for p in receiver.values("/mer/heartbeat")]
    assert beats == sorted(beats) and beats[0] >= 1
    assert not any(d.startswith(b"#bundle") for d in receiver.dgrams)


def test_pm1_range_and_prefix(receiver: Receiver) -> None:
    s = OscSender(OscConfig(targets=[f"127.0.0.1:{receiver.port}"], value_range="pm1", prefix="/show/mer"))
    s(est(0.8, 0.3))
    s.start()
    try:
        assert receiver.pump(has("/show/mer/input"))  # the last message of a tick
    finally:
        s.stop()
    assert receiver.values("/show/mer/av")[0] == [pytest.approx(0.6), pytest.approx(-0.4)]
    assert receiver.values("/show/mer/arousal")[0] == [pytest.approx(0.6)]
    assert receiver.values("/show/mer/quadrant")[0] == [2]
    assert not receiver.values("/mer/arousal")


def test_bundle_mode_immediate_timetag(receiver: Receiver) -> None:
    s = OscSender(OscConfig(targets=[f"127.0.0.1:{receiver.port}"], bundle=True))
    s(est(0.2, 0.9))
    s.start()
    try:
        assert receiver.pump(has("/mer/av", 2))
    finally:
        s.stop()
    assert receiver.dgrams and all(d.startswith(b"#bundle\0") for d in receiver.dgrams)
    b = next(OscBundle(d) for d in receiver.dgrams if b"/mer/av" in d)  # the heartbeat has its own
    assert b.dgram[8:16] == b"\0\0\0\0\0\0\0\1"  # OSC "immediately"
    addrs = {c.address for c in b}
    assert {"/mer/arousal", "/mer/valence", "/mer/av", "/mer/quadrant", "/mer/input"} <= addrs


def test_values_on_the_wire_are_always_finite() -> None:
    e = est(float("nan"), float("inf"), arousal_raw=float("-inf"), valence_raw=2.0,
            level_rms_db=float("-inf"))
    for rng in ("01", "pm1"):
        for d in build_messages(e, "/mer", rng, heartbeat=3):
            m = OscMessage(d)
            for p in m.params:
                assert math.isfinite(p), (m.address, p)
            if m.address in ("/mer/arousal", "/mer/valence", "/mer/arousal_raw", "/mer/valence_raw"):
                lo = 0.0 if rng == "01" else -1.0
                assert lo <= m.params[0] <= 1.0
    msgs = {OscMessage(d).address: OscMessage(d).params for d in build_messages(e, "/mer", "01", None)}
    assert msgs["/mer/arousal"] == [0.5]  # NaN -> neutral
    assert msgs["/mer/level"] == [-120.0]
    assert "/mer/heartbeat" not in msgs


def test_closed_port_warns_once_then_resumes(caplog) -> None:
    caplog.set_level(logging.INFO, logger="mer_live.outputs.osc")
    port = free_udp_port()
    target = f"127.0.0.1:{port}"
    s = OscSender(OscConfig(targets=[target], rate_hz=50, warn_interval_s=30))
    s(est())
    s.start()
    try:
        deadline = time.monotonic() + 5
        while s.stats()["per_target"][target]["errors"] < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        st = s.stats()["per_target"][target]
        assert st["errors"] >= 5 and st["state"] == "down", st
        warns = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warns) == 1 and target in warns[0].getMessage() and "\n" not in warns[0].getMessage()
        r = Receiver(port)  # the lighting desk comes up on that port
        try:
            assert r.pump(has("/mer/av", 3)), "sending did not resume"
            deadline = time.monotonic() + 5
            while s.stats()["per_target"][target]["state"] != "ok" and time.monotonic() < deadline:
                time.sleep(0.02)
            assert s.stats()["per_target"][target]["state"] == "ok"
        finally:
            r.close()
    finally:
        s.stop()
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    assert any("sending again" in r.getMessage() for r in caplog.records)


def test_unknown_host_is_not_fatal(receiver: Receiver, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="mer_live.outputs.osc")
    bad = "no-such-host.invalid:9000"
    good = f"127.0.0.1:{receiver.port}"
    s = OscSender(OscConfig(targets=[bad, good], rate_hz=50))
    s(est())
    s.start()
    try:
        assert receiver.pump(has("/mer/arousal", 5))
        deadline = time.monotonic() + 5
        while s.stats()["per_target"][bad]["errors"] < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        st = s.stats()
    finally:
        s.stop()
    assert st["per_target"][bad]["state"] == "unresolved" and st["per_target"][bad]["sent"] == 0
    assert st["per_target"][good]["state"] == "ok" and st["per_target"][good]["sent"] > 0
    assert st["rate_hz"] > 0 and st["targets"] == [bad, good]
    warns = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warns) == 1 and "no-such-host.invalid" in warns[0]


def test_set_targets_swaps_while_running() -> None:
    a, b = Receiver(), Receiver()
    try:
        s = OscSender(OscConfig(targets=[f"127.0.0.1:{a.port}"], rate_hz=50))
        s(est())
        s.start()
        try:
            assert a.pump(has("/mer/av"))
            with pytest.raises(ValueError):
                s.set_targets(["nonsense"])
            assert s.stats()["targets"] == [f"127.0.0.1:{a.port}"]
            s.set_targets([f"127.0.0.1:{b.port}"])
            a.pump(lambda r: False, timeout=0.1)  # drain what was sent before the swap
            n_a = len(a.messages)
            assert b.pump(has("/mer/av", 3))
            a.pump(lambda r: False, timeout=0.3)
            assert len(a.messages) == n_a, "old target still receiving after the swap"
            assert s.stats()["targets"] == [f"127.0.0.1:{b.port}"]
        finally:
            s.stop()
        assert s._thread is None
    finally:
        a.close()
        b.close()


def test_broadcast_is_opt_in(caplog) -> None:
    """To the subnet's broadcast address (read from this machine's interface): refused without
    ``broadcast`` (one warning that says why, nothing arrives), delivered with it. A receiver bound
    to 0.0.0.0 gets the kernel's local copy of the broadcast, so the datagram is seen ARRIVING."""
    from tests.conftest import missing
    from tests.net import broadcast_addresses

    found = broadcast_addresses()
    if not found:
        missing("no network interface with an IPv4 address and a broadcast address")
    iface, _addr, brd = found[0]
    caplog.set_level(logging.WARNING, logger="mer_live.outputs.osc")
    r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    r.bind(("0.0.0.0", 0))
    r.settimeout(0.05)
    port = r.getsockname()[1]
    target = f"{brd}:{port}"

    def received(seconds: float) -> list[OscMessage]:
        got, deadline = [], time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                got.extend(m.message for m in OscPacket(r.recv(65536)).messages)
            except TimeoutError:
                pass
        return got

    try:
        s = OscSender(OscConfig(targets=[target], rate_hz=50))
        s(est(0.8, 0.3))
        s.start()
        try:
            deadline = time.monotonic() + 5
            while s.stats()["per_target"][target]["errors"] < 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            late = received(0.3)
        finally:
            s.stop()
        assert s.stats()["per_target"][target]["sent"] == 0
        assert late == [], "a broadcast went out without broadcast = true"
        assert any("broadcast = true" in rec.getMessage() for rec in caplog.records)
        s = OscSender(OscConfig(targets=[target], rate_hz=50, broadcast=True))
        s(est(0.8, 0.3))
        s.start()
        try:
            got = received(1.0)
        finally:
            s.stop()
    finally:
        r.close()
    arousal = [m.params[0] for m in got if m.address == "/mer/arousal"]
    assert arousal, f"nothing arrived from the broadcast to {target} ({iface}): {s.stats()['per_target']}"
    assert arousal[0] == pytest.approx(0.8)


# -- the examples (they double as docs, so they must work) -------------------------------------
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


class Script(LineProcess):
    """An example script in a subprocess; its stdout lines arrive on a queue (reads never hang)."""

    def __init__(self, *args: str) -> None:
        p = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, bufsize=1)
        super().__init__(p, p.stdout)

    def wait_for(self, pred, timeout: float = 10.0) -> str:
        line = self.next_matching(pred, timeout)
        if line is None:
            raise AssertionError(f"no matching line within {timeout} s; got {self.seen[-5:]}")
        return line

    def close(self) -> None:
        self.p.terminate()
        try:
            self.p.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait(timeout=3)


def test_listener_example_prints_ticks_and_flags_bad_messages() -> None:
    port = free_udp_port()
    script = Script(str(EXAMPLES / "osc_listener.py"), "--port", str(port), "--range", "pm1")
    s = OscSender(OscConfig(targets=[f"127.0.0.1:{port}"], rate_hz=20, value_range="pm1"))
    try:
        script.wait_for(lambda ln: ln.startswith("listening on 127.0.0.1"))
        s(est(0.8, 0.3, level_rms_db=-12.0))
        s.start()
        line = script.wait_for(lambda ln: ln.startswith("A "))
        assert "A +0.600  V -0.400" in line and "Q2" in line and "-12.0 dBFS" in line and "input 1" in line
        SimpleUDPClient("127.0.0.1", port).send_message("/mer/arousal", [3.5])
        bad = script.wait_for(lambda ln: ln.startswith("warning:"))
        assert "/mer/arousal" in bad and "outside" in bad
        script.wait_for(lambda ln: ln.startswith("A "))  # still listening after the bad message
    finally:
        s.stop()
        script.close()


def test_color_mapping() -> None:
    sys.path.insert(0, str(EXAMPLES))
    try:
        from osc_to_color import av_to_rgb
    finally:
        sys.path.remove(str(EXAMPLES))
    r, g, b = av_to_rgb(0.0, 0.0)  # sad and calm: dim blue
    assert b > r and b > g and max(r, g, b) < 100
    r, g, b = av_to_rgb(1.0, 1.0)  # happy and energetic: bright yellow
    assert r > 200 and g > 200 and b < 50
    assert sum(av_to_rgb(1.0, 0.5)) > sum(av_to_rgb(0.0, 0.5))  # arousal brightens
    assert all(0 <= c <= 255 for c in av_to_rgb(float("nan"), 7.0))


def test_color_example_forwards_rgb(receiver: Receiver) -> None:
    port = free_udp_port()
    script = Script(str(EXAMPLES / "osc_to_color.py"), "--port", str(port),
                    "--forward", f"127.0.0.1:{receiver.port}")
    s = OscSender(OscConfig(targets=[f"127.0.0.1:{port}"], rate_hz=20))
    try:
        script.wait_for(lambda ln: ln.startswith("listening on"))
        s(est(1.0, 1.0))
        s.start()
        line = script.wait_for(lambda ln: ln.startswith("A 1.000 V 1.000 -> RGB"))
        assert receiver.pump(has("/light/rgb"))
    finally:
        s.stop()
        script.close()
    r, g, b = receiver.values("/light/rgb")[0]
    assert all(type(c) is int for c in (r, g, b))
    assert f"#{r:02x}{g:02x}{b:02x}" in line
    assert r > 200 and g > 200 and b < 50


def test_first_tick_reaches_a_numeric_target(receiver: Receiver) -> None:
    s = OscSender(OscConfig(targets=[f"127.0.0.1:{receiver.port}"], rate_hz=20))
    s.start()
    try:
        assert receiver.pump(has("/mer/heartbeat"))
    finally:
        s.stop()
    assert receiver.values("/mer/heartbeat")[0] == [1]
    assert not receiver.values("/mer/arousal")  # no estimate yet: only the heartbeat


@pytest.mark.parametrize("on_estimate", [True, False])
def test_new_estimate_goes_out_at_once_unless_fixed_rate(receiver: Receiver, on_estimate: bool) -> None:
    """At 2 Hz a fixed tick leaves a new estimate waiting up to 0.5 s; send_on_estimate sends it
    the moment it arrives, and the tick then repeats it at the configured rate."""
    s = OscSender(OscConfig(targets=[f"127.0.0.1:{receiver.port}"], rate_hz=2.0,
                            send_on_estimate=on_estimate))
    s(est(0.2, 0.5))
    s.start()
    try:
        assert receiver.pump(has("/mer/arousal"))
        lags = []
        for i, a in enumerate((0.61, 0.62, 0.63, 0.64)):
            time.sleep(0.13 + 0.07 * i)  # lands at varied phases of the 0.5 s tick
            t0 = time.monotonic()
            s(est(a, 0.5))
            got = lambda r, a=a: any(p[0] == pytest.approx(a) for p in r.values("/mer/arousal"))  # noqa: E731
            assert receiver.pump(got)
            lags.append(time.monotonic() - t0)
        n0 = len(receiver.values("/mer/arousal"))
        time.sleep(1.6)
        receiver.pump(lambda r: False, timeout=0.1)
        repeats = len(receiver.values("/mer/arousal")) - n0
    finally:
        s.stop()
    if on_estimate:
        assert max(lags) < 0.1, lags
    else:
        assert max(lags) > 0.15, lags  # waited for the fixed tick at least once
    assert 2 <= repeats <= 5  # between estimates: the 2 Hz tick repeats the latest value


def _feed_estimates(sender: OscSender, hop_s: float, seconds: float, stop: threading.Event) -> None:
    """A pipeline stand-in: an estimate every ``hop_s`` on an anchored clock, each 0-20 ms late as
    live estimates are (PulseAudio delivers audio in ~20-ms bursts, so the boundary's audio comes
    at varied times after the boundary)."""
    rng = np.random.default_rng(3)
    t0 = time.monotonic()
    k = 0
    while not stop.is_set() and k * hop_s < seconds:
        sender(est(0.5 + 0.001 * k, 0.5))
        k += 1
        stop.wait(max(0.0, t0 + k * hop_s + rng.uniform(0.0, 0.02) - time.monotonic()))


def test_heartbeat_has_its_own_one_second_clock(receiver: Receiver) -> None:
    """Heartbeats come every 1.00 s on their own clock, not on the value ticks (a 7.3 Hz tick
    would put them up to 0.137 s late), and the first one at start."""
    s = OscSender(OscConfig(targets=[f"127.0.0.1:{receiver.port}"], rate_hz=7.3, send_on_estimate=False))
    s(est())
    s.start()
    try:
        assert receiver.pump(has("/mer/heartbeat", 5), timeout=10.0)
    finally:
        s.stop()
    sent = list(s.heartbeats)
    gaps = [b - a for a, b in zip(sent, sent[1:], strict=False)]
    assert len(gaps) >= 4
    assert abs(sum(gaps) / len(gaps) - 1.0) < 0.003, gaps  # anchored: no drift
    assert sorted(abs(g - 1.0) for g in gaps)[len(gaps) // 2] < 0.01, gaps
    assert [p[0] for p in receiver.values("/mer/heartbeat")][:5] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("rate", [30.0, 20.0])
def test_value_rate_is_the_configured_one_with_estimates_every_hop(receiver: Receiver, rate: float) -> None:
    """Estimates every 0.1 s go out at once AND the rate stays what the config says (it was ~31.3
    sends a second for 30: the tick after each estimate's jitter added an extra send)."""
    s = OscSender(OscConfig(targets=[f"127.0.0.1:{receiver.port}"], rate_hz=rate))
    stop = threading.Event()
    feeder = threading.Thread(target=_feed_estimates, args=(s, 0.1, 4.2, stop))
    s.start()
    feeder.start()
    t_start = time.monotonic()
    arrivals: list[float] = []
    try:
        while time.monotonic() - t_start < 4.0:
            try:
                d = receiver.sock.recv(65536)
            except TimeoutError:
                continue
            if OscMessage(d).address == "/mer/arousal":
                arrivals.append(time.monotonic())
    finally:
        stop.set()
        feeder.join(2)
        s.stop()
    span = [a for a in arrivals if t_start + 1.0 <= a < t_start + 4.0]  # 3 s after a settling second
    assert abs(len(span) / 3.0 - rate) <= 1.0, (len(span), rate)
    # the sender's own measure spans its first second too, before the estimates' rhythm is known
    assert s.stats()["rate_hz"] == pytest.approx(rate, abs=2.0)
