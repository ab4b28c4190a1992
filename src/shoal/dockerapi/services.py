"""`/services…`."""

from __future__ import annotations

from aiohttp import web

from shoal.api.defaults import with_defaults
from shoal.api.errors import NotFound
from shoal.dockerapi import logs
from shoal.dockerapi.app import DAEMON, json_response, query_bool, query_int, read_json, routes
from shoal.manager.controlapi import services
from shoal.manager.controlapi.filters import Filters


@routes("GET", "/services")
async def list_services(request: web.Request) -> web.StreamResponse:
    store = request.app[DAEMON].require_manager()
    found = services.list_services(store, Filters.parse(request.query.get("filters")))
    with_status = query_bool(request, "status")
    out = []
    for s in found:
        data = s.to_api()
        if with_status:
            data["ServiceStatus"] = services.status(store, s).to_api()
        out.append(data)
    return json_response(out)


@routes("POST", "/services/create")
async def create(request: web.Request) -> web.StreamResponse:
    store = request.app[DAEMON].require_manager()
    service = await services.create(store, await read_json(request))
    return json_response({"ID": service.id, "Warnings": None}, status=201)


@routes("GET", "/services/{id}")
async def inspect(request: web.Request) -> web.StreamResponse:
    store = request.app[DAEMON].require_manager()
    service = services.get(store, request.match_info["id"])
    data = service.to_api()
    if query_bool(request, "insertDefaults"):
        data = with_defaults(data)
    return json_response(data)


@routes("POST", "/services/{id}/update")
async def update(request: web.Request) -> web.StreamResponse:
    store = request.app[DAEMON].require_manager()
    await services.update(
        store,
        request.match_info["id"],
        query_int(request, "version"),
        await read_json(request),
        rollback=request.query.get("rollback") == "previous",
    )
    return json_response({"Warnings": None})


@routes("DELETE", "/services/{id}")
async def remove(request: web.Request) -> web.StreamResponse:
    store = request.app[DAEMON].require_manager()
    await services.remove(store, request.match_info["id"])
    return web.Response(status=200)


@routes("GET", "/services/{id}/logs")
async def service_logs(request: web.Request) -> web.StreamResponse:
    daemon = request.app[DAEMON]
    store = daemon.require_manager()
    service = services.get(store, request.match_info["id"])
    found = sorted(store.tasks_of(service.id), key=lambda t: (t.slot or 0, t.created_at or ""))
    if not found and service is None:
        raise NotFound(f"service {request.match_info['id']} not found")
    return await logs.stream(request, daemon, found)
