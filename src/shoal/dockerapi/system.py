"""`/_ping`, `/version` and `/info`: the engine's answers with shoal's API version and swarm."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from shoal.daemon import Daemon
from shoal.dockerapi import swarm_info
from shoal.dockerapi.app import (
    API_VERSION,
    DAEMON,
    MIN_API_VERSION,
    SHOAL_VERSION,
    json_response,
    routes,
)


def swarm_header(daemon: Daemon) -> str:
    if not daemon.active:
        return "inactive"
    return "active/manager" if daemon.is_manager else "active/worker"


@routes("HEAD", "/_ping")
@routes("GET", "/_ping")
async def ping(request: web.Request) -> web.StreamResponse:
    daemon = request.app[DAEMON]
    headers = {
        "Swarm": swarm_header(daemon),
        "Builder-Version": "1",
        "Cache-Control": "no-cache, no-store, must-revalidate",
        "Pragma": "no-cache",
    }
    if request.method == "HEAD":
        headers["Content-Type"] = "text/plain; charset=utf-8"
        return web.Response(status=200, headers=headers)
    return web.Response(text="OK", headers=headers)


@routes("GET", "/version")
async def version(request: web.Request) -> web.StreamResponse:
    daemon = request.app[DAEMON]
    data: dict[str, Any] = await daemon.engine.version()
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


@routes("GET", "/info")
async def info(request: web.Request) -> web.StreamResponse:
    daemon = request.app[DAEMON]
    data: dict[str, Any] = await daemon.engine.info()
    data["Swarm"] = swarm_info.info(daemon)
    return json_response(data)
