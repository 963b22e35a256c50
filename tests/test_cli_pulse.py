"""mer-live's device flags through a real capture device: a private PulseAudio server's null sink.

``--list-devices`` lists it, ``--channels``/``--samplerate`` open it that way, ``--play`` really
plays into the sink (captured back from its monitor), ``--wait-for-device`` waits for a server
that is not there yet and starts when it appears, or ends cleanly on SIGTERM while waiting.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from tests.audio import SINK, PulseServer, dominant_hz, missing_tools, pulse_fixture, tone, write_wav  # noqa: F401
from tests.conftest import missing
from tests.net import Wire
from tests.proc import LineProcess
from tests.test_cli import ROOT, env, run_cli

pytestmark = [pytest.mark.audio, pytest.mark.timeout(180)]


class Live(LineProcess):
    """mer-live in the background; its stderr lines arrive on a queue (reads never hang)."""

    def __init__(self, *args: str, extra_env: dict[str, str]) -> None:
        p = subprocess.Popen([sys.executable, "-m", "mer_live", *args], cwd=ROOT, env=env(**extra_env),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        super().__init__(p, p.stderr)

    def wait_for(self, pattern: str, timeout: float = 30.0) -> str:
        line = self.next_matching(lambda ln: re.search(pattern, ln) is not None, timeout)
        if line is None:
            raise AssertionError(f"no line matching {pattern!r} within {timeout} s; stderr: {self.seen}")
        return line

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait(timeout=5)
            raise
        time.sleep(0.1)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return rc


def test_list_devices_shows_the_pulse_input(pulse: PulseServer) -> None:
    r = run_cli("--list-devices", env=env(**pulse.env), timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.rstrip().splitlines()
    assert re.match(r"^\s*idx\s+name\s+host API\s+in ch\s+rate$", lines[0]), lines
    rows = {m.group(2): m for m in (re.match(r"^([* ])\s+(\d+)\s+(\S+)\s+(\S+)\s+(\d+)\s+(\d+)$", ln)
                                    for ln in lines[1:]) if m}
    names = {m.group(3) for m in rows.values()}
    assert "pulse" in names, r.stdout
    assert sum(m.group(1) == "*" for m in rows.values()) == 1, "one default input, marked *"
    # without the server the same machine has no input at all
    r = run_cli("--list-devices", timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "no input devices found"


def test_channels_and_samplerate_open_the_device_that_way(pulse: PulseServer, loudness_model) -> None:
    args = ["--device", "pulse", "--headless", "--no-osc", "--duration", "1", "--model", str(loudness_model),
            "--no-music-gate"]
    r = run_cli(*args, env=env(**pulse.env), timeout=60)
    assert r.returncode == 0, r.stderr
    default = re.search(r"^mer-live: input: pulse, (\d+) Hz, (\d+) ch$", r.stderr, re.M)
    assert default, r.stderr  # one "input:", not "input: input:"
    assert (default.group(1), default.group(2)) != ("32000", "1")
    r = run_cli(*args, "--channels", "1", "--samplerate", "32000", env=env(**pulse.env), timeout=60)
    assert r.returncode == 0, r.stderr
    assert "mer-live: input: pulse, 32000 Hz, 1 ch" in r.stderr.splitlines()
    r = run_cli(*args, "--channels", "64", env=env(**pulse.env), timeout=60)
    assert r.returncode == 1  # a device failure (README: input device -> 1)
    assert re.search(r"mer-live: error: input 'pulse' has \d+ channels, 64 asked for", r.stderr), r.stderr


def _record_monitor(pulse: PulseServer) -> tuple[subprocess.Popen, Path]:
    """Record the null sink's monitor (what came out of the output), mono float32 at 48 kHz."""
    out = Path(tempfile.mkdtemp(prefix="mer-monitor-")) / "monitor.raw"
    f = open(out, "wb")
    p = subprocess.Popen(["parec", "--raw", "--format=float32le", "--rate=48000", "--channels=1",
                          "--latency-msec=20", "-d", f"{SINK}.monitor"], env={**env(), **pulse.env},
                         stdout=f, stderr=subprocess.DEVNULL)
    f.close()
    return p, out


def test_play_reaches_the_output(pulse: PulseServer, loudness_model, tmp_path) -> None:
    """--play: the file comes out of the default output (the null sink), heard on its monitor."""
    wav = write_wav(tmp_path / "a660.wav", tone(660.0, 3.0, amp=0.3))
    rec, raw = _record_monitor(pulse)
    try:
        r = run_cli("--input", str(wav), "--play", "--headless", "--no-osc", "--model", str(loudness_model),
                    "--no-music-gate", env=env(**pulse.env), timeout=60)
        time.sleep(0.3)
    finally:
        rec.terminate()
        rec.wait(timeout=5)
    assert r.returncode == 0, r.stderr
    assert "no audio output" not in r.stderr, r.stderr
    x = np.frombuffer(raw.read_bytes()[: raw.stat().st_size // 4 * 4], np.float32)
    shutil.rmtree(raw.parent, ignore_errors=True)
    loud = np.abs(x) > 0.05
    assert loud.sum() > 48000, f"only {loud.sum() / 48000:.2f} s of sound came out"  # > 1 s of the 3-s tone
    idx = np.flatnonzero(loud)
    segment = x[idx[0]: idx[-1]]
    assert dominant_hz(segment, 48000) == pytest.approx(660.0, abs=5.0)
    assert np.sqrt(np.mean(segment**2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.3)  # the file's level


def test_no_play_is_silent_on_the_output(pulse: PulseServer, loudness_model, tmp_path) -> None:
    wav = write_wav(tmp_path / "a660.wav", tone(660.0, 1.5, amp=0.3))
    rec, raw = _record_monitor(pulse)
    try:
        r = run_cli("--input", str(wav), "--headless", "--no-osc", "--model", str(loudness_model),
                    "--no-music-gate", env=env(**pulse.env), timeout=60)
    finally:
        rec.terminate()
        rec.wait(timeout=5)
    assert r.returncode == 0, r.stderr
    x = np.frombuffer(raw.read_bytes()[: raw.stat().st_size // 4 * 4], np.float32)
    shutil.rmtree(raw.parent, ignore_errors=True)
    assert x.size > 0 and np.abs(x).max() < 0.01


@pytest.fixture
def later_server():
    """A PulseServer that is NOT started yet: the device appears when the test starts it."""
    why = missing_tools()
    if why:
        missing(why)
    root = Path(tempfile.mkdtemp(prefix="mer-pulse-late-"))
    server = PulseServer(root)
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


def test_wait_for_device_starts_when_it_appears(later_server: PulseServer, loudness_model) -> None:
    wire = Wire()
    live = Live("--device", "pulse", "--wait-for-device", "-v", "--headless", "--no-music-gate",
                "--model", str(loudness_model), "--osc", f"127.0.0.1:{wire.port}",
                extra_env=later_server.env)
    try:
        live.wait_for(r"^mer-live: warning: waiting for input device 'pulse' \(no input device matches")
        time.sleep(1.5)  # still waiting: nothing started, nothing sent
        assert live.p.poll() is None
        assert wire.values("/mer/input") == []
        later_server.start(settle_s=0.5)
        live.wait_for(r"^mer-live: info: input device 'pulse' appeared$", timeout=30)
        live.wait_for(r"^mer-live: input: pulse, \d+ Hz, \d+ ch$", timeout=30)
        deadline = time.monotonic() + 15
        while [1] not in [list(v) for v in wire.values("/mer/input")] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (1,) in wire.values("/mer/input"), wire.messages[-5:]
        rc = live.stop()
    finally:
        if live.p.poll() is None:
            live.p.kill()
        wire.close()
    assert rc == 0, live.seen
    assert any("stopped after" in ln for ln in live.seen)


def test_sigterm_while_waiting_for_the_device_exits_cleanly(later_server: PulseServer,
                                                            loudness_model) -> None:
    live = Live("--device", "pulse", "--wait-for-device", "--headless", "--no-osc", "--model",
                str(loudness_model), extra_env=later_server.env)
    try:
        live.wait_for(r"waiting for input device 'pulse'")
        t0 = time.monotonic()
        rc = live.stop(timeout=10)
        took = time.monotonic() - t0
    finally:
        if live.p.poll() is None:
            live.p.kill()
    assert rc == 0, live.seen
    assert took < 5.0, f"took {took:.1f} s to stop while waiting"
    assert not any("error" in ln or "Traceback" in ln for ln in live.seen), live.seen
    assert not any(ln.startswith("mer-live: input:") for ln in live.seen)
