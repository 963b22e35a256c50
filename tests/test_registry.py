"""A new output and a new analyser are one file each (issue #27 item 3): dropped into a copy of the
package, with no edit anywhere else, their config section shows in ``--print-config``, their flag
parses, the output receives the estimates and the analyser's events go out over OSC."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.net import Wire

ROOT = Path(__file__).resolve().parents[1]

#: a whole output in one file: its [probe] section, its --probe flag, its factory, its status line
PROBE_OUTPUT = '''
import socket
from dataclasses import dataclass

from pythonosc.osc_message_builder import OscMessageBuilder

from mer_live.registry import Flag, OutputSpec, register_output


@dataclass(frozen=True)
class ProbeConfig:
    port: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")


class Probe:
    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def __call__(self, est) -> None:
        m = OscMessageBuilder("/probe/arousal")
        m.add_arg(float(est.arousal), "f")
        self.sock.sendto(m.build().dgram, ("127.0.0.1", self.port))

    def start(self) -> None:
        pass

    def stop(self) -> None:
        self.sock.close()

    def describe(self) -> str:
        return f"probe: to port {self.port}"


register_output(OutputSpec(
    name="probe", order=200, config=ProbeConfig,
    build=lambda cfg: Probe(cfg.probe.port) if cfg.probe.port else None,
    flags=(Flag(("--probe",), dict(type=int, metavar="PORT", help="probe output"), ("probe", "port")),),
))
'''

#: a whole analyser in one file: its [ticks] section and the event kind it publishes
TICK_ANALYSER = '''
from dataclasses import dataclass

from mer_live.live.records import Event
from mer_live.registry import AnalyserSpec, register_analyser


@dataclass(frozen=True)
class TickConfig:
    enabled: bool = True
    every_s: float = 0.5


class Ticks:
    def __init__(self, c: TickConfig) -> None:
        self.c, self.n, self.next_t = c, 0, c.every_s

    def reset(self, samplerate: int) -> None:
        self.n, self.next_t = 0, self.c.every_s

    def process(self, mono, t_end, wall):
        if t_end < self.next_t:
            return []
        self.n += 1
        self.next_t += self.c.every_s
        return [Event("tick", self.n, t_end, wall)]


register_analyser(AnalyserSpec(
    name="ticks", order=210, run_order=40, config=TickConfig,
    build=lambda c, _built: Ticks(c) if c.enabled else None, event_kinds=("tick",),
))
'''


@pytest.fixture
def plugged(tmp_path: Path) -> Path:
    pkg = tmp_path / "mer_live"
    shutil.copytree(ROOT / "mer_live", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (pkg / "models").mkdir()
    shutil.copy(ROOT / "models" / "__init__.py", pkg / "models")
    (pkg / "outputs" / "probe.py").write_text(PROBE_OUTPUT)
    (pkg / "analysers" / "ticks.py").write_text(TICK_ANALYSER)
    return tmp_path


def _run(where: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env.update(PYTHONPATH=str(where), PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "mer_live", *args], cwd=where, capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_one_file_adds_an_output_and_an_analyser(plugged: Path, loudness_model: Path) -> None:
    r = _run(plugged, "--print-config", "--probe", "9")
    assert r.returncode == 0, r.stderr
    assert "[probe]\nport = 9\n" in r.stdout and "[ticks]\nenabled = true\nevery_s = 0.5\n" in r.stdout
    bad = _run(plugged, "--print-config", "--probe", "70000")
    assert bad.returncode == 2 and "port must be in 0..65535, got 70000" in bad.stderr, bad.stderr

    probe, osc = Wire(), Wire()
    try:
        r = _run(plugged, "--demo", "--headless", "--duration", "4", "--no-music-gate", "--model",
                 str(loudness_model),
                 "--probe", str(probe.port), "--osc", f"127.0.0.1:{osc.port}")
        assert r.returncode == 0, r.stderr[-2000:]
        assert f"probe: to port {probe.port}" in r.stderr
        arousal = [p[0] for p in probe.values("/probe/arousal")]
        assert len(arousal) >= 10 and all(0.0 <= a <= 1.0 for a in arousal), arousal[:3]
        ticks = [p[0] for p in osc.values("/mer/tick")]
        # every tick once, in order (the first ones fall before the first estimate, so are not sent)
        assert len(ticks) >= 3 and ticks == list(range(ticks[0], ticks[0] + len(ticks))), ticks
    finally:
        probe.close()
        osc.close()
