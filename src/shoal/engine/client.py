"""A small client for the node's Docker Engine API (unix socket or TCP)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp

from shoal.api.errors import EngineError


def connector_for(host: str) -> tuple[aiohttp.BaseConnector, str]:
    """(connector, base URL) for a Docker host string: unix:///path or tcp://h:p."""
    if host.startswith("unix://"):
        return aiohttp.UnixConnector(path=host[len("unix://") :], limit=0), "http://engine"
    if host.startswith("tcp://"):
        return aiohttp.TCPConnector(limit=0), "http://" + host[len("tcp://") :]
    raise ValueError(f"unsupported engine host {host!r}")


class EngineAPI(Protocol):
    """What the agent needs of an engine beyond its tasks' containers (`Controller`): the
    engine's description, plain calls, and the event stream. `Engine` is the real one,
    `shoal.testing.fakes.FakeEngine` the fake."""

    async def info(self) -> dict[str, Any]: ...

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        timeout: float | None = 60,
        headers: dict[str, str] | None = None,
    ) -> Any: ...

    def events(self, filters: dict[str, list[str]]) -> AsyncIterator[dict[str, Any]]: ...


class Engine:
    def __init__(self, host: str) -> None:
        self.host = host
        self._session: aiohttp.ClientSession | None = None
        self._base = ""

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector, self._base = connector_for(self.host)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=None, sock_connect=10)
            )
        return self._session

    def url(self, path: str) -> str:
        self.session  # noqa: B018 - sets the base URL
        return self._base + path

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        timeout: float | None = 60,
        headers: dict[str, str] | None = None,
    ) -> Any:
        kwargs: dict[str, Any] = {"params": params, "headers": headers}
        if body is not None:
            kwargs["json"] = body
        async with self.session.request(
            method, self.url(path), timeout=aiohttp.ClientTimeout(total=timeout), **kwargs
        ) as resp:
            data = await resp.read()
            if resp.status >= 400:
                try:
                    message = json.loads(data)["message"]
                except (ValueError, KeyError, TypeError):
                    message = data.decode(errors="replace").strip()
                raise EngineError(resp.status, message)
            if not data:
                return None
            if resp.content_type == "application/json":
                return json.loads(data)
            return data

    async def info(self) -> dict[str, Any]:
        return await self.request("GET", "/info")  # type: ignore[no-any-return]

    async def version(self) -> dict[str, Any]:
        return await self.request("GET", "/version")  # type: ignore[no-any-return]

    async def image_exists(self, ref: str) -> bool:
        try:
            await self.request("GET", f"/images/{quote(ref, safe='/:@')}/json")
            return True
        except EngineError as e:
            if e.status == 404:
                return False
            raise

    async def pull(self, ref: str, auth: str | None = None) -> None:
        """Pull `ref`; raise EngineError with the engine's message when it fails."""
        name, tag = split_image(ref)
        params = {"fromImage": name}
        if tag:
            params["tag"] = tag
        headers = {"X-Registry-Auth": auth} if auth else None
        async with self.session.post(
            self.url("/images/create"), params=params, headers=headers,
            timeout=aiohttp.ClientTimeout(total=600),
        ) as resp:  # fmt: skip
            if resp.status >= 400:
                data = await resp.read()
                try:
                    message = json.loads(data)["message"]
                except (ValueError, KeyError, TypeError):
                    message = data.decode(errors="replace")
                raise EngineError(resp.status, message)
            async for line in resp.content:
                if not line.strip():
                    continue
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if "error" in msg:
                    raise EngineError(500, msg["error"])

    async def events(self, filters: dict[str, list[str]]) -> AsyncIterator[dict[str, Any]]:
        async with self.session.get(
            self.url("/events"), params={"filters": json.dumps(filters)},
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
        ) as resp:  # fmt: skip
            if resp.status >= 400:
                raise EngineError(resp.status, (await resp.read()).decode(errors="replace"))
            async for line in resp.content:
                if line.strip():
                    yield json.loads(line)


def split_image(ref: str) -> tuple[str, str]:
    """`name[:tag][@digest]` → (name, tag-or-digest) as /images/create wants them."""
    if "@" in ref:
        name, digest = ref.split("@", 1)
        name = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
        return name, digest
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = ref.rsplit(":", 1)
        return name, tag
    return ref, "latest"
