"""A private PulseAudio server with a null sink: a real capture device without sound hardware.

Follows /work/shared/recipes/virtual-audio.md. Audio played into ``mer_sink`` (``play``) is what
PortAudio's ``pulse`` input device captures. ``kill_server``/``restart_server`` unplug and replug
the device for device-loss tests. Use the ``pulse`` fixture (module scope) and, in-process,
``pulse.activate()``: it points this process's PortAudio at the private server.

Import the fixtures into a test module with ``from tests.audio import pulse_fixture  # noqa: F401``
(the fixture is named ``pulse``).
"""

from __future__ import annotations

import contextlib
import ctypes.util
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

SINK = "mer_sink"
SINK_RATE = 48000
TOOLS = ("pulseaudio", "pactl", "paplay", "parec")


def missing_tools() -> str | None:
    """Why audio tests cannot run here, or None."""
    for tool in TOOLS:
        if shutil.which(tool) is None:
            return f"{tool} not installed (Debian: pulseaudio pulseaudio-utils)"
    if ctypes.util.find_library("portaudio") is None:
        return "libportaudio not installed (Debian: libportaudio2)"
    return None


class PulseServer:
    """One private PulseAudio server in a temporary folder; every process it starts is tracked."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        (self.root / "run").mkdir(parents=True, exist_ok=True)
        (self.root / "home").mkdir(parents=True, exist_ok=True)
        self.socket = self.root / "native"
        self.env = {
            "XDG_RUNTIME_DIR": str(self.root / "run"),
            "HOME": str(self.root / "home"),
            "PULSE_SERVER": f"unix:{self.socket}",
        }
        self._server: subprocess.Popen | None = None
        self._keepalive: subprocess.Popen | None = None
        self._players: list[subprocess.Popen] = []
        self.starts = 0

    def _full_env(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def _pactl(self, *args: str, timeout: float = 5.0) -> subprocess.CompletedProcess:
        return subprocess.run(["pactl", *args], env=self._full_env(), capture_output=True, text=True,
                              timeout=timeout)

    def start(self, settle_s: float = 2.1) -> None:
        """Start the server, the null sink and the low-latency keep-alive reader, then settle."""
        if self.socket.exists():
            self.socket.unlink()
        log = open(self.root / f"pulseaudio-{self.starts}.log", "wb")
        self._server = subprocess.Popen(
            [
                "pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no",
                "--disable-shm=yes",
                "-L", f"module-native-protocol-unix socket={self.socket} auth-anonymous=1",
                "-L", f"module-null-sink sink_name={SINK} rate={SINK_RATE} channels=2",
            ],
            env=self._full_env(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        log.close()
        self.starts += 1
        deadline = time.monotonic() + 10.0
        while True:
            if self._server.poll() is not None:
                raise RuntimeError(f"pulseaudio exited with {self._server.returncode}; see {self.root}")
            if self._pactl("info", timeout=2.0).returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("pulseaudio did not answer within 10 s")
            time.sleep(0.05)
        self._pactl("set-default-source", f"{SINK}.monitor")
        # Without a low-latency reader the null sink renders 2 s blocks (see the recipe).
        self._keepalive = subprocess.Popen(
            ["parec", "--raw", "--latency-msec=10", "-d", f"{SINK}.monitor"],
            env=self._full_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        time.sleep(settle_s)

    def play(self, wav: str | Path, wait: bool = True, timeout: float = 60.0) -> subprocess.Popen:
        """Play a file into the null sink (what the capture device hears)."""
        p = subprocess.Popen(["paplay", "-d", SINK, str(wav)], env=self._full_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._players.append(p)
        if wait:
            _, err = p.communicate(timeout=timeout)
            if p.returncode != 0:
                raise RuntimeError(f"paplay failed ({p.returncode}): {err.decode(errors='replace').strip()}")
        return p

    @contextlib.contextmanager
    def looping(self, wav: str | Path) -> Iterator[subprocess.Popen]:
        """Play ``wav`` into the null sink over and over while the block runs (the benches' steady
        input); the player's whole process group ends with the block."""
        p = subprocess.Popen(["bash", "-c", f"while true; do paplay -d {SINK} '{wav}'; done"],
                             env=self._full_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        try:
            yield p
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=5)

    def stop_players(self) -> None:
        for p in self._players:
            _end(p)
        self._players.clear()

    def kill_server(self) -> None:
        """Kill the server abruptly (SIGKILL), as if the interface were unplugged."""
        self.stop_players()
        _end(self._keepalive)
        self._keepalive = None
        if self._server is not None and self._server.poll() is None:
            self._server.send_signal(signal.SIGKILL)
            self._server.wait(timeout=5)
        self._server = None

    def restart_server(self, settle_s: float = 2.1) -> None:
        """Bring the server back on the same socket (the device reappears)."""
        self.kill_server()
        self.start(settle_s)

    def stop(self) -> None:
        self.kill_server()

    @contextlib.contextmanager
    def activate(self) -> Iterator[PulseServer]:
        """Point this process's PortAudio at the private server (and back afterwards)."""
        from mer_live.sources.capture import rescan_devices

        saved = {k: os.environ.get(k) for k in ("PULSE_SERVER",)}
        os.environ["PULSE_SERVER"] = self.env["PULSE_SERVER"]
        rescan_devices()
        try:
            yield self
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            with contextlib.suppress(Exception):
                rescan_devices()


def _end(p: subprocess.Popen | None) -> None:
    if p is None or p.poll() is not None:
        return
    p.terminate()
    try:
        p.wait(timeout=3)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(timeout=3)


def tone(freq: float, seconds: float, sr: int = SINK_RATE, amp: float = 0.5, channels: int = 2) -> np.ndarray:
    """A sine, ``[frames, channels]`` float32."""
    t = np.arange(int(round(seconds * sr))) / sr
    x = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(x[:, None], channels, axis=1)


def plucked(seconds: float, sr: int, seed: int = 0, peak: float = 0.1, noise: float = 0.0) -> np.ndarray:
    """Mono plucked chords every 0.5 s (decaying tones with two overtones, a random root each time),
    scaled to ``peak``, plus white noise of std ``noise``: music-like and not stationary."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = np.zeros_like(t)
    for start in np.arange(0, seconds, 0.5):
        f0 = 220 * 2 ** (rng.integers(0, 12) / 12)
        env = np.where(t >= start, np.exp(-(t - start) * 4), 0.0)
        y += env * sum(np.sin(2 * np.pi * f0 * h * t) / h for h in (1, 2, 3))
    y = peak * y / np.abs(y).max()
    return (y + noise * rng.standard_normal(len(t)) if noise else y).astype(np.float32)


def write_wav(path: Path, audio: np.ndarray, sr: int = SINK_RATE) -> Path:
    import soundfile as sf

    sf.write(str(path), audio, sr, subtype="FLOAT")
    return Path(path)


def dominant_hz(x: np.ndarray, sr: float) -> float:
    """Frequency of the strongest FFT bin (mono or first channel)."""
    if x.ndim == 2:
        x = x[:, 0]
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec[1:]) + 1) * sr / len(x)


@pytest.fixture(scope="module", name="pulse")
def pulse_fixture() -> Iterator[PulseServer]:
    """A running private PulseAudio server with the ``mer_sink`` null sink (skips if unavailable,
    fails on CI: ``tests.conftest.missing``)."""
    from tests.conftest import missing

    why = missing_tools()
    if why:
        missing(why)
    root = Path(tempfile.mkdtemp(prefix="mer-pulse-"))
    server = PulseServer(root)
    try:
        try:
            server.start()
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            server.stop()
            missing(f"cannot start a private PulseAudio server: {e}")
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
