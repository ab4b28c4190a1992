"""`/nodes…`."""

from __future__ import annotations

from aiohttp import web

from shoal.dockerapi.app import DAEMON, json_response, query_bool, query_int, read_json, routes
from shoal.manager.controlapi import nodes
from shoal.manager.controlapi.filters import Filters


def node_ref(request: web.Request) -> str:
    """The node named in the path; `self` is this node (`docker node update … self`)."""
    ref = request.match_info["id"]
    state = request.app[DAEMON].state
    return state.node_id if ref == "self" and state is not None else ref


@routes("GET", "/nodes")
async def list_nodes(request: web.Request) -> web.StreamResponse:
    store = request.app[DAEMON].require_manager()
    found = nodes.list_nodes(store, Filters.parse(request.query.get("filters")))
    return json_response([n.to_api() for n in found])


@routes("GET", "/nodes/{id}")
async def inspect(request: web.Request) -> web.StreamResponse:
    store = request.app[DAEMON].require_manager()
    return json_response(nodes.get(store, node_ref(request)).to_api())


@routes("POST", "/nodes/{id}/update")
async def update(request: web.Request) -> web.StreamResponse:
    store = request.app[DAEMON].require_manager()
    await nodes.update(
        store, node_ref(request), query_int(request, "version"), await read_json(request)
    )
    return web.Response(status=200)


@routes("DELETE", "/nodes/{id}")
async def remove(request: web.Request) -> web.StreamResponse:
    store = request.app[DAEMON].require_manager()
    await nodes.remove(store, node_ref(request), query_bool(request, "force"))
    return web.Response(status=200)
