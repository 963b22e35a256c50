"""A private OLA daemon (Debian ``ola``) on loopback: an independent sACN and Art-Net receiver.

Why olad: lighting output must be checked by a receiver that is not our own code or our
sender's library. ``olad`` decodes E1.31 and Art-Net as consoles and nodes do, and its HTTP API
(``/get_dmx?u=N``) returns the universe it received. Its config lives in a temporary folder: only
the E1.31 and Art-Net plugins are on, bound to 127.0.0.1, with input port 0 of each patched to
an OLA universe (``ola-port.conf``). olad refuses to run as root, so as root it runs as
``nobody`` (setpriv). It listens on the protocols' fixed UDP ports (5568, 6454), so only one
such test can run on a machine at a time.

Use the ``olad`` fixture (module scope); it skips (fails on CI) where olad is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import need_tool

SACN_UNIVERSE = 3  #: the sACN universe olad listens to (its input port patched to OLA universe 3)
ARTNET_UNIVERSE = 1  #: the Art-Net port-address 0:0:1 (OLA universe 1)
E131_DEVICE, ARTNET_DEVICE = "11-1", "2-1"  #: OLA's fixed plugin device ids


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Olad:
    """One olad process with its own config folder; ``dmx(u)`` reads a universe over HTTP."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.conf = root / "conf"
        self.http = _free_tcp_port()
        self.rpc = _free_tcp_port()
        self.proc: subprocess.Popen | None = None

    def write_config(self) -> None:
        self.conf.mkdir(parents=True, exist_ok=True)
        (self.conf / "ola-e131.conf").write_text(
            "enabled = true\nip = 127.0.0.1\ninput_ports = 1\noutput_ports = 0\nignore_preview = true\n"
            "draft_discovery = false\nprepend_hostname = false\nrevision = 0.46\n")
        (self.conf / "ola-artnet.conf").write_text(
            "enabled = true\nip = 127.0.0.1\nuse_loopback = true\nnet = 0\nsubnet = 0\noutput_ports = 0\n"
            "always_broadcast = false\nuse_limited_broadcast = false\nshort_name = mer-test\n"
            "long_name = mer-live test receiver\n")
        (self.conf / "ola-port.conf").write_text(
            f"{E131_DEVICE}-I-0 = {SACN_UNIVERSE}\n{ARTNET_DEVICE}-I-0 = {ARTNET_UNIVERSE}\n")
        for plugin in ("dummy", "espnet", "ftdidmx", "gpio", "karate", "kinet", "milinst", "opendmx",
                       "openpixelcontrol", "osc", "pathport", "renard", "sandnet", "shownet", "spi",
                       "stageprofi", "uartdmx", "usbdmx", "usbserial"):
            (self.conf / f"ola-{plugin}.conf").write_text("enabled = false\n")
        for p in [self.root, self.conf, *self.conf.iterdir()]:
            os.chmod(p, 0o777 if p.is_dir() else 0o666)

    def start(self, timeout: float = 15.0) -> None:
        exe = need_tool("olad", "ola")
        self.write_config()
        cmd = [exe, "-c", str(self.conf), "-p", str(self.http), "-r", str(self.rpc), "-l", "2",
               "--no-register-with-dns-sd"]
        if os.geteuid() == 0:  # olad: "Attempting to run as root, aborting."
            cmd = [need_tool("setpriv", "util-linux"), "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                   *cmd]
        self.log = open(self.root / "olad.log", "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if self.dmx(SACN_UNIVERSE) is not None and self._patched():
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        tail = (self.root / "olad.log").read_text(errors="replace")[-1500:]
        pytest.fail(f"olad did not come up on http port {self.http} within {timeout:.0f} s:\n{tail}")

    def _patched(self) -> bool:
        url = f"http://127.0.0.1:{self.http}/json/universe_plugin_list"
        with urllib.request.urlopen(url, timeout=2) as r:
            unis = {u["id"] for u in json.load(r).get("universes", [])}
        return {SACN_UNIVERSE, ARTNET_UNIVERSE} <= unis

    def dmx(self, universe: int) -> list[int] | None:
        """The universe's 512 channels as olad holds them ([] until something arrived)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/get_dmx?u={universe}", timeout=2) as r:
            return list(json.load(r).get("dmx", []))

    def wait_for(self, universe: int, pred, timeout: float = 5.0) -> list[int]:
        """Poll the universe until ``pred(channels)``; returns the last channels read."""
        deadline = time.monotonic() + timeout
        last: list[int] = []
        while time.monotonic() < deadline:
            last = self.dmx(universe) or []
            if last and pred(last):
                return last
            time.sleep(0.05)
        return last

    def expect(self, universe: int, pred, what: str, timeout: float = 5.0) -> list[int]:
        """``wait_for`` that fails: an ``AssertionError`` naming ``what`` after ``timeout`` s."""
        last = self.wait_for(universe, pred, timeout)
        if not (last and pred(last)):
            raise AssertionError(f"olad universe {universe}: no {what} within {timeout:g} s "
                                 f"(it holds {last[:8] or 'nothing'}...)")
        return last

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.proc = None


@pytest.fixture(scope="module")
def olad() -> Iterator[Olad]:
    need_tool("olad", "ola")
    root = Path(tempfile.mkdtemp(prefix="mer-olad-"))
    os.chmod(root, 0o777)
    d = Olad(root)
    d.start()
    try:
        yield d
    finally:
        d.stop()
        shutil.rmtree(root, ignore_errors=True)
