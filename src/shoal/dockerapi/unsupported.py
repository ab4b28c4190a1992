"""Swarm endpoints shoal does not serve yet. They answer on a manager with a clear 501 naming
what is missing (elsewhere with Docker's "not a swarm manager" errors) and never fall through
to the local engine, whose answer ("This node is not a swarm manager", about itself) would
mislead. Networks that are not the swarm's (`bridge`, user bridges…) still go to the engine."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from shoal.api.errors import Unimplemented
from shoal.dockerapi.http import Routes, json_response, node_of, read_object

NOT_YET = "{} are not supported by this shoal version yet"


def refuse(what: str) -> Any:
    async def handler(request: web.Request) -> web.StreamResponse:
        node_of(request).control()  # a worker or a node outside a swarm answers as Docker's
        raise Unimplemented(NOT_YET.format(what))

    return handler


def swarm_scoped(spec: dict[str, Any]) -> bool:
    """A network for the swarm rather than for this engine."""
    return (
        spec.get("Driver") == "overlay"
        or spec.get("Scope") == "swarm"
        or bool(spec.get("Ingress"))
        or bool(spec.get("ConfigFrom"))
    )


async def create_network(request: web.Request) -> web.StreamResponse:
    node = node_of(request)
    spec = await read_object(request)
    if swarm_scoped(spec):
        node.control()
        raise Unimplemented(NOT_YET.format("overlay networks"))
    created = await node.engine.request("POST", "/networks/create", body=spec)
    return json_response(created, status=201)


def add_routes(routes: Routes) -> None:
    for resource, what in (("secrets", "secrets"), ("configs", "configs")):
        handler = refuse(what)
        for method, path in (
            ("GET", f"/{resource}"), ("POST", f"/{resource}/create"),
            ("GET", f"/{resource}/{{id}}"), ("POST", f"/{resource}/{{id}}/update"),
            ("DELETE", f"/{resource}/{{id}}"),
        ):  # fmt: skip
            routes.add(method, path, handler)
    routes.add("POST", "/networks/create", create_network)
