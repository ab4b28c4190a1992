"""The addresses a node advertises and listens on, chosen by Docker's rules."""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct

from shoal.api.errors import BadRequest

SWARM_PORT = 2377
_SIOCGIFADDR = 0x8915


def host_of(addr: str) -> str:
    host, _, _ = addr.rpartition(":")
    return host.strip("[]") or addr


def advertise_address(given: str, listen: str) -> str:
    """Docker's rules: an address (port defaults to the listen port, 2377), an interface name,
    or — when nothing is given — the address of the interface holding the default route."""
    port = listen.rpartition(":")[2] or str(SWARM_PORT)
    if given:
        host, sep, p = given.rpartition(":")
        if sep and p.isdigit() and host:
            given, port = host, p
        try:
            ipaddress.ip_address(given.strip("[]"))
            return f"{given}:{port}"
        except ValueError:
            addr = interface_address(given)
            if addr is None:
                raise BadRequest(
                    f"advertise address must be a non-zero IP address or network interface "
                    f"(with optional port number): {given!r}"
                ) from None
            return f"{addr}:{port}"
    host = listen.rpartition(":")[0]
    if host and host not in ("0.0.0.0", "::", "[::]"):
        return f"{host}:{port}"
    addr = route_address("192.0.2.1")
    if addr is None:
        raise BadRequest(
            "could not choose an IP address to advertise since this system does not have "
            "a default route"
        )
    return f"{addr}:{port}"


def route_address(dest: str) -> str | None:
    """The local address the kernel would use towards `dest`. A UDP "connect" sends nothing."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((dest, 9))
            addr: str = s.getsockname()[0]
            return addr
        except OSError:
            return None


def interface_address(name: str) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            packed = fcntl.ioctl(s.fileno(), _SIOCGIFADDR, struct.pack("256s", name[:15].encode()))
        except OSError:
            return None
    return socket.inet_ntoa(packed[20:24])
