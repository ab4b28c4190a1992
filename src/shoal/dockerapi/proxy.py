"""Everything that is not swarm goes to the local engine: requests are streamed both ways, and
connection upgrades (`docker attach`, `docker exec`, `docker run -it`) become a raw byte pipe.

The API version in the path is lowered to the engine's own when the client asked for more:
shoal announces its API version to clients, the engine may speak an older one.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any

import aiohttp
from aiohttp import web

from shoal.engine.client import Engine

HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
    "transfer-encoding", "upgrade", "content-length", "host",
}  # fmt: skip
_VERSION = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")


def engine_path(path_qs: str, engine_api: tuple[int, int] | None) -> str:
    m = _VERSION.match(path_qs)
    if m is None or engine_api is None:
        return path_qs
    asked = (int(m.group(1)), int(m.group(2)))
    if asked <= engine_api:
        return path_qs
    return f"/v{engine_api[0]}.{engine_api[1]}{m.group(3)}"


class Proxy:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.engine_api: tuple[int, int] | None = None
        self.engine_experimental = False  # the engine's `--experimental`, once known

    async def _api(self) -> tuple[int, int] | None:
        if self.engine_api is None:
            try:
                v = await self.engine.version()
                major, minor = v["ApiVersion"].split(".")
                self.engine_api = (int(major), int(minor))
                self.engine_experimental = bool(v.get("Experimental"))
            except Exception:  # noqa: BLE001 - pass the path through unchanged
                return None
        return self.engine_api

    async def experimental(self) -> bool:
        """Whether the engine runs with experimental features (checkpoints…)."""
        await self._api()
        return self.engine_experimental

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = engine_path(request.raw_path, await self._api())
        if request.headers.get("Upgrade"):
            return await self._upgrade(request, path)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        body: Any = request.content if request.body_exists else None
        try:
            upstream = await self.engine.session.request(
                request.method, self.engine.url(path), headers=headers, data=body,
                timeout=aiohttp.ClientTimeout(total=None, sock_read=None), allow_redirects=False,
                auto_decompress=False,
            )  # fmt: skip
        except aiohttp.ClientError as e:
            return web.json_response(
                {"message": f"shoal: cannot reach the local engine at {self.engine.host}: {e}"},
                status=502,
            )
        async with upstream:
            resp = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for k, v in upstream.headers.items():
                if k.lower() not in HOP_BY_HOP:
                    resp.headers.add(k, v)
            if upstream.headers.get("Content-Length") is not None:
                resp.content_length = int(upstream.headers["Content-Length"])
            await resp.prepare(request)
            with contextlib.suppress(ConnectionError, aiohttp.ClientPayloadError):
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
            await resp.write_eof()
            return resp

    async def _upgrade(self, request: web.Request, path: str) -> web.StreamResponse:
        body = await request.read()
        reader, writer = await _open(self.engine.host)
        head = [f"{request.method} {path} HTTP/1.1", "Host: docker"]
        for k, v in request.headers.items():
            if k.lower() not in ("host", "content-length"):
                head.append(f"{k}: {v}")
        head.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await writer.drain()
        status_line = await reader.readline()
        parts = status_line.decode(errors="replace").split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 502
        resp = web.StreamResponse(
            status=status, reason=parts[2].strip() if len(parts) > 2 else None
        )
        length = None
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            k, _, v = line.decode(errors="replace").partition(":")
            if k.lower() == "content-length":
                length = int(v.strip())
            if k.lower() not in ("content-length", "transfer-encoding"):
                resp.headers.add(k.strip(), v.strip())
        if status >= 400 or status not in (101, 200):
            data = await reader.readexactly(length) if length else await reader.read()
            writer.close()
            out = web.Response(status=status, body=data)
            out.content_type = resp.headers.get("Content-Type", "application/json").split(";")[0]
            return out
        resp.force_close()
        await resp.prepare(request)
        transport = request.transport
        assert transport is not None
        inbound = _Inbound()
        # Bytes aiohttp already read past the request, then the raw connection itself: the
        # client may half-close (docker exec without -i does), which must not end the pipe.
        request.protocol.set_parser(inbound)  # type: ignore[arg-type]
        transport.set_protocol(inbound)

        async def client_to_engine() -> None:
            while (data := await inbound.queue.get()) is not None:
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()

        async def engine_to_client() -> None:
            while data := await reader.read(65536):
                transport.write(data)

        up = asyncio.create_task(client_to_engine())
        try:
            await engine_to_client()
        finally:
            up.cancel()
            writer.close()
            transport.close()
        return resp


class _Inbound(asyncio.Protocol):
    """The client's side of an upgraded connection: first as aiohttp's payload parser (for
    what it had buffered), then as the transport's protocol."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def feed_data(self, data: bytes, size: int = 0) -> tuple[bool, bytes]:
        self.queue.put_nowait(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        self.queue.put_nowait(None)

    def data_received(self, data: bytes) -> None:
        self.queue.put_nowait(bytes(data))

    def eof_received(self) -> bool:
        self.queue.put_nowait(None)
        return True  # half-close: keep sending the engine's output

    def connection_lost(self, exc: Exception | None) -> None:
        self.queue.put_nowait(None)


async def _open(host: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if host.startswith("unix://"):
        return await asyncio.open_unix_connection(host[len("unix://") :])
    hostport = host[len("tcp://") :]
    h, _, p = hostport.rpartition(":")
    return await asyncio.open_connection(h, int(p))
