"""`/_ping`, `/version` and `/info`: the engine's answers with shoal's API version and swarm."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from shoal.dockerapi import swarm_info
from shoal.dockerapi.http import EXPERIMENTAL, PROXY, Routes, json_response, node_of
from shoal.dockerapi.node import LocalNode

API_VERSION = "1.44"
MIN_API_VERSION = "1.24"
SHOAL_VERSION = "0.1.0"


def swarm_header(node: LocalNode) -> str:
    membership = node.membership
    if membership is None:
        return "inactive"
    if node.locked:
        return "locked"
    return "active/manager" if membership.role == "manager" else "active/worker"


async def ping(request: web.Request) -> web.StreamResponse:
    await request.app[PROXY].experimental()  # learned once; `_headers` reports it
    headers = {
        "Swarm": swarm_header(node_of(request)),
        "Builder-Version": "1",
        "Cache-Control": "no-cache, no-store, must-revalidate",
        "Pragma": "no-cache",
    }
    if request.method == "HEAD":
        headers["Content-Type"] = "text/plain; charset=utf-8"
        return web.Response(status=200, headers=headers)
    return web.Response(text="OK", headers=headers)


def experimental(request: web.Request) -> bool:
    return request.app[EXPERIMENTAL] or request.app[PROXY].engine_experimental


async def version(request: web.Request) -> web.StreamResponse:
    data: dict[str, Any] = await node_of(request).engine.version()
    data["Experimental"] = experimental(request) or bool(data.get("Experimental"))
    data["ApiVersion"] = API_VERSION
    data["MinAPIVersion"] = MIN_API_VERSION
    components = list(data.get("Components") or [])
    components.append({"Name": "shoal", "Version": SHOAL_VERSION, "Details": {}})
    data["Components"] = components
    for c in components:
        if c.get("Name") == "Engine":
            c.setdefault("Details", {})["ApiVersion"] = API_VERSION
            c["Details"]["MinAPIVersion"] = MIN_API_VERSION
    return json_response(data)


async def info(request: web.Request) -> web.StreamResponse:
    node = node_of(request)
    data: dict[str, Any] = await node.engine.info()
    data["Swarm"] = swarm_info.info(node)
    return json_response(data)


def add_routes(routes: Routes) -> None:
    routes.add("GET", "/_ping", ping, fresh=False)
    routes.add("HEAD", "/_ping", ping, fresh=False)
    routes.add("GET", "/version", version, fresh=False)
    routes.add("GET", "/info", info, fresh=False)
