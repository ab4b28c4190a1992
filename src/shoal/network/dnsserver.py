"""shoal's DNS servers: one per network, on ``169.254.254.53:53`` UDP and TCP inside the
network's namespace (sockets made there, served from shoald's event loop), and the forwarder
that sends other names to the host's own resolvers from the host namespace.

What to answer is decided by an ``Answer`` callable (the data plane's, over ``dns.respond``);
this module only moves packets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable

from shoal.network import netns
from shoal.network.names import DNS_ADDR, DNS_PORT

log = logging.getLogger(__name__)

# network ID, source address, the query, over TCP → the answer (None: no answer at all)
Answer = Callable[[str, str, bytes, bool], Awaitable[bytes | None]]

IP_FREEBIND = 15
TCP_IDLE = 10.0  # seconds a TCP client may keep a connection without a query
FORWARD_TIMEOUT = 2.0  # per upstream server


class NetworkDns:
    """The DNS server of one network."""

    def __init__(self, network_id: str, ns_path: str, answer: Answer) -> None:
        self.network_id = network_id
        self.ns_path = ns_path
        self.answer = answer
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        udp = netns.socket_in(self.ns_path, socket.AF_INET, socket.SOCK_DGRAM)
        tcp = netns.socket_in(self.ns_path, socket.AF_INET, socket.SOCK_STREAM)
        try:
            for s in (udp, tcp):
                s.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.setblocking(False)
                s.bind((DNS_ADDR, DNS_PORT))
            tcp.listen(64)
            transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), sock=udp)
            self._udp = transport
            self._tcp = await asyncio.start_server(self._serve_tcp, sock=tcp)
        except BaseException:
            udp.close()
            tcp.close()
            await self.close()
            raise

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tcp.wait_closed(), 1.0)
            self._tcp = None
        for t in list(self._tasks):
            t.cancel()
        self._tasks.clear()

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer_udp(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            reply = await self.answer(self.network_id, addr[0], data, False)
        except Exception:
            log.exception("DNS query from %s on %s", addr[0], self.network_id)
            return
        if reply is not None and self._udp is not None:
            self._udp.sendto(reply, addr)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("", 0)
        try:
            while True:
                head = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE)
                data = await asyncio.wait_for(
                    reader.readexactly(struct.unpack("!H", head)[0]), TCP_IDLE
                )
                reply = await self.answer(self.network_id, peer[0], data, True)
                if reply is None:
                    break
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        except Exception:
            log.exception("DNS over TCP from %s on %s", peer[0], self.network_id)
        finally:
            writer.close()


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: NetworkDns) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.server._spawn(self.server._answer_udp(data, addr))


# ---------------------------------------------------------------- upstream


def nameservers(text: str) -> list[str]:
    """The ``nameserver`` addresses of a resolv.conf, in order (never shoal's own, nor
    dockerd's embedded resolver, which only answers inside containers)."""
    out: list[str] = []
    for line in text.splitlines():
        parts = line.split("#", 1)[0].split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            addr = parts[1].split("%", 1)[0]
            if addr not in (DNS_ADDR, "127.0.0.11") and addr not in out:
                out.append(addr)
    return out


class Forwarder:
    """Forwards queries to the host's resolvers (from ``resolv_conf``, re-read when it
    changes), from the namespace shoald runs in: the host's."""

    def __init__(self, resolv_conf: str = "/etc/resolv.conf", timeout: float = FORWARD_TIMEOUT):
        self.resolv_conf = resolv_conf
        self.timeout = timeout
        self._stamp: tuple[float, int] | None = None
        self._servers: list[str] = []

    def servers(self) -> list[str]:
        try:
            st = os.stat(self.resolv_conf)
        except OSError:
            return []
        stamp = (st.st_mtime, st.st_ino)
        if stamp != self._stamp:
            try:
                with open(self.resolv_conf) as f:
                    self._servers = nameservers(f.read())
            except OSError:
                self._servers = []
            self._stamp = stamp
        return self._servers

    async def forward(self, packet: bytes, tcp: bool) -> bytes | None:
        """The first answer of the host's resolvers, or None if none answered."""
        for server in self.servers():
            try:
                if tcp:
                    return await asyncio.wait_for(_ask_tcp(server, packet), self.timeout)
                return await asyncio.wait_for(_ask_udp(server, packet), self.timeout)
            except (OSError, TimeoutError, asyncio.IncompleteReadError):
                continue
        return None


async def _ask_udp(server: str, packet: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    got: asyncio.Future[bytes] = loop.create_future()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            if data[:2] == packet[:2] and not got.done():
                got.set_result(data)

        def error_received(self, exc: Exception) -> None:
            if not got.done():
                got.set_exception(exc)

    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    transport, _ = await loop.create_datagram_endpoint(
        Client, remote_addr=(server, DNS_PORT), family=family
    )
    try:
        transport.sendto(packet)
        return await got
    finally:
        transport.close()


async def _ask_tcp(server: str, packet: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(server, DNS_PORT)
    try:
        writer.write(struct.pack("!H", len(packet)) + packet)
        await writer.drain()
        size = struct.unpack("!H", await reader.readexactly(2))[0]
        return await reader.readexactly(size)
    finally:
        writer.close()
