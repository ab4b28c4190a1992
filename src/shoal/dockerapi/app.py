"""The Docker Engine API application: swarm endpoints answered by shoal, the rest proxied to
the node's own engine. Every route answers both with and without the `/v1.NN` prefix."""

from __future__ import annotations

import logging

from aiohttp import web

from shoal.api.errors import ShoalError
from shoal.dockerapi import (
    containers,
    networks,
    nodes,
    secrets,
    services,
    shoal,
    swarm,
    system,
    tasks,
)
from shoal.dockerapi.http import (
    API_JSON,
    EXPERIMENTAL,
    NODE,
    PROXY,
    ApiJSON,
    Handler,
    Routes,
    error_response,
)
from shoal.dockerapi.node import LocalNode
from shoal.dockerapi.proxy import Proxy
from shoal.dockerapi.system import API_VERSION, SHOAL_VERSION

log = logging.getLogger(__name__)

RESOURCES = (system, swarm, nodes, services, tasks, networks, secrets, containers, shoal)


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
    on = system.experimental(request)
    resp.headers.setdefault("Docker-Experimental", "true" if on else "false")
    resp.headers.setdefault("Server", f"shoal/{SHOAL_VERSION} (linux)")


def make_app(node: LocalNode, experimental: bool = False) -> web.Application:
    """`experimental`: shoald's own `--experimental`; the engine's flag is reported as well
    (the CLI enables `docker checkpoint …` by it)."""
    app = web.Application(middlewares=[errors], client_max_size=64 * 1024**2)
    app[NODE] = node
    app[API_JSON] = ApiJSON()
    app[EXPERIMENTAL] = experimental
    proxy = app[PROXY] = Proxy(node.engine)
    app.on_startup.append(lambda _: _learn_engine(proxy))
    app.on_response_prepare.append(_headers)
    routes = Routes()
    for resource in RESOURCES:
        resource.add_routes(routes)
    routes.install(app)
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    return app


async def _learn_engine(proxy: Proxy) -> None:
    await proxy.experimental()
