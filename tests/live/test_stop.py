"""Issue #29: stopping never hangs. A real ``mer-live`` run with a fault planted in the library an
output stops through (``tests/faults.py``: the stop raises KeyError, ValueError, RuntimeError or
OSError, or blocks) exits within 2 s of SIGTERM or Ctrl-C with exit code 0, a warning names the
output, and the blackout reaches an independent receiver (olad) wherever the sender could still
send. In-process: ``stop_parts`` and ``LiveApp`` with an output the way a new one (Link, MIDI)
would come, and test receivers that fail within seconds when nothing arrives."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mer_live.inference.model import Model
from mer_live.live.app import LiveApp
from mer_live.live.pipeline import PipelineConfig
from mer_live.live.stopping import Part, stop_parts
from mer_live.sources.filesource import FileSource
from tests.audio import pulse_fixture  # noqa: F401
from tests.net import Wire
from tests.olad import ARTNET_UNIVERSE, SACN_UNIVERSE, olad  # noqa: F401
from tests.proc import LineProcess
from tests.test_cli import ROOT, env

pytestmark = pytest.mark.timeout(120)
SR = 22050
EXIT_WITHIN_S = 2.0  #: the issue's promise: gone within 2 s of SIGTERM / Ctrl-C


@pytest.fixture(scope="module")
def tone(tmp_path_factory) -> Path:
    t = np.arange(6 * SR) / SR
    path = tmp_path_factory.mktemp("stop") / "tone.wav"
    sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), SR)
    return path


def _start(fault: str, toml: Path, model: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.faults", fault, "--", "--config", str(toml),
                             "--headless", "--model", str(model), "--no-music-gate"],
                            cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _stop(p: subprocess.Popen, sig: int = signal.SIGTERM) -> tuple[int, float, list[str]]:
    """Signal ``p``; its exit code, the seconds until it was gone, and its stderr lines."""
    t0 = time.monotonic()
    p.send_signal(sig)
    try:
        rc = p.wait(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(timeout=5)
        raise AssertionError(f"still running 15 s after {signal.Signals(sig).name}: "
                             f"{p.stderr.read() if p.stderr else ''}") from None
    took = time.monotonic() - t0
    return rc, took, (p.stderr.read() if p.stderr else "").splitlines()


# (fault, protocol, whether the blackout can still go out)
LIGHTING_FAULTS = [
    ("sacn-deactivate:KeyError", "sacn", True),
    ("sacn-deactivate:ValueError", "sacn", True),
    ("sacn-deactivate:RuntimeError", "sacn", True),
    ("sacn-deactivate:OSError", "sacn", True),
    ("sacn-universe:KeyError", "sacn", False),  # the case: the universe's slot itself raises
    ("sacn-stop:RuntimeError", "sacn", True),  # the library's stop raises, its thread runs on
    ("sacn-stop:block", "sacn", True),
    ("artnet-close:ValueError", "artnet", True),
    ("artnet-close:block", "artnet", True),
]


@pytest.mark.parametrize("fault, protocol, blackout", LIGHTING_FAULTS, ids=[f[0] for f in LIGHTING_FAULTS])
def test_a_lighting_library_that_raises_or_blocks_on_stop_never_hangs_mer_live(
        tmp_path, tone, loudness_model, olad, fault: str, protocol: str, blackout: bool) -> None:  # noqa: F811
    universe = SACN_UNIVERSE if protocol == "sacn" else ARTNET_UNIVERSE
    address = 1 + 3 * [f[0] for f in LIGHTING_FAULTS].index(fault)  # each case its own channels
    ours = slice(address - 1, address + 2)
    toml = tmp_path / "show.toml"
    toml.write_text(
        f'[source]\ninput = "{tone}"\nloop = true\n[osc]\nenabled = false\n'
        f'[lighting]\nenabled = true\nprotocol = "{protocol}"\nhost = "127.0.0.1"\nuniverse = {universe}\n'
        f'[[lighting.fixtures]]\nname = "wash"\naddress = {address}\nkind = "rgb"\n')
    p = _start(fault, toml, loudness_model)
    try:
        olad.expect(universe, lambda ch: any(ch[ours]), f"light from mer-live ({fault})", timeout=30.0)
        sig = signal.SIGINT if fault == "artnet-close:block" else signal.SIGTERM  # Ctrl-C too
        rc, took, err = _stop(p, sig)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=5)
    assert rc == 0, err
    assert took < EXIT_WITHIN_S, f"{fault}: exited {took:.2f} s after the signal: {err}"
    name = f"lighting ({protocol} to 127.0.0.1)"
    warnings = [ln for ln in err if ln.startswith("mer-live: warning:")]
    assert any(name in ln for ln in warnings), f"no warning names the output: {err}"
    what = fault.split(":")[1]
    if what == "block" or fault == "sacn-stop:RuntimeError":  # something was left running
        said = [ln for ln in warnings if "abandoned" in ln]
        assert len(said) == 1 and name in said[0] and said[0].endswith("exiting anyway"), err
    else:
        assert any(what in ln for ln in warnings), err  # the library's exception, by its type
        assert not any("abandoned" in ln for ln in warnings), err  # its stop ran: nothing left
    assert not any("Traceback" in ln for ln in err), err
    if blackout:
        olad.expect(universe, lambda ch: not any(ch[ours]), f"blackout after the signal ({fault})")


RECORD_FAULTS = [("record-fsync:block", "abandoned"), ("record-fsync:OSError", "writing")]


@pytest.mark.parametrize("fault, said", RECORD_FAULTS, ids=[f[0] for f in RECORD_FAULTS])
def test_a_record_on_a_hung_or_failing_file_system_never_hangs_mer_live(tmp_path, tone, loudness_model,
                                                                       fault: str, said: str) -> None:
    rec = tmp_path / "show.csv"
    toml = tmp_path / "show.toml"
    toml.write_text(f'[source]\ninput = "{tone}"\nloop = true\n[osc]\nenabled = false\n'
                    f'[run]\nrecord = "{rec}"\n')
    p = _start(fault, toml, loudness_model)
    try:
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline and p.poll() is None:  # rows written, so fsync was reached
            if rec.is_file() and len(rec.read_text().splitlines()) >= 2:  # the header and a row
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"no rows in {rec} within 30 s")
        time.sleep(0.7)  # past the writer's first flush (every 0.5 s)
        rc, took, err = _stop(p)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=5)
    assert rc == 0, err
    assert took < EXIT_WITHIN_S, f"{fault}: exited {took:.2f} s after SIGTERM: {err}"
    hits = [ln for ln in err if ln.startswith("mer-live: warning:") and said in ln]
    assert len(hits) == 1 and "record" in hits[0] and str(rec) in hits[0], err


@pytest.mark.parametrize("fault, said", [("osc-close:OSError", "OSC target 127.0.0.1:"),
                                         ("osc-close:block", "abandoned")], ids=["OSError", "block"])
def test_an_osc_socket_that_fails_or_blocks_on_close_never_hangs_mer_live(tmp_path, tone, loudness_model,
                                                                         fault: str, said: str) -> None:
    wire = Wire()
    toml = tmp_path / "show.toml"
    toml.write_text(f'[source]\ninput = "{tone}"\nloop = true\n[osc]\ntargets = ["127.0.0.1:{wire.port}"]\n')
    p = _start(fault, toml, loudness_model)
    try:
        wire.wait_for("/mer/av", n=3, timeout=30.0)  # it sends: now stop it
        rc, took, err = _stop(p)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=5)
        wire.close()
    assert rc == 0, err
    assert took < EXIT_WITHIN_S, f"{fault}: exited {took:.2f} s after SIGTERM: {err}"
    hits = [ln for ln in err if ln.startswith("mer-live: warning:") and said in ln]
    assert len(hits) == 1 and "OSC" in hits[0], err
    if said == "abandoned":
        assert "OSC: its stop did not return" in hits[0]
    else:
        assert "close failed: planted fault" in hits[0]


@pytest.mark.audio
@pytest.mark.parametrize("fault, args", [
    ("portaudio-close:block", ["--device", "pulse"]),  # the input device's stream
    ("portaudio-stop:block", ["--play"]),  # --input --play: the monitoring output's stream
], ids=["device-close-blocks", "play-stop-blocks"])
def test_an_audio_stream_that_never_closes_never_hangs_mer_live(tmp_path, tone, loudness_model, pulse,
                                                               fault: str, args: list[str]) -> None:
    toml = tmp_path / "show.toml"
    toml.write_text("[osc]\nenabled = false\n" + ("" if "--device" in args else
                                                   f'[source]\ninput = "{tone}"\nloop = true\n'))
    p = subprocess.Popen([sys.executable, "-m", "tests.faults", fault, "--", "--config", str(toml),
                          "--headless", "--model", str(loudness_model), "--no-music-gate", *args],
                         cwd=ROOT, env=env(**pulse.env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    lines = LineProcess(p, p.stdout)
    try:  # the terminal printer's lines: estimates are flowing
        assert lines.next_matching(lambda ln: " A [" in ln, 30.0), f"no estimate printed ({fault})"
        rc, took, err = _stop(p)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=5)
    assert rc == 0, err
    assert took < EXIT_WITHIN_S, f"{fault}: exited {took:.2f} s after SIGTERM: {err}"
    said = [ln for ln in err if "abandoned" in ln]
    assert len(said) == 1 and "pipeline: its stop did not return" in said[0], err


# ----------------------------------------------------------------------------- in-process


def test_stop_parts_warns_each_exception_names_the_part_and_abandons_what_blocks(caplog) -> None:
    release = threading.Event()

    def raiser(exc: BaseException):
        def stop() -> None:
            raise exc
        return stop

    parts = [Part(f"out-{type(e).__name__}", raiser(e))
             for e in (KeyError(3), ValueError("bad universe"), RuntimeError("gone"), OSError(9, "bad fd"))]
    parts.append(Part("out-blocks", release.wait))
    parts.append(Part("out-fine", lambda: None))
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="mer_live.live.stopping"):
        abandoned = stop_parts(parts, deadline_s=0.5)
    took = time.monotonic() - t0
    release.set()
    assert abandoned == ["out-blocks: its stop did not return"]
    assert took < 1.5  # the deadline held: 0.5 s, not the blocked stop's forever
    text = caplog.text
    for kind in ("KeyError", "ValueError", "RuntimeError", "OSError"):
        assert f"stopping out-{kind} failed: {kind}:" in text
    assert "out-fine" not in text


class _NewOutput:
    """An output the way a new one (Link, MIDI) comes: a library thread that is not a daemon, and
    a stop that raises (or blocks) before that thread is told to end."""

    part_name = "link (test peer)"

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.release = threading.Event()
        self.thread = threading.Thread(target=self.release.wait, name="fake-link-lib")  # not a daemon

    def __call__(self, _estimate) -> None:
        pass

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        if self.mode == "block":
            self.release.wait()
        raise ValueError("library says no")


@pytest.mark.parametrize("mode", ["raise", "block"])
def test_liveapp_stops_a_new_output_within_its_deadline_for_free(loudness_model, caplog, mode: str) -> None:
    model = Model(loudness_model, provider="cpu")
    x = (0.2 * np.random.default_rng(1).standard_normal(SR * 2)).astype(np.float32)
    out = _NewOutput(mode)
    app = LiveApp(model, PipelineConfig(), lambda _s: FileSource(x, SR, realtime=True, loop=True, name="n"),
                  outputs=[out])
    try:
        app.start()
        time.sleep(0.3)
        t0 = time.monotonic()
        with caplog.at_level(logging.WARNING):
            abandoned = app.stop()
        took = time.monotonic() - t0
    finally:
        out.release.set()  # let the fake library's thread end, so this test process can exit
        out.thread.join(2.0)
    assert took < EXIT_WITHIN_S
    assert len(abandoned) == 1 and abandoned[0].startswith("link (test peer): ")
    assert "'fake-link-lib' still runs" in abandoned[0]
    if mode == "raise":
        assert "stopping link (test peer) failed: ValueError: library says no" in caplog.text
    else:
        assert "its stop did not return" in abandoned[0]
    assert not app.pipeline.running


def test_a_receiver_that_never_gets_its_data_fails_within_seconds() -> None:
    wire = Wire()
    try:
        t0 = time.monotonic()
        with pytest.raises(AssertionError, match=r"0 of 1 /mer/av within 1 s"):
            wire.wait_for("/mer/av", timeout=1.0)
        assert time.monotonic() - t0 < 5.0
    finally:
        wire.close()


def test_olad_that_never_gets_its_frame_fails_within_seconds(olad) -> None:  # noqa: F811
    t0 = time.monotonic()
    with pytest.raises(AssertionError, match=r"no channel 512 at full within 1 s"):
        olad.expect(SACN_UNIVERSE, lambda ch: len(ch) == 512 and ch[511] == 255, "channel 512 at full",
                    timeout=1.0)
    assert time.monotonic() - t0 < 5.0


def test_a_test_that_leaves_a_library_thread_running_fails_instead_of_hanging_pytest(tmp_path) -> None:
    (tmp_path / "conftest.py").write_text("from tests.conftest import pytest_sessionfinish  # noqa: F401\n")
    (tmp_path / "test_leak.py").write_text(
        "import threading\n\n"
        "def test_leaks():\n"
        "    threading.Thread(target=threading.Event().wait, name='leaked-lib').start()  # never ends\n")
    p = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                         cwd=ROOT, env=env(PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate(timeout=5)
        raise AssertionError(f"pytest hung on the leaked thread: {out}") from None
    assert p.returncode == 1, out  # the test passed, the leak fails the run
    assert "1 passed" in out and "non-daemon threads running: 'leaked-lib'" in out, out
