"""Network facts of this machine that the OSC tests need (read from the kernel, not guessed)."""

from __future__ import annotations

import fcntl
import socket
import struct

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
