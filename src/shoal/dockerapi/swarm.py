"""`/swarm…`: init, join, leave, inspect, update, unlock."""

from __future__ import annotations

from aiohttp import web

from shoal.dockerapi.http import (
    Routes,
    json_response,
    node_of,
    query_bool,
    query_int,
    read_json,
    read_object,
)
from shoal.manager.controlapi import swarm


async def inspect(request: web.Request) -> web.StreamResponse:
    return json_response(swarm.get(node_of(request).control()).to_api())


async def init(request: web.Request) -> web.StreamResponse:
    node_id = await node_of(request).init(await read_object(request))
    return json_response(node_id)


async def join(request: web.Request) -> web.StreamResponse:
    await node_of(request).join(await read_object(request))
    return web.Response(status=200)


async def leave(request: web.Request) -> web.StreamResponse:
    await node_of(request).leave(query_bool(request, "force"))
    return web.Response(status=200)


async def update(request: web.Request) -> web.StreamResponse:
    node = node_of(request)
    await swarm.update(
        node.control(),
        query_int(request, "version"),
        await read_json(request),
        query_bool(request, "rotateWorkerToken"),
        query_bool(request, "rotateManagerToken"),
        query_bool(request, "rotateManagerUnlockKey"),
    )
    node.follow_unlock_key()
    return web.Response(status=200)


async def unlock_key(request: web.Request) -> web.StreamResponse:
    return json_response({"UnlockKey": swarm.unlock_key(node_of(request).control())})


async def unlock(request: web.Request) -> web.StreamResponse:
    body = await read_object(request)
    await node_of(request).unlock(str(body.get("UnlockKey") or ""))
    return web.Response(status=200)


def add_routes(routes: Routes) -> None:
    routes.add("GET", "/swarm", inspect)
    routes.add("POST", "/swarm/init", init, fresh=False)
    routes.add("POST", "/swarm/join", join, fresh=False)
    routes.add("POST", "/swarm/leave", leave, fresh=False)
    routes.add("POST", "/swarm/update", update)
    routes.add("GET", "/swarm/unlockkey", unlock_key)
    routes.add("POST", "/swarm/unlock", unlock, fresh=False)
