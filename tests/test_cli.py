"""mer-live as a user runs it: real subprocesses, a real ONNX model, OSC over real UDP sockets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import tomllib

from tests.conftest import need_module
from tests.net import Wire

ROOT = Path(__file__).resolve().parents[1]


def env(**extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    e["PYTHONUNBUFFERED"] = "1"
    e.update(extra)
    return e


def run_cli(*args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mer_live", *args], cwd=ROOT, capture_output=True, text=True,
        timeout=timeout, env=kw.pop("env", env()), **kw,
    )


@pytest.fixture
def osc_server():
    s = Wire()
    yield s
    s.close()


@pytest.fixture(scope="module")
def quiet_then_loud(tmp_path_factory) -> Path:
    """2 s of a quiet tone (-43 dBFS) then 2 s loud (-9 dBFS), stereo 44.1 kHz."""
    sr = 44100
    t = np.arange(4 * sr) / sr
    x = np.sin(2 * np.pi * 440 * t) * np.where(t < 2.0, 0.01, 0.5)
    path = tmp_path_factory.mktemp("cli") / "quiet_then_loud.wav"
    sf.write(path, np.stack([x, x], axis=1).astype(np.float32), sr)
    return path


def test_input_file_reaches_osc(quiet_then_loud, loudness_model, osc_server) -> None:
    r = run_cli(
        "--input", str(quiet_then_loud), "--headless", "--duration", "3.5", "--model", str(loudness_model),
        "--no-music-gate", "--osc", f"127.0.0.1:{osc_server.port}", "--osc-rate", "20", "--attack", "0.1",
    )
    time.sleep(0.2)  # the last datagrams in flight
    assert r.returncode == 0, r.stderr
    assert "on CPUExecutionProvider" in r.stderr  # the provider really active, read from the session
    assert "Traceback" not in r.stderr
    arousal = [p[0] for p in osc_server.values("/mer/arousal")]
    av = osc_server.values("/mer/av")
    assert len(arousal) >= 20, osc_server.messages[:5]
    assert all(0.0 <= a <= 1.0 and 0.0 <= v <= 1.0 for a, v in av)
    quads = [q[0] for q in osc_server.values("/mer/quadrant")]
    music = [m[0] for m in osc_server.values("/mer/music")]
    assert len(quads) == len(music) and set(music) == {0, 1}
    assert all((q in (1, 2, 3, 4)) == (m == 1) for q, m in zip(quads, music, strict=True))  # 0: no music
    assert music[0] == 0 and music[-1] == 1  # level-only ticks before the first window
    assert len(osc_server.values("/mer/heartbeat")) >= 2
    # the test model's arousal follows loudness: quiet first, loud at the end
    first = [a for a, m in zip(arousal, music, strict=True) if m][:3]  # neutral 0.5 before the first window
    assert first and max(first) < 0.3
    assert max(arousal[-5:]) > 0.6
    # the terminal printer: plain lines when stdout is not a TTY
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    assert len(lines) >= 3 and all("\r" not in ln for ln in lines)
    assert "A [" in lines[-1] and "V [" in lines[-1]


def test_range_pm1_and_prefix(quiet_then_loud, loudness_model, osc_server) -> None:
    r = run_cli(
        "--input", str(quiet_then_loud), "--headless", "--duration", "1.5", "--model", str(loudness_model),
        "--no-music-gate", "--osc", f"127.0.0.1:{osc_server.port}", "--osc-prefix", "/show", "--range", "pm1",
    )
    time.sleep(0.2)
    assert r.returncode == 0, r.stderr
    vals = [p[0] for p in osc_server.values("/show/arousal")]
    assert vals and not osc_server.values("/mer/arousal")
    assert all(-1.0 <= v <= 1.0 for v in vals) and min(vals) < 0.0  # quiet -> below neutral on pm1


def test_broken_model_fails_before_audio(tmp_path, osc_server) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07garbage, not a protobuf")
    broken.with_suffix(".json").write_text('{"sample_rate": 16000, "window_samples": 16000}')
    # a device that does not exist: had audio been opened first, the error would be about it
    r = run_cli("--model", str(broken), "--device", "no-such-device-xyz", "--headless",
                 "--osc", f"127.0.0.1:{osc_server.port}", timeout=30)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("mer-live: error: cannot load model") and "broken.onnx" in lines[0]
    time.sleep(0.1)
    assert osc_server.messages == []


def test_missing_model_file(tmp_path) -> None:
    r = run_cli("--model", str(tmp_path / "nope.onnx"), "--headless", timeout=30)
    assert r.returncode == 2
    assert r.stderr.strip() == f"mer-live: error: model file not found: {tmp_path / 'nope.onnx'}"


def test_missing_default_model_says_so(tmp_path) -> None:
    """A partial install: a copy of the package whose models folder lacks the .onnx, first on the
    path (as a custom build would be), run from a folder that is not the repository."""
    import shutil

    pkg = tmp_path / "mer_live"
    shutil.copytree(ROOT / "mer_live", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (pkg / "models").mkdir()
    shutil.copy(ROOT / "models" / "__init__.py", pkg / "models")
    shutil.copy(ROOT / "models" / "mer-default.json", pkg / "models")
    e = env(PYTHONPATH=str(tmp_path))
    code = "from mer_live.inference.model import default_model_path as d; print(d())"
    probe = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                           timeout=60, env=e)
    assert probe.stdout.strip() == str(pkg / "models" / "mer-default.onnx"), probe.stderr
    r = subprocess.run([sys.executable, "-m", "mer_live", "--headless", "--duration", "1"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60, env=e)
    assert r.returncode == 2
    assert r.stderr.strip() == ("mer-live: error: no model: the default model mer-default.onnx is not "
                                "installed in this version (pass --model PATH)")


def test_bad_config_is_one_line(tmp_path, loudness_model) -> None:
    cfg = tmp_path / "show.toml"
    cfg.write_text('[osc]\nrate_hz = "fast"\n')
    r = run_cli("--config", str(cfg), "--model", str(loudness_model), timeout=30)
    assert r.returncode == 2
    want = 'mer-live: error: show.toml: [osc] rate_hz must be a number in 0.1..1000, got "fast"'
    assert r.stderr.strip() == want
    cfg.write_text("[osc]\nport = 9000\n")
    r = run_cli("--config", str(cfg), timeout=30)
    assert r.returncode == 2 and r.stderr.startswith("mer-live: error: show.toml: unknown key [osc] port")
    r = run_cli("--config", str(tmp_path / "missing.toml"), timeout=30)
    assert r.returncode == 2 and r.stderr.strip().startswith("mer-live: error: config file not found")


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--hop", "0"], "mer-live: error: --hop must be a number of seconds in 0.01..10, got 0.0"),
        (["--pick", "1,x"], "mer-live: error: --pick must be 1-based channel numbers like 1,2, got '1,x'"),
        (["--osc", "nohost"], "mer-live: error: --osc: OSC target must be host:port, got 'nohost'"),
        (["--provider", "tpu"], "mer-live: error: argument --provider: invalid choice: 'tpu'"),
        (["--input", "a.wav", "--demo"], "mer-live: error: --input and --demo cannot be used together"),
    ],
)
def test_bad_flags_are_one_line(args, expected, loudness_model) -> None:
    r = run_cli(*args, "--model", str(loudness_model), "--headless", timeout=30)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.strip().startswith(expected)


def test_undecodable_input_is_one_line(tmp_path, loudness_model) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really")
    r = run_cli("--input", str(bad), "--model", str(loudness_model), "--headless", "--no-osc", timeout=30)
    assert r.returncode == 1
    err = [ln for ln in r.stderr.splitlines() if "error" in ln]
    assert len(err) == 1 and err[0].startswith("mer-live: error: cannot decode audio file bad.wav")
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly(sig, quiet_then_loud, loudness_model) -> None:
    p = subprocess.Popen(
        [sys.executable, "-m", "mer_live", "--input", str(quiet_then_loud), "--loop", "--headless",
         "--no-osc", "--model", str(loudness_model)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(),
    )
    try:
        got_line = threading.Event()

        def read() -> None:
            assert p.stdout is not None
            for _line in p.stdout:
                got_line.set()

        threading.Thread(target=read, daemon=True).start()
        assert got_line.wait(30), "no live line printed"
        t0 = time.monotonic()
        p.send_signal(sig)
        rc = p.wait(timeout=10)
        took = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=5)
    assert rc == 0, p.stderr.read() if p.stderr else ""
    assert took < 2.5, f"stopping took {took:.2f} s"
    err = p.stderr.read() if p.stderr else ""
    assert "Traceback" not in err and "stopped after" in err


def test_print_config_merges_file_and_flags(tmp_path) -> None:
    cfg = tmp_path / "show.toml"
    cfg.write_text('[osc]\nprefix = "/show"\nrate_hz = 10\n')
    r = run_cli("--config", str(cfg), "--osc-rate", "50", "--hop", "0.25", "--no-osc", "--print-config")
    assert r.returncode == 0, r.stderr
    printed = tomllib.loads(r.stdout)
    assert printed["osc"]["prefix"] == "/show" and printed["osc"]["rate_hz"] == 50.0
    assert printed["osc"]["enabled"] is False and printed["pipeline"]["hop_s"] == 0.25


def test_version() -> None:
    from mer_live import __version__

    r = run_cli("--version", timeout=30)
    assert r.returncode == 0 and r.stdout.strip() == f"mer-live {__version__}"


def test_no_display_runs_headless_with_notice(quiet_then_loud, loudness_model) -> None:
    r = run_cli("--input", str(quiet_then_loud), "--duration", "1.2", "--no-osc",
                "--model", str(loudness_model))
    assert r.returncode == 0, r.stderr
    assert "mer-live: no display (DISPLAY/WAYLAND_DISPLAY unset): running headless" in r.stderr


def test_demo_fallback_without_input_devices(loudness_model) -> None:
    probe = subprocess.run(
        [sys.executable, "-c", "from mer_live.assemble import _no_input_devices as f; print(f())"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env=env(),
    )
    if probe.stdout.strip() != "True":
        pytest.skip("this machine has an input device")
    r = run_cli("--headless", "--duration", "1.5", "--no-osc", "--model", str(loudness_model))
    assert r.returncode == 0, r.stderr
    assert "no input device found: running the bundled demo instead" in r.stderr
    assert "A [" in r.stdout


@pytest.mark.gui
def test_dashboard_runs_offscreen_for_duration(quiet_then_loud, loudness_model, tmp_path) -> None:
    need_module("PySide6", "cpu")  # a default dependency
    r = run_cli("--input", str(quiet_then_loud), "--duration", "2", "--no-osc",
                "--model", str(loudness_model), env=env(QT_QPA_PLATFORM="offscreen",
                                                         XDG_CONFIG_HOME=str(tmp_path)), timeout=90)
    assert r.returncode == 0, r.stderr
    assert "running headless" not in r.stderr and "Traceback" not in r.stderr
    assert "stopped after" in r.stderr
    assert (tmp_path / "mer-live" / "dashboard.conf").is_file()  # its place is remembered, there


def test_bad_device_name_is_one_line_error(loudness_model, osc_server) -> None:
    """A device that does not exist: one error line that names it and lists what exists, exit 1."""
    r = run_cli("--device", "no-such-device-xyz", "--headless", "--model", str(loudness_model),
                "--osc", f"127.0.0.1:{osc_server.port}", timeout=30)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("mer-live: error:")]
    assert len(errors) == 1, r.stderr
    assert ("'no-such-device-xyz'" in errors[0] and "inputs:" in errors[0]) or "libportaudio2" in errors[0]
    time.sleep(0.1)
    assert not osc_server.values("/mer/arousal")  # nothing was started


def _inet_sockets(pid: int) -> list[tuple[str, str, str]]:
    """(table, remote address, state) of every TCP/UDP socket the process holds, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            link = os.readlink(fd)
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    out = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            f = line.split()
            if len(f) > 9 and f[9] in inodes:
                out.append((table, f[2], f[3]))
    return out


def test_no_listening_socket(loudness_model, osc_server) -> None:
    """Security: mer-live only sends. Its UDP sockets are connected to the targets, none listens."""
    if not Path("/proc/self/net/udp").exists():
        pytest.skip("needs Linux /proc")
    p = subprocess.Popen(
        [sys.executable, "-m", "mer_live", "--demo", "--headless", "--duration", "20", "--model",
         str(loudness_model), "--osc", f"127.0.0.1:{osc_server.port}"],
        cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not osc_server.values("/mer/arousal") and time.monotonic() < deadline and p.poll() is None:
            time.sleep(0.05)
        assert osc_server.values("/mer/arousal"), "mer-live sent nothing"
        socks = _inet_sockets(p.pid)
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)
    assert socks, "the OSC socket was not found in /proc"
    for table, remote, state in socks:
        assert not (table.startswith("tcp") and state == "0A"), f"a listening TCP socket: {socks}"
        if table.startswith("udp"):
            assert set(remote.split(":")[1]) != {"0"}, f"an unconnected (receiving) UDP socket: {socks}"


def test_unreachable_osc_host_is_one_warning_line(loudness_model) -> None:
    """An unknown host name: one warning line naming it, the show goes on (values printed), exit 0."""
    r = run_cli("--demo", "--headless", "--duration", "2.5", "--model", str(loudness_model),
                "--osc", "no-such-host.invalid:9000", "--osc-rate", "30", timeout=60)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    about = [ln for ln in r.stderr.splitlines() if "no-such-host.invalid" in ln and "warning" in ln]
    assert len(about) == 1, r.stderr
    assert about[0].startswith("mer-live: warning: OSC target no-such-host.invalid:9000:")
    assert "A [" in r.stdout  # estimates kept coming


def test_signal_handler_takes_no_lock_the_main_thread_may_hold() -> None:
    """The handler runs in the main thread between two bytecodes, possibly while that thread holds
    the stop Event's own lock (every pass of ``event.wait`` takes it for an instant): a handler that
    called ``Event.set`` there deadlocked (CI once saw SIGTERM hang mer-live). It must return at
    once, and the stop must still arrive."""
    from mer_live.cli import _Stopper

    s = _Stopper()
    s.install()
    try:
        def interrupted_inside_wait() -> None:
            with s.event._cond:  # what the main thread holds inside Event.wait
                s._handle(signal.SIGTERM, None)

        t = threading.Thread(target=interrupted_inside_wait, daemon=True)
        t.start()
        t.join(3)
        assert not t.is_alive(), "the signal handler blocked on the Event's lock"
        assert s.event.wait(2), "the stop never arrived"
    finally:
        s.restore()
