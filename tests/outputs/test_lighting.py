"""Lighting output: the mapping, the config's one-line errors, and real sACN / Art-Net frames
decoded by an independent receiver (olad) on loopback, with blackout on stop."""

from __future__ import annotations

import math
import time

import pytest

from mer_live.common.validate import ShowConfigError
from mer_live.live.records import Estimate, Event
from mer_live.outputs.lighting import (
    Fixture,
    LightingConfig,
    LightingOutput,
    LightMapping,
    LightState,
    address_kind,
    dmx_frame,
    fixture_values,
    light_state,
)
from tests.olad import ARTNET_UNIVERSE, SACN_UNIVERSE, olad  # noqa: F401


def estimate(arousal: float = 0.5, valence: float = 0.5, music: bool = True,
             level: float = -20.0) -> Estimate:
    return Estimate(t=1.0, wall=time.monotonic(), arousal_raw=arousal, valence_raw=valence,
                    arousal=arousal, valence=valence, level_rms_db=level, level_peak_db=level + 6,
                    silent=False, clipping=False, input_ok=True, bad_samples=0, model_ms=1.0,
                    latency_ms=2.0, overflows=0, hops_skipped=0, music=music)


FIXTURES = [
    {"name": "wash", "address": 1, "kind": "rgb"},
    {"name": "par", "address": 10, "kind": "dimmer"},
    {"name": "bar", "address": 509, "kind": "rgbw"},
]


# ----------------------------------------------------------------------------- the mapping


def test_valence_turns_the_hue_from_blue_to_yellow_and_arousal_brightens() -> None:
    m = LightMapping(beat_flash=0.0)
    sad = light_state(0.5, 0.0, -20, math.inf, True, m)
    happy = light_state(0.5, 1.0, -20, math.inf, True, m)
    assert sad.b > 0.99 and sad.r < sad.b and sad.g < sad.b  # blue
    assert happy.r > 0.99 and happy.g > 0.99 and happy.b < happy.r  # yellow
    calm, wild = light_state(0.0, 0.5, -20, math.inf, True, m), light_state(1.0, 0.5, -20, math.inf, True, m)
    assert calm.intensity == pytest.approx(m.intensity_min)
    assert wild.intensity == pytest.approx(m.intensity_max)
    assert min(calm.r, calm.g, calm.b) > min(wild.r, wild.g, wild.b)  # calm is paler (less saturated)


def test_beat_flash_decays_and_idle_without_music() -> None:
    m = LightMapping(intensity_min=0.2, intensity_max=0.6, beat_flash=0.3, beat_decay_s=0.1)
    on = light_state(0.0, 0.5, -20, 0.0, True, m).intensity
    later = light_state(0.0, 0.5, -20, 0.1, True, m).intensity
    none = light_state(0.0, 0.5, -20, math.inf, True, m).intensity
    assert on == pytest.approx(0.5) and none == pytest.approx(0.2)
    assert later == pytest.approx(0.2 + 0.3 / math.e)
    assert light_state(1.0, 0.5, -20, 0.0, False, m).intensity == pytest.approx(m.idle_intensity)


def test_level_weight_dims_quiet_music_and_values_are_clamped() -> None:
    m = LightMapping(level_weight=1.0, level_floor_db=-50, level_ceil_db=-10, beat_flash=0.0)
    assert light_state(1.0, 0.5, -60, math.inf, True, m).intensity == 0.0
    assert light_state(1.0, 0.5, -30, math.inf, True, m).intensity == pytest.approx(0.5)
    st = light_state(float("nan"), 7.0, -10, math.inf, True, m)
    assert 0.0 <= st.intensity <= 1.0 and all(0.0 <= c <= 1.0 for c in (st.r, st.g, st.b))


def test_fixture_channels() -> None:
    st = LightState(1.0, 0.5, 0.25, 0.8)
    assert fixture_values(st, "dimmer") == [204]
    assert fixture_values(st, "rgb") == [204, 102, 51]
    assert fixture_values(st, "rgbw") == [153, 51, 0, 51]  # white takes the common part
    frame = dmx_frame(st, [Fixture("a", 1, "rgb"), Fixture("b", 509, "rgbw")])
    assert len(frame) == 512 and list(frame[:3]) == [204, 102, 51] and list(frame[508:]) == [153, 51, 0, 51]
    assert sum(frame) == sum([204, 102, 51, 153, 51, 0, 51])
    assert dmx_frame(None, [Fixture("a", 1, "rgb")]) == bytearray(512)


# ----------------------------------------------------------------------------- config


def test_config_from_toml_table() -> None:
    c = LightingConfig.from_dict({"enabled": True, "protocol": "artnet", "host": "127.0.0.1", "universe": 0,
                                  "fps": 40, "fixtures": FIXTURES, "mapping": {"beat_flash": 0.5}})
    assert c.fixtures[2] == Fixture("bar", 509, "rgbw") and c.mapping.beat_flash == 0.5 and c.fps == 40.0
    assert LightingConfig.from_dict(None).enabled is False  # nothing is sent unless configured


@pytest.mark.parametrize("table, key", [
    ({"protocol": "dmx"}, "protocol"),
    ({"universe": 0}, "universe"),  # sACN universes start at 1
    ({"fps": 100}, "fps"),
    ({"enabled": True, "fixtures": FIXTURES}, "host"),
    ({"enabled": True, "host": "127.0.0.1"}, "fixtures"),
    ({"host": "192.168.1.255"}, "host"),  # broadcast only when asked
    ({"host": "239.255.0.1"}, "host"),  # multicast only when asked
    ({"fixtures": [{"name": "x", "address": 600, "kind": "rgb"}]}, "fixtures[0].address"),
    ({"fixtures": [{"name": "x", "address": 511, "kind": "rgb"}]}, "fixtures[0].address"),  # 3 channels
    ({"fixtures": [{"name": "x", "address": 1, "kind": "moving head"}]}, "fixtures[0].kind"),
    ({"fixtures": [{"name": "x", "adress": 1}]}, "fixtures[0]: unknown key 'adress'"),
    ({"mapping": {"hue_sad": 400}}, "hue_sad"),
    ({"mapping": {"intensity_min": 0.9, "intensity_max": 0.5}}, "intensity_min"),
    ({"mapping": {"flash": 1}}, "unknown key 'flash'"),
    ({"fps": "fast"}, "fps"),
    ({"enabled": "yes"}, "enabled"),
])
def test_config_errors_are_one_line_naming_the_key(table: dict, key: str) -> None:
    with pytest.raises(ShowConfigError) as e:
        LightingConfig.from_dict(table)
    msg = str(e.value)
    assert "\n" not in msg and key in msg and msg.startswith("[lighting")


def test_broadcast_and_multicast_need_asking() -> None:
    assert address_kind("10.0.0.255") == "broadcast" and address_kind("239.255.0.3") == "multicast"
    assert address_kind("10.0.0.7") == "unicast" and address_kind("node.local") == "unicast"
    c = LightingConfig.from_dict({"enabled": True, "protocol": "artnet", "host": "2.255.255.255",
                                  "broadcast": True, "fixtures": FIXTURES})
    assert c.broadcast
    LightingConfig.from_dict({"enabled": True, "protocol": "sacn", "broadcast": True, "fixtures": FIXTURES})


def test_unresolvable_host_is_a_one_line_error_at_start() -> None:
    out = LightingOutput(LightingConfig.from_dict({"enabled": True, "host": "no-such-node.invalid",
                                                   "fixtures": FIXTURES}))
    with pytest.raises(OSError, match=r"^\[lighting\] host 'no-such-node.invalid' cannot be resolved"):
        out.start()
    out.stop()


# ----------------------------------------------------------------------------- a real receiver


@pytest.mark.parametrize("protocol, universe", [("sacn", SACN_UNIVERSE), ("artnet", ARTNET_UNIVERSE)])
def test_receiver_decodes_the_mapped_values_and_blackout_on_stop(olad, protocol: str,  # noqa: F811
                                                                 universe: int) -> None:
    cfg = LightingConfig.from_dict({"enabled": True, "protocol": protocol, "host": "127.0.0.1",
                                    "universe": universe, "fps": 30, "fixtures": FIXTURES,
                                    "mapping": {"beat_flash": 0.0}})
    out = LightingOutput(cfg)
    out(estimate(arousal=0.8, valence=0.9))
    expect = list(dmx_frame(light_state(0.8, 0.9, -20.0, math.inf, True, cfg.mapping), cfg.fixtures))
    assert expect[:3] != [0, 0, 0] and expect[9] > 0 and any(expect[508:])
    out.start()
    try:
        got = olad.wait_for(universe, lambda ch: ch[:512] == expect)
        assert got[:512] == expect, f"{protocol}: receiver has {got[:12]}..., expected {expect[:12]}..."
        # a new estimate changes the light: the receiver follows
        out(estimate(arousal=0.2, valence=0.1))
        expect2 = list(dmx_frame(light_state(0.2, 0.1, -20.0, math.inf, True, cfg.mapping), cfg.fixtures))
        assert expect2 != expect
        got = olad.wait_for(universe, lambda ch: ch[:512] == expect2)
        assert got[:512] == expect2
    finally:
        out.stop()
    got = olad.wait_for(universe, lambda ch: not any(ch))
    assert got and not any(got), f"{protocol}: no blackout after stop: {got[:12]}"
    assert out.frames_sent > 0


def test_beat_event_brightens_the_frame() -> None:
    cfg = LightingConfig.from_dict({"enabled": True, "host": "127.0.0.1", "fixtures": FIXTURES,
                                    "mapping": {"beat_flash": 0.5, "beat_decay_s": 0.2}})
    now = [100.0]
    out = LightingOutput(cfg, clock=lambda: now[0])
    out(estimate(arousal=0.3, valence=0.5))
    before = out.frame_now()
    out.event(Event("beat", 1, 1.0, 100.0, bpm=120.0))
    on_beat = out.frame_now()
    now[0] = 103.0  # 15 decay times later
    after = out.frame_now()
    assert on_beat[9] > before[9] and after[9] == before[9]  # the dimmer channel flashes, then decays
    out.event(Event("onset", 1, 1.0, 101.0))  # other events do not flash
    assert out.frame_now() == after
