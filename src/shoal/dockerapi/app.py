"""The Docker Engine API application: swarm endpoints answered by shoal, the rest proxied.

Every route answers both with and without the `/v1.NN` prefix. Errors are `{"message": …}` with
`Content-Type: application/json` exactly (the docker CLI prints any other type raw).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from shoal.api.errors import BadRequest, ShoalError
from shoal.daemon import Daemon
from shoal.dockerapi.proxy import Proxy

log = logging.getLogger(__name__)

API_VERSION = "1.44"
MIN_API_VERSION = "1.24"
SHOAL_VERSION = "0.1.0"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
DAEMON = web.AppKey("daemon", Daemon)
PROXY = web.AppKey("proxy", Proxy)


def json_response(data: Any, status: int = 200) -> web.Response:
    body = json.dumps(data, separators=(",", ":")).encode()
    return web.Response(body=body, status=status, headers={"Content-Type": "application/json"})


def error_response(status: int, message: str) -> web.Response:
    return json_response({"message": message}, status)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        resp = await handler(request)
    except ShoalError as e:
        resp = error_response(e.status, str(e))
    except web.HTTPException:
        raise
    except Exception as e:  # noqa: BLE001 - never let one request take the daemon down
        log.exception("%s %s failed", request.method, request.path)
        resp = error_response(500, f"shoal: internal error: {e}")
    return resp


async def _headers(request: web.Request, resp: web.StreamResponse) -> None:
    resp.headers.setdefault("Api-Version", API_VERSION)
    resp.headers.setdefault("Ostype", "linux")
    resp.headers.setdefault("Docker-Experimental", "false")
    resp.headers.setdefault("Server", f"shoal/{SHOAL_VERSION} (linux)")


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


class Routes:
    """Registers each route with and without the API version prefix."""

    def __init__(self) -> None:
        self.table: list[tuple[str, str, Handler]] = []

    def __call__(self, method: str, path: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.table.append((method, path, handler))
            return handler

        return register

    def install(self, app: web.Application) -> None:
        for method, path, handler in self.table:
            app.router.add_route(method, path, handler)
            app.router.add_route(method, r"/v{version:[0-9]+\.[0-9]+}" + path, handler)


routes = Routes()


def make_app(daemon: Daemon) -> web.Application:
    # Resource modules register their routes on import.
    from shoal.dockerapi import nodes, services, swarm, system, tasks  # noqa: F401

    app = web.Application(middlewares=[errors], client_max_size=64 * 1024**2)
    app[DAEMON] = daemon
    proxy = Proxy(daemon.engine)
    app[PROXY] = proxy
    app.on_response_prepare.append(_headers)
    routes.install(app)
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    return app
