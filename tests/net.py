"""What the OSC tests need of the network: this machine's broadcast addresses (read from the kernel,
not guessed) and a real UDP receiver."""

from __future__ import annotations

import fcntl
import socket
import struct
import threading
import time

from pythonosc.osc_packet import OscPacket

SIOCGIFFLAGS, SIOCGIFADDR, SIOCGIFBRDADDR = 0x8913, 0x8915, 0x8919
IFF_UP, IFF_BROADCAST, IFF_LOOPBACK = 0x1, 0x2, 0x8


def broadcast_addresses() -> list[tuple[str, str, str]]:
    """``(interface, its IPv4 address, its broadcast address)`` of every interface that is up, is
    not loopback, has an IPv4 address and can broadcast (Linux ioctls; empty elsewhere)."""
    out: list[tuple[str, str, str]] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            req = struct.pack("256s", name.encode()[:15])
            try:
                flags = struct.unpack("H", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req)[16:18])[0]
                if not flags & IFF_UP or not flags & IFF_BROADCAST or flags & IFF_LOOPBACK:
                    continue
                addr = socket.inet_ntoa(fcntl.ioctl(s.fileno(), SIOCGIFADDR, req)[20:24])
                brd = socket.inet_ntoa(fcntl.ioctl(s.fileno(), SIOCGIFBRDADDR, req)[20:24])
            except OSError:  # no IPv4 address on it
                continue
            if brd != "0.0.0.0":
                out.append((name, addr, brd))
    return out


class Wire:
    """A UDP receiver that keeps every datagram with its arrival time, and the messages in them."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.dgrams: list[tuple[float, bytes]] = []
        self.messages: list[tuple[float, str, tuple]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                d = self.sock.recv(65536)
            except (TimeoutError, OSError):
                continue
            now = time.monotonic()
            self.dgrams.append((now, d))
            for m in OscPacket(d).messages:
                self.messages.append((now, m.message.address, tuple(m.message.params)))

    def wait_for(self, address: str, n: int = 1, timeout: float = 5.0) -> list[tuple]:
        """The values of ``address`` once ``n`` have arrived; an ``AssertionError`` after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.values(address)
            if len(got) >= n:
                return got
            time.sleep(0.02)
        seen = sorted({a for _t, a, _p in self.messages})
        raise AssertionError(f"UDP port {self.port}: {len(self.values(address))} of {n} {address} "
                             f"within {timeout:g} s (other addresses seen: {seen or 'none'})")

    def values(self, address: str) -> list[tuple]:
        return [p for _t, a, p in self.messages if a == address]

    def times(self, address: str) -> list[float]:
        return [t for t, a, _p in self.messages if a == address]

    def close(self) -> None:
        time.sleep(0.2)  # the last datagrams in flight
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()
