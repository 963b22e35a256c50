"""The OSC bytes mer-live builds itself are python-osc's bytes, for every message it sends.

Why: ``osc.osc_message`` replaced python-osc's message builder on the hot path (it cost as much
CPU as the music-presence model); receivers must not see one byte of difference."""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from mer_live.live.records import Estimate, Event
from mer_live.outputs.osc import build_messages, event_message, osc_message


def reference(dgram: bytes) -> bytes:
    """The same message rebuilt by python-osc from what it parses out of ``dgram``."""
    m = OscMessage(dgram)
    b = OscMessageBuilder(address=m.address)
    for tag, value in zip(m.dgram.split(b",", 1)[1].split(b"\0", 1)[0].decode(), m.params, strict=True):
        b.add_arg(value, tag)
    return b.build().dgram


@pytest.mark.parametrize("prefix", ["/mer", "/show/mer", "/a", "/abcd"])
@pytest.mark.parametrize("value_range", ["01", "pm1"])
def test_every_value_message_is_python_oscs(prefix: str, value_range: str) -> None:
    rng = np.random.default_rng(len(prefix))
    for i in range(200):
        a, v, ar, vr = rng.uniform(-0.2, 1.2, 4)
        e = Estimate(t=i * 0.1, wall=time.monotonic(), arousal_raw=ar, valence_raw=vr, arousal=a, valence=v,
                     level_rms_db=float(rng.uniform(-130, 25)), level_peak_db=-3.0, silent=bool(i % 3),
                     clipping=bool(i % 5 == 0), input_ok=bool(i % 7), bad_samples=0, model_ms=1.0,
                     latency_ms=1.0, overflows=0, hops_skipped=0, music=bool(i % 2), music_prob=0.5,
                     bpm=float(rng.choice([0.0, 127.3, math.nan])), beats=i)
        dgrams = build_messages(e, prefix, value_range, heartbeat=i if i % 4 == 0 else None,
                                beat_phase=None if i % 3 else float(rng.uniform(0, 1)))
        assert len(dgrams) >= 12
        for d in dgrams:
            assert len(d) % 4 == 0 and d == reference(d)
    ev = Event("beat", 2**31 - 1, 1.0, 1.0)
    assert event_message(ev, prefix) == reference(event_message(ev, prefix))


def test_known_bytes() -> None:
    assert osc_message("/mer/music", "i", 1) == b"/mer/music\0\0,i\0\0\0\0\0\1"
    assert osc_message("/mer/av", "ff", 0.5, 1.0) == b"/mer/av\0,ff\0\x3f\0\0\0\x3f\x80\0\0"


@pytest.mark.parametrize("value_range", ["01", "pm1"])
def test_sender_reuses_an_estimates_datagrams_byte_for_byte(value_range: str) -> None:
    """The sender builds an estimate's datagrams once and re-sends them on the ticks between
    estimates, adding only /beat_phase (issue #28): every tick's bytes must be build_messages'."""
    from mer_live.outputs.osc import OscConfig, OscSender

    rng = np.random.default_rng(7)
    s = OscSender(OscConfig(targets=["127.0.0.1:9"], prefix="/show/mer", value_range=value_range))
    for i in range(60):
        a, v = rng.uniform(-0.2, 1.2, 2)
        e = Estimate(t=i * 0.1, wall=1.0, arousal_raw=a, valence_raw=v, arousal=a, valence=v,
                     level_rms_db=float(rng.uniform(-130, 25)), level_peak_db=-3.0, silent=bool(i % 3),
                     clipping=bool(i % 5 == 0), input_ok=bool(i % 7), bad_samples=0, model_ms=1.0,
                     latency_ms=1.0, overflows=0, hops_skipped=0, music=bool(i % 2), music_prob=0.5,
                     bpm=float(rng.choice([0.0, 127.3, math.nan])))
        for phase in (None, float(rng.uniform(0, 1)), None, math.nan, 1.5, float(rng.uniform(0, 1))):
            want = build_messages(e, "/show/mer", value_range, None, phase)
            assert s._value_dgrams(e, phase) == want
    # the next estimate (a new object) is rebuilt, not mistaken for the last one
    e2 = dataclasses.replace(e, arousal=0.25, music=not e.music)
    assert s._value_dgrams(e2, 0.5) == build_messages(e2, "/show/mer", value_range, None, 0.5)
    assert s._value_dgrams(e2, 0.5) != build_messages(e, "/show/mer", value_range, None, 0.5)
