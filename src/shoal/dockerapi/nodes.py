"""`/nodes…`."""

from __future__ import annotations

from aiohttp import web

from ..manager.controlapi import nodes
from ..manager.controlapi.filters import Filters
from .app import DAEMON, json_response, query_bool, query_int, read_json, routes


@routes("GET", "/nodes")
async def list_nodes(request: web.Request) -> web.StreamResponse:
    store = request.app[DAEMON].require_manager()
    found = nodes.list_nodes(store, Filters.parse(request.query.get("filters")))
    return json_response([n.to_api() for n in found])


@routes("GET", "/nodes/{id}")
async def inspect(request: web.Request) -> web.StreamResponse:
    store = request.app[DAEMON].require_manager()
    return json_response(nodes.get(store, request.match_info["id"]).to_api())


@routes("POST", "/nodes/{id}/update")
async def update(request: web.Request) -> web.StreamResponse:
    store = request.app[DAEMON].require_manager()
    await nodes.update(
        store, request.match_info["id"], query_int(request, "version"), await read_json(request)
    )
    return web.Response(status=200)


@routes("DELETE", "/nodes/{id}")
async def remove(request: web.Request) -> web.StreamResponse:
    daemon = request.app[DAEMON]
    store = daemon.require_manager()
    await nodes.remove(store, request.match_info["id"], query_bool(request, "force"), daemon.state.node_id)  # type: ignore[union-attr]
    return web.Response(status=200)
