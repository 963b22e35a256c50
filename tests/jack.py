"""A private JACK server on the dummy driver (no sound card needed) for the MIDI tests.

Why JACK: this machine and CI have no /dev/snd, so no ALSA sequencer; python-rtmidi's wheel also
speaks JACK, and Debian's jackd2 runs on its dummy driver without hardware. The server gets a name
of its own (``JACK_DEFAULT_SERVER``), so nothing else on the machine is touched; it is stopped by
its pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.conftest import need_module, need_tool


@pytest.fixture(name="jack")
def jack_server(tmp_path) -> Iterator[dict[str, str]]:
    """A running ``jackd -d dummy -r 48000 -p 128`` (2.7-ms periods: MIDI arrives in period
    batches, 21 ms with the default 1024); yields the environment that reaches it."""
    jackd = need_tool("jackd", "jackd2")
    need_module("rtmidi", "midi")
    mido = need_module("mido", "midi")
    name = f"mer-test-{os.getpid()}-{time.monotonic_ns() % 100000}"
    env = {"JACK_DEFAULT_SERVER": name, "JACK_NO_AUDIO_RESERVATION": "1", "JACK_NO_START_SERVER": "1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    log = (tmp_path / "jackd.log").open("w")
    p = subprocess.Popen([jackd, "-n", name, "-d", "dummy", "-r", "48000", "-p", "128"], stdout=log,
                         stderr=subprocess.STDOUT)
    try:
        backend = mido.Backend("mido.backends.rtmidi/UNIX_JACK", load=True)
        deadline = time.monotonic() + 10
        while True:  # ready when a client can open a port on it
            try:
                port = backend.open_output("probe", virtual=True)
                port.close()
                break
            except Exception:
                if p.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"jackd did not start: {(tmp_path / 'jackd.log').read_text()[-500:]}")
                time.sleep(0.1)
        yield {**env, "MER_TEST_JACKD_PID": str(p.pid)}  # a test may stop the server under mer-live
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
        log.close()
        xruns = (tmp_path / "jackd.log").read_text(errors="replace").lower().count("xrun")
        if xruns:  # the dummy driver under load: MIDI events of a lost period can be dropped
            print(f"\njackd reported {xruns} xrun lines")
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
