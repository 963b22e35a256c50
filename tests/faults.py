"""``python -m tests.faults FAULT -- MER-LIVE ARGS``: a real ``mer-live`` run with one fault planted
in a library it stops through (issue #29: stopping never hangs).

The fake library is the real one (``sacn``, ``stupidArtnet``, ``os.fsync`` for the record) with a
single method replaced, installed in ``sys.modules`` before ``mer_live.cli.main`` runs, so that
everything else (the frames on the wire, the file) is real. FAULT is ``WHERE:WHAT``:

- ``sacn-deactivate:KeyError`` (or ValueError, RuntimeError, OSError): the stream-terminated
  packets raise, after the blackout frame went out; the library's stop must still run;
- ``sacn-universe:KeyError``: the universe's slot raises when the blackout is set (the issue's case:
  no blackout can be sent);
- ``sacn-stop:RuntimeError``: the library's stop raises without stopping its (non-daemon) thread;
- ``sacn-stop:block``: the library's stop never returns;
- ``artnet-close:ValueError`` / ``artnet-close:block``: the Art-Net socket's close;
- ``record-fsync:block`` / ``record-fsync:OSError``: the record's file system hangs or fails;
- ``osc-close:OSError`` / ``osc-close:block``: the OSC sender's socket;
- ``portaudio-close:block``, ``portaudio-stop:block``: an audio stream (the input device, or the
  ``--play`` output) whose close or stop never returns (a dead audio server).

Only this module's own code plants faults; it never imports pytest (a plain subprocess).
"""

from __future__ import annotations

import os
import sys
import threading
import types
from typing import Any

EXCEPTIONS: dict[str, type[BaseException]] = {
    "KeyError": KeyError, "ValueError": ValueError, "RuntimeError": RuntimeError, "OSError": OSError,
}


def fault(what: str, where: str) -> None:
    """Raise the planted exception, or block forever (``block``)."""
    if what == "block":
        threading.Event().wait()
    raise EXCEPTIONS[what](f"planted fault in {where}")


def plant_sacn(where: str, what: str) -> None:
    import sacn as real

    class Sender(real.sACNsender):  # type: ignore[misc, name-defined]
        _running = False

        def start(self) -> None:
            super().start()
            self._running = True

        def stop(self) -> None:
            if where == "stop" and self._running:
                fault(what, "sACNsender.stop")
            super().stop()

        def deactivate_output(self, universe: int) -> None:
            if where == "deactivate":
                fault(what, "sACNsender.deactivate_output")
            super().deactivate_output(universe)

        def __getitem__(self, item: int) -> Any:  # the frame thread's sends still work: only the stop fails
            if where == "universe" and self._running and threading.current_thread().name != "mer-lighting":
                fault(what, f"sACNsender[{item}]")
            return super().__getitem__(item)

    fake = types.ModuleType("sacn")
    fake.__dict__.update({k: v for k, v in real.__dict__.items() if not k.startswith("__")})
    fake.sACNsender = Sender
    sys.modules["sacn"] = fake


def plant_artnet(where: str, what: str) -> None:
    import stupidArtnet as real

    class Node(real.StupidArtnet):  # type: ignore[misc, name-defined]
        _closing = False

        def close(self) -> None:  # the first close (mer-live's stop) fails; the library's __del__ is spared
            if where == "close" and not self._closing:
                self._closing = True
                fault(what, "StupidArtnet.close")
            super().close()

    fake = types.ModuleType("stupidArtnet")
    fake.__dict__.update({k: v for k, v in real.__dict__.items() if not k.startswith("__")})
    fake.StupidArtnet = Node
    sys.modules["stupidArtnet"] = fake


def plant_record(where: str, what: str) -> None:
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if where == "fsync" and threading.current_thread().name == "mer-record":
            fault(what, "os.fsync")
        real_fsync(fd)

    os.fsync = fsync


def plant_portaudio(where: str, what: str) -> None:
    import sounddevice as sd

    base = sd._StreamBase  # InputStream (a device) and OutputStream (--play) both stop through it
    real = getattr(base, where)

    def planted(self: Any, *a: Any, **k: Any) -> Any:
        fault(what, f"PortAudio stream.{where}")
        return real(self, *a, **k)

    setattr(base, where, planted)


def plant_osc(where: str, what: str) -> None:
    import socket

    real = socket.socket.close

    def close(self: socket.socket) -> None:  # only the OSC sender's sockets: UDP and connected
        if where == "close" and self.type == socket.SOCK_DGRAM and self.fileno() >= 0:
            try:
                self.getpeername()
            except OSError:
                pass  # not connected: not an OSC target's socket
            else:
                fault(what, "the OSC socket's close")
        real(self)

    socket.socket.close = close  # type: ignore[method-assign]


def main(argv: list[str]) -> int:
    spec, sep, rest = argv[0], argv[1], argv[2:]
    assert sep == "--", "usage: python -m tests.faults WHERE:WHAT -- MER-LIVE ARGS"
    lib_where, what = spec.split(":")
    lib, where = lib_where.split("-", 1)
    assert what == "block" or what in EXCEPTIONS, what
    plant = {"sacn": plant_sacn, "artnet": plant_artnet, "record": plant_record, "portaudio": plant_portaudio,
             "osc": plant_osc}
    plant[lib](where, what)
    from mer_live.cli import main as mer_live

    return mer_live(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
