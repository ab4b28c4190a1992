"""`/nodes…`."""

from __future__ import annotations

from aiohttp import web

from shoal.dockerapi.http import (
    Routes,
    json_list_response,
    json_response,
    node_of,
    query_bool,
    query_int,
    read_json,
)
from shoal.manager.controlapi import nodes
from shoal.manager.controlapi.filters import Filters


def node_ref(request: web.Request) -> str:
    """The node named in the path; `self` is this node (`docker node update … self`)."""
    ref = request.match_info["id"]
    membership = node_of(request).membership
    return membership.node_id if ref == "self" and membership is not None else ref


async def list_nodes(request: web.Request) -> web.StreamResponse:
    store = node_of(request).control()
    found = nodes.list_nodes(store, Filters.parse(request.query.get("filters")))
    return json_list_response(request, found)


async def inspect(request: web.Request) -> web.StreamResponse:
    store = node_of(request).control()
    return json_response(nodes.get(store, node_ref(request)).to_api())


async def update(request: web.Request) -> web.StreamResponse:
    store = node_of(request).control()
    await nodes.update(
        store, node_ref(request), query_int(request, "version"), await read_json(request)
    )
    return web.Response(status=200)


async def remove(request: web.Request) -> web.StreamResponse:
    store = node_of(request).control()
    await nodes.remove(store, node_ref(request), query_bool(request, "force"))
    return web.Response(status=200)


def add_routes(routes: Routes) -> None:
    routes.add("GET", "/nodes", list_nodes)
    routes.add("GET", "/nodes/{id}", inspect)
    routes.add("POST", "/nodes/{id}/update", update)
    routes.add("DELETE", "/nodes/{id}", remove)
