"""A stand-in for a host's upstream resolver, for tests that must not send DNS anywhere else:

    python -m shoal.testing.dnsstub --listen 10.211.1.11 --answer 192.0.2.80

answers every A query with ``--answer`` (TTL 60), except names that begin with ``missing.``
(NXDOMAIN), on UDP and TCP port 53 of ``--listen``. Point a data plane's resolv.conf at it.
"""

from __future__ import annotations

import argparse
import asyncio
import struct

from dnslib import QTYPE, RCODE, RR, A, DNSRecord


def answer(packet: bytes, address: str) -> bytes:
    query = DNSRecord.parse(packet)
    reply = query.reply()
    name = str(query.q.qname)
    if name.startswith("missing."):
        reply.header.rcode = RCODE.NXDOMAIN
    elif query.q.qtype == QTYPE.A:
        reply.add_answer(RR(query.q.qname, QTYPE.A, rdata=A(address), ttl=60))
    return bytes(reply.pack())


async def serve(listen: str, address: str, port: int = 53) -> None:
    loop = asyncio.get_running_loop()

    class Udp(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self.transport.sendto(answer(data, address), addr)  # type: ignore[attr-defined]

    async def tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            size = struct.unpack("!H", await reader.readexactly(2))[0]
            out = answer(await reader.readexactly(size), address)
            writer.write(struct.pack("!H", len(out)) + out)
            await writer.drain()
        finally:
            writer.close()

    await loop.create_datagram_endpoint(Udp, local_addr=(listen, port))
    server = await asyncio.start_server(tcp, listen, port)
    async with server:
        await server.serve_forever()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", required=True)
    p.add_argument("--answer", required=True)
    p.add_argument("--port", type=int, default=53)
    args = p.parse_args()
    asyncio.run(serve(args.listen, args.answer, args.port))


if __name__ == "__main__":
    main()
