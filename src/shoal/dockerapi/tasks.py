"""`/tasks…`."""

from __future__ import annotations

from aiohttp import web

from shoal.dockerapi import logs
from shoal.dockerapi.http import Routes, json_list_response, json_response, node_of
from shoal.manager.controlapi import tasks
from shoal.manager.controlapi.filters import Filters


async def list_tasks(request: web.Request) -> web.StreamResponse:
    store = node_of(request).control()
    found = tasks.list_tasks(store, Filters.parse(request.query.get("filters")))
    return json_list_response(request, found)


async def inspect(request: web.Request) -> web.StreamResponse:
    store = node_of(request).control()
    return json_response(tasks.get(store, request.match_info["id"]).to_api())


async def task_logs(request: web.Request) -> web.StreamResponse:
    node = node_of(request)
    store = node.control()
    task = tasks.get(store, request.match_info["id"])
    return await logs.stream(request, node, store, [task])


def add_routes(routes: Routes) -> None:
    routes.add("GET", "/tasks", list_tasks)
    routes.add("GET", "/tasks/{id}", inspect)
    routes.add("GET", "/tasks/{id}/logs", task_logs)
