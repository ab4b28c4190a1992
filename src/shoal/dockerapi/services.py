"""`/services…`."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from shoal.api.defaults import insert_defaults
from shoal.dockerapi import logs
from shoal.dockerapi.http import (
    API_JSON,
    Routes,
    json_list_response,
    json_response,
    node_of,
    query_bool,
    query_int,
    read_json,
    text_response,
    with_field,
)
from shoal.manager.controlapi import services
from shoal.manager.controlapi.filters import Filters


async def list_services(request: web.Request) -> web.StreamResponse:
    store = node_of(request).control()
    found = services.list_services(store, Filters.parse(request.query.get("filters")))
    if not query_bool(request, "status"):
        return json_list_response(request, found)
    texts = request.app[API_JSON]
    out = (
        with_field(texts.of(s), "ServiceStatus", status.to_api())
        for s, status in zip(found, services.statuses(store, found), strict=True)
    )
    return text_response("[" + ",".join(out) + "]")


def for_api_version(request: web.Request, body: Any) -> Any:
    """The spec as moby's `adjustForAPIVersion` leaves it for the client's API version: a
    healthcheck's `StartInterval` (API 1.44) is dropped for older clients."""
    version = request.match_info.get("version")
    if version is None or not isinstance(body, dict):
        return body
    major, minor = (int(p) for p in version.split("."))
    if (major, minor) < (1, 44):
        container = (body.get("TaskTemplate") or {}).get("ContainerSpec")
        health = container.get("Healthcheck") if isinstance(container, dict) else None
        if isinstance(health, dict) and "StartInterval" in health:
            health.pop("StartInterval")
    return body


def registry_auth(request: web.Request) -> str | None:
    """The client's registry credentials (`--with-registry-auth`): base64url JSON, kept as
    the client sent it."""
    return request.headers.get("X-Registry-Auth") or None


async def create(request: web.Request) -> web.StreamResponse:
    store = node_of(request).control()
    body = for_api_version(request, await read_json(request))
    service = await services.create(store, body, registry_auth(request))
    return json_response({"ID": service.id, "Warnings": None}, status=201)


async def inspect(request: web.Request) -> web.StreamResponse:
    store = node_of(request).control()
    service = services.get(store, request.match_info["id"])
    data = service.to_api()
    if query_bool(request, "insertDefaults"):
        data["Spec"] = insert_defaults(data["Spec"])  # the spec only, as Docker's
    return json_response(data)


async def update(request: web.Request) -> web.StreamResponse:
    store = node_of(request).control()
    await services.update(
        store,
        request.match_info["id"],
        query_int(request, "version"),
        for_api_version(request, await read_json(request)),
        rollback=request.query.get("rollback") == "previous",
        registry_auth=registry_auth(request),
        auth_from=request.query.get("registryAuthFrom", "spec"),
    )
    return json_response({"Warnings": None})


async def remove(request: web.Request) -> web.StreamResponse:
    store = node_of(request).control()
    await services.remove(store, request.match_info["id"])
    return web.Response(status=200)


async def service_logs(request: web.Request) -> web.StreamResponse:
    node = node_of(request)
    store = node.control()
    service = services.get(store, request.match_info["id"])
    found = sorted(store.tasks_of(service.id), key=lambda t: (t.slot or 0, t.created_at or ""))
    return await logs.stream(request, node, store, found, service.id)


def add_routes(routes: Routes) -> None:
    routes.add("GET", "/services", list_services)
    routes.add("POST", "/services/create", create)
    routes.add("GET", "/services/{id}", inspect)
    routes.add("POST", "/services/{id}/update", update)
    routes.add("DELETE", "/services/{id}", remove)
    routes.add("GET", "/services/{id}/logs", service_logs)
