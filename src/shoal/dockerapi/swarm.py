"""`/swarm…`: init, join, leave, inspect, update, unlock."""

from __future__ import annotations

from aiohttp import web

from shoal.api.errors import BadRequest
from shoal.dockerapi.app import DAEMON, json_response, query_bool, query_int, read_json, routes
from shoal.manager.controlapi import cluster as clusters


@routes("GET", "/swarm")
async def inspect(request: web.Request) -> web.StreamResponse:
    daemon = request.app[DAEMON]
    return json_response(clusters.get(daemon.require_manager()).to_api())


@routes("POST", "/swarm/init")
async def init(request: web.Request) -> web.StreamResponse:
    body = await read_json(request) or {}
    if not isinstance(body, dict):
        raise BadRequest("invalid JSON: the body must be an object")
    node_id = await request.app[DAEMON].init(body)
    return json_response(node_id)


@routes("POST", "/swarm/join")
async def join(request: web.Request) -> web.StreamResponse:
    body = await read_json(request) or {}
    if not isinstance(body, dict):
        raise BadRequest("invalid JSON: the body must be an object")
    await request.app[DAEMON].join(body)
    return web.Response(status=200)


@routes("POST", "/swarm/leave")
async def leave(request: web.Request) -> web.StreamResponse:
    await request.app[DAEMON].leave(query_bool(request, "force"))
    return web.Response(status=200)


@routes("POST", "/swarm/update")
async def update(request: web.Request) -> web.StreamResponse:
    daemon = request.app[DAEMON]
    store = daemon.require_manager()
    await clusters.update(
        store,
        query_int(request, "version"),
        await read_json(request),
        query_bool(request, "rotateWorkerToken"),
        query_bool(request, "rotateManagerToken"),
        daemon.root_ca().der,
    )
    return web.Response(status=200)


@routes("GET", "/swarm/unlockkey")
async def unlock_key(request: web.Request) -> web.StreamResponse:
    request.app[DAEMON].require_manager()
    return json_response({"UnlockKey": ""})


@routes("POST", "/swarm/unlock")
async def unlock(request: web.Request) -> web.StreamResponse:
    request.app[DAEMON].require_manager()
    raise BadRequest("swarm is not locked")
