"""Swarm endpoints shoal does not serve yet. They answer on a manager with a clear 501 naming
what is missing (elsewhere with Docker's "not a swarm manager" errors) and never fall through
to the local engine, whose answer ("This node is not a swarm manager", about itself) would
mislead."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from shoal.api.errors import Unimplemented
from shoal.dockerapi.http import Routes, node_of

NOT_YET = "{} are not supported by this shoal version yet"


def refuse(what: str) -> Any:
    async def handler(request: web.Request) -> web.StreamResponse:
        node_of(request).control()  # a worker or a node outside a swarm answers as Docker's
        raise Unimplemented(NOT_YET.format(what))

    return handler


def add_routes(routes: Routes) -> None:
    for resource, what in (("secrets", "secrets"), ("configs", "configs")):
        handler = refuse(what)
        for method, path in (
            ("GET", f"/{resource}"), ("POST", f"/{resource}/create"),
            ("GET", f"/{resource}/{{id}}"), ("POST", f"/{resource}/{{id}}/update"),
            ("DELETE", f"/{resource}/{{id}}"),
        ):  # fmt: skip
            routes.add(method, path, handler)
