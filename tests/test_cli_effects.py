"""Each mer-live flag observed by its EFFECT: real subprocesses, a real ONNX model, real UDP.

A flag that parses but is wired to nothing (or wired inverted) must fail here: every test runs
mer-live with and without the flag (or with two values) and compares what came out on the wire,
on the terminal or in the log file.
"""

from __future__ import annotations

import re
import statistics
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pythonosc.osc_packet import OscPacket

from tests.conftest import missing
from tests.net import Wire, broadcast_addresses
from tests.test_cli import run_cli

pytestmark = pytest.mark.timeout(180)

SR = 16000


def listen(*args: str, host: str = "127.0.0.1", target: str | None = None, **kw):
    """Run mer-live with ``--osc`` to a fresh receiver; return (process result, receiver)."""
    wire = Wire(host)
    try:
        r = run_cli(*args, "--osc", target or f"127.0.0.1:{wire.port}", **kw)
    finally:
        wire.close()
    return r, wire


def tone_file(path: Path, seconds: float, amp: float, freq: float = 440.0) -> Path:
    t = np.arange(int(seconds * SR)) / SR
    sf.write(path, (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("effects")
    t = np.arange(int(2.5 * SR)) / SR
    quiet_loud = np.sin(2 * np.pi * 440 * t) * np.where(t < 1.25, 0.01, 0.5)
    sf.write(d / "quiet_loud.wav", quiet_loud.astype(np.float32), SR)
    loud_then_silent = np.concatenate([0.3 * np.random.default_rng(0).standard_normal(2 * SR),
                                       np.zeros(4 * SR)]).astype(np.float32)
    sf.write(d / "loud_then_silent.wav", loud_then_silent, SR)
    return {"quiet_loud": d / "quiet_loud.wav", "steady": tone_file(d / "steady.wav", 3.0, 0.1),
            "loud_then_silent": d / "loud_then_silent.wav"}


def model_args(model: Path) -> list[str]:
    return ["--model", str(model), "--headless", "--no-music-gate"]


# -- OSC flags ------------------------------------------------------------------------------------


def _rate(times: list[float], skip_s: float = 1.0) -> float:
    """Messages per second after the first ``skip_s`` seconds of sending."""
    span = [t for t in times if t >= times[0] + skip_s]
    assert len(span) >= 3, times
    return (len(span) - 1) / (span[-1] - span[0])


def test_osc_fixed_rate_sends_on_the_tick_only(loudness_model) -> None:
    """--hop 0.1 at --osc-rate 2: by default every estimate goes out at once (~10/s); with
    --osc-fixed-rate only the 2-Hz tick sends. Wired inverted, the two rates swap."""
    args = ["--demo", "--duration", "3.5", "--hop", "0.1", "--osc-rate", "2", *model_args(loudness_model)]
    r, on_estimate = listen(*args)
    assert r.returncode == 0, r.stderr
    r, fixed = listen(*args, "--osc-fixed-rate")
    assert r.returncode == 0, r.stderr
    fast, slow = _rate(on_estimate.times("/mer/arousal")), _rate(fixed.times("/mer/arousal"))
    assert fast > 6.0, f"default: {fast:.1f}/s, expected every estimate (10/s)"
    assert 1.0 < slow < 3.0, f"--osc-fixed-rate: {slow:.1f}/s, expected the 2-Hz tick"
    # plain messages without --bundle
    assert on_estimate.dgrams and not any(d.startswith(b"#bundle\0") for _t, d in on_estimate.dgrams)


def test_bundle_flag_sends_immediate_bundles(loudness_model) -> None:
    r, wire = listen("--demo", "--duration", "1.5", "--bundle", *model_args(loudness_model))
    assert r.returncode == 0, r.stderr
    assert "bundled" in r.stderr  # the OSC notice says so
    values = [d for _t, d in wire.dgrams if b"/mer/arousal" in d]
    assert len(values) >= 10
    assert all(d.startswith(b"#bundle\0") for d in values)
    assert all(d[8:16] == (1).to_bytes(8, "big") for d in values)  # the immediate timetag
    one = OscPacket(values[-1]).messages
    assert {"/mer/arousal", "/mer/valence", "/mer/av", "/mer/input"} <= {m.message.address for m in one}


def test_range_pm1_applies_to_raw_values_too(loudness_model, files) -> None:
    """The loudness model's quiet tone scores arousal ~0.1 and valence ~0.2 (0..1): on -1..1 both the
    smoothed and the raw addresses are negative, and raw and smoothed agree in the steady state."""
    r, wire = listen("--input", str(files["quiet_loud"]), "--duration", "1.2", "--range", "pm1",
                     "--attack", "0", "--release", "0", *model_args(loudness_model))
    assert r.returncode == 0, r.stderr
    music = [m[0] for m in wire.values("/mer/music")]
    assert 1 in music, r.stderr
    got = {a: [p[0] for p, m in zip(wire.values(f"/mer/{a}"), music, strict=False) if m]
           for a in ("arousal", "valence", "arousal_raw", "valence_raw")}
    for name, vals in got.items():
        assert vals and all(-1.0 <= v <= 1.0 for v in vals), name
        assert max(vals) < -0.3, f"/mer/{name} not on -1..1: {vals[-3:]}"
    assert got["arousal_raw"][-1] == pytest.approx(got["arousal"][-1], abs=0.05)
    assert got["valence_raw"][-1] == pytest.approx(got["valence"][-1], abs=0.05)


def test_broadcast_flag_reaches_the_subnet(loudness_model) -> None:
    found = broadcast_addresses()
    if not found:
        missing("no network interface with an IPv4 address and a broadcast address")
    brd = found[0][2]
    args = ["--demo", "--duration", "1.2", *model_args(loudness_model)]
    wire = Wire("0.0.0.0")
    try:
        r = run_cli(*args, "--osc", f"{brd}:{wire.port}")
    finally:
        wire.close()
    assert r.returncode == 0, r.stderr
    assert "(a broadcast address needs broadcast = true)" in r.stderr
    assert wire.values("/mer/arousal") == []
    wire = Wire("0.0.0.0")
    try:
        r = run_cli(*args, "--osc", f"{brd}:{wire.port}", "--broadcast")
    finally:
        wire.close()
    assert r.returncode == 0, r.stderr
    assert "broadcast = true" not in r.stderr
    assert len(wire.values("/mer/arousal")) >= 5


# -- input and estimation flags -----------------------------------------------------------------


def test_gain_db_lowers_the_level_on_the_wire(loudness_model, files) -> None:
    """A steady -23 dBFS RMS tone: --gain-db -20 puts /mer/level 20 dB lower (and level01 1/3 lower)."""
    levels = {}
    for gain in ("0", "-20"):
        r, wire = listen("--input", str(files["steady"]), "--duration", "2", "--gain-db", gain,
                         *model_args(loudness_model))
        assert r.returncode == 0, r.stderr
        lv = [p[0] for p in wire.values("/mer/level")][5:]
        l01 = [p[0] for p in wire.values("/mer/level01")][5:]
        assert len(lv) >= 10, wire.messages[:5]
        levels[gain] = (statistics.median(lv), statistics.median(l01))
    assert levels["0"][0] == pytest.approx(20 * np.log10(0.1 / np.sqrt(2)), abs=1.0)
    assert levels["-20"][0] - levels["0"][0] == pytest.approx(-20.0, abs=1.0)
    assert levels["-20"][1] - levels["0"][1] == pytest.approx(-20.0 / 60.0, abs=0.02)


def test_on_silence_neutral_drifts_to_half_and_hold_holds(loudness_model, files, tmp_path) -> None:
    """Loud noise, then silence: 'hold' keeps the high arousal, 'neutral' drifts to 0.5."""
    cfg = tmp_path / "fast.toml"
    cfg.write_text("[pipeline]\nneutral_s = 0.3\nsilence_s = 0.2\n")
    last = {}
    for mode in ("hold", "neutral"):
        r, wire = listen("--config", str(cfg), "--input", str(files["loud_then_silent"]), "--duration", "5.5",
                         "--on-silence", mode, "--attack", "0.05", *model_args(loudness_model))
        assert r.returncode == 0, r.stderr
        silent = [p[0] for p in wire.values("/mer/silent")]
        arousal = [p[0] for p in wire.values("/mer/arousal")]
        assert 1 in silent and max(arousal) > 0.9, (mode, arousal[-5:])
        last[mode] = arousal[-1]
    assert last["hold"] > 0.9, last
    assert last["neutral"] == pytest.approx(0.5, abs=0.05), last


# -- terminal, log file, verbosity ---------------------------------------------------------------


LINE = re.compile(r"A \[([#.]{10})\] (\d\.\d\d)\s+V \[([#.]{10})\] (\d\.\d\d)")


def test_terminal_bars_show_their_own_value(loudness_model, files) -> None:
    """The A bar is arousal's and the V bar valence's, on lines where the two differ."""
    r = run_cli("--input", str(files["quiet_loud"]), "--duration", "2.4", "--no-osc", "--attack", "0",
                *model_args(loudness_model))
    assert r.returncode == 0, r.stderr
    rows = [LINE.search(ln) for ln in r.stdout.splitlines()]
    rows = [m for m in rows if m]
    assert len(rows) >= 3, r.stdout
    differ = 0
    for m in rows:
        a_bar, a, v_bar, v = m.group(1), float(m.group(2)), m.group(3), float(m.group(4))
        assert abs(a_bar.count("#") - a * 10) <= 0.51, m.group(0)
        assert abs(v_bar.count("#") - v * 10) <= 0.51, m.group(0)
        differ += a_bar.count("#") != v_bar.count("#")
    assert differ >= 1, "no line where arousal and valence differ: the test would not see a swap"


def test_log_file_gets_timed_lines_and_v_adds_debug(loudness_model, tmp_path) -> None:
    stamp = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} "
    runs = {}
    for name, extra in (("plain", []), ("v", ["-v"]), ("vv", ["-vv"])):
        log = tmp_path / f"{name}.log"
        # a closed port: a warning, said once, and sending goes on
        r = run_cli("--demo", "--duration", "1.2", "--log-file", str(log), *extra, "--osc", "127.0.0.1:9",
                    *model_args(loudness_model))
        assert r.returncode == 0, r.stderr
        runs[name] = (log.read_text(), r.stderr)
    for name, (text, err) in runs.items():
        warn = stamp + r"WARNING mer_live\.outputs\.osc: OSC target 127\.0\.0\.1:9: nothing listening"
        assert re.search(warn, text, re.M), (name, text)
        notices = re.findall(stamp + r"DEBUG mer_live\.cli: model loudness-test \(16000 Hz", text, re.M)
        assert len(notices) == (0 if name == "plain" else 1), (name, text)  # -v: the file gets debug
        # the terminal says each notice once, whatever the level
        assert len([ln for ln in err.splitlines() if "model loudness-test (16000 Hz" in ln]) == 1, err
        assert "debug:" not in err
    nowhere = tmp_path / "no" / "such" / "dir.log"
    r = run_cli("--demo", "--log-file", str(nowhere), *model_args(loudness_model))
    assert r.returncode == 2
    assert r.stderr.strip().startswith("mer-live: error: cannot open log file ")
    assert len(r.stderr.strip().splitlines()) == 1


def test_vv_adds_tracebacks(loudness_model) -> None:
    args = ["--device", "no-such-device-xyz", *model_args(loudness_model), "--no-osc"]
    plain = run_cli(*args)
    loud = run_cli(*args, "-vv")
    assert plain.returncode == loud.returncode == 1
    assert "Traceback" not in plain.stderr
    assert "mer-live: debug: traceback of the error below:\nTraceback (most recent call last)" in loud.stderr
    assert loud.stderr.strip().splitlines()[-1] == plain.stderr.strip().splitlines()[-1]  # same error line
