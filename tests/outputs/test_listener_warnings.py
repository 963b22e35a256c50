"""examples/osc_listener.py against a real OscSender: a mismatched --range is said once per
interval per address (it printed one warning per message: 2,836 in 30 s), and everything mer-live
sends now (quadrant 0 without music, /music, /level01) passes its checks."""

from __future__ import annotations

import queue
import time

import pytest

from mer_live.outputs.osc import OscConfig, OscSender
from tests.outputs.test_osc import EXAMPLES, Script, est, free_udp_port

pytestmark = pytest.mark.timeout(60)


def _collect(script: Script, seconds: float) -> list[str]:
    out, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            out.append(script.lines.get(timeout=0.05))
        except queue.Empty:
            pass
    return out


def _listen(value_range: str, *listener_args: str, seconds: float = 2.5, **est_kw) -> list[str]:
    port = free_udp_port()
    script = Script(str(EXAMPLES / "osc_listener.py"), "--port", str(port), *listener_args)
    s = OscSender(OscConfig(targets=[f"127.0.0.1:{port}"], rate_hz=30, value_range=value_range))
    try:
        script.wait_for(lambda ln: ln.startswith("listening on"))
        s(est(0.8, 0.3, **est_kw))
        s.start()
        return _collect(script, seconds)
    finally:
        s.stop()
        script.close()


def test_range_mismatch_is_said_once_per_interval() -> None:
    """pm1 on the wire, the listener expects 01: valence -0.4 is out of range on three addresses,
    ~30 times a second each; each address is said once in the (default 10-s) interval."""
    lines = _listen("pm1")
    warnings = [ln for ln in lines if ln.startswith("warning:")]
    ticks = [ln for ln in lines if ln.startswith("A ")]
    assert len(ticks) >= 30, lines[-5:]  # the values kept coming and printing
    by_address = sorted(w.split()[1] for w in warnings)
    assert by_address == ["/mer/av", "/mer/valence", "/mer/valence_raw"], warnings
    assert all("outside 0.0..1.0" in w for w in warnings)


def test_the_next_warning_counts_the_ones_not_said() -> None:
    lines = _listen("pm1", "--warn-interval", "0.5", seconds=2.0)
    valence = [ln for ln in lines if ln.startswith("warning: /mer/valence ")]
    assert 2 <= len(valence) <= 6, valence  # about one per 0.5 s, not 60
    counted = [int(m) for m in (ln.split("(")[-1].split()[0] for ln in valence[1:]) if m.isdigit()]
    assert counted and all(n >= 5 for n in counted), valence  # ~15 sends per 0.5 s left unsaid


def test_what_mer_live_sends_passes_the_checks() -> None:
    """Before any music: quadrant 0, /music 0, /level01; nothing of it is a warning."""
    lines = _listen("01", seconds=1.5, music=False)  # quadrant 0 follows from music
    assert not [ln for ln in lines if ln.startswith("warning:")], lines
    ticks = [ln for ln in lines if ln.startswith("A ")]
    assert ticks and "Q0 no music" in ticks[-1] and "music 0" in ticks[-1]
