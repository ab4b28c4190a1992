"""What every resource module of the Docker API shares: the node it serves, JSON answers and
errors the way dockerd writes them, query parsing, and the route table.

Errors are `{"message": …}` with `Content-Type: application/json` exactly (the docker CLI
prints any other type raw).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web

from shoal.api.errors import BadRequest
from shoal.api.models import Meta
from shoal.dockerapi.node import LocalNode
from shoal.dockerapi.proxy import Proxy

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
NODE = web.AppKey("node", LocalNode)
EXPERIMENTAL = web.AppKey("experimental", bool)  # shoald's own --experimental
PROXY = web.AppKey("proxy", Proxy)  # the engine proxy, which knows the engine's flags


class ApiJSON:
    """The Docker JSON text of stored objects, kept per object version: a stored version
    never changes, so lists (`service ls`, `service ps`, `node ls`) serialize only what
    changed since they were last asked. At `limit` entries it starts over."""

    def __init__(self, limit: int = 50_000) -> None:
        self.limit = limit
        self._texts: dict[tuple[str, str, int], str] = {}

    def of(self, obj: Meta) -> str:
        index = obj.version.index if obj.version is not None else 0
        if not index:  # not a stored version
            return _dumps(obj.to_api())
        key = (type(obj).__name__, obj.id, index)
        text = self._texts.get(key)
        if text is None:
            if len(self._texts) >= self.limit:
                self._texts.clear()
            text = self._texts[key] = _dumps(obj.to_api())
        return text


API_JSON = web.AppKey("api_json", ApiJSON)


def node_of(request: web.Request) -> LocalNode:
    return request.app[NODE]


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


def json_response(data: Any, status: int = 200) -> web.Response:
    return text_response(_dumps(data), status)


def json_list_response(request: web.Request, objs: Iterable[Meta]) -> web.Response:
    """A JSON array of stored objects, each as `ApiJSON` keeps it."""
    texts = request.app[API_JSON]
    return text_response("[" + ",".join(texts.of(o) for o in objs) + "]")


def with_field(text: str, name: str, value: Any) -> str:
    """A JSON object's text with one more field (last)."""
    return f"{text[:-1]},{_dumps(name)}:{_dumps(value)}}}"


def text_response(text: str, status: int = 200) -> web.Response:
    return web.Response(
        body=text.encode(), status=status, headers={"Content-Type": "application/json"}
    )


def error_response(status: int, message: str) -> web.Response:
    return json_response({"message": message}, status)


def query_bool(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes")


def query_int(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"invalid {name} {raw!r}: not a number") from None


async def read_json(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as e:
        raise BadRequest(f"invalid JSON: {e}") from e


async def read_object(request: web.Request) -> dict[str, Any]:
    """A JSON object body (an absent body is an empty object)."""
    body = await read_json(request) or {}
    if not isinstance(body, dict):
        raise BadRequest("invalid JSON: the body must be an object")
    return body


def with_barrier(handler: Handler) -> Handler:
    """`handler` run after the node's read barrier: on a manager, it then sees every write
    acknowledged by any manager before the request came (Docker sends every control call to
    its leader, so its answers never lag behind)."""

    async def after_barrier(request: web.Request) -> web.StreamResponse:
        await node_of(request).barrier()
        return await handler(request)

    return after_barrier


class Routes:
    """The route table: each route answers with and without the API version prefix. Routes
    answer from the cluster state after the read barrier (`with_barrier`) unless added with
    `fresh=False` (those that do not read it, or must answer without a quorum)."""

    def __init__(self) -> None:
        self.table: list[tuple[str, str, Handler]] = []

    def add(self, method: str, path: str, handler: Handler, fresh: bool = True) -> None:
        self.table.append((method, path, with_barrier(handler) if fresh else handler))

    def install(self, app: web.Application) -> None:
        for method, path, handler in self.table:
            app.router.add_route(method, path, handler)
            app.router.add_route(method, r"/v{version:[0-9]+\.[0-9]+}" + path, handler)
