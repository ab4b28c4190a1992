"""`/tasks…`."""

from __future__ import annotations

from aiohttp import web

from shoal.dockerapi import logs
from shoal.dockerapi.app import DAEMON, json_response, routes
from shoal.manager.controlapi import tasks
from shoal.manager.controlapi.filters import Filters


@routes("GET", "/tasks")
async def list_tasks(request: web.Request) -> web.StreamResponse:
    store = request.app[DAEMON].require_manager()
    found = tasks.list_tasks(store, Filters.parse(request.query.get("filters")))
    return json_response([t.to_api() for t in found])


@routes("GET", "/tasks/{id}")
async def inspect(request: web.Request) -> web.StreamResponse:
    store = request.app[DAEMON].require_manager()
    return json_response(tasks.get(store, request.match_info["id"]).to_api())


@routes("GET", "/tasks/{id}/logs")
async def task_logs(request: web.Request) -> web.StreamResponse:
    daemon = request.app[DAEMON]
    store = daemon.require_manager()
    task = tasks.get(store, request.match_info["id"])
    return await logs.stream(request, daemon, [task])
