"""`/secrets…` and `/configs…`: the swarm's secrets and configs, on a manager."""

from __future__ import annotations

from aiohttp import web

from shoal.api.errors import BadRequest
from shoal.dockerapi.http import Handler, Routes, json_response, node_of, read_json
from shoal.manager.controlapi import secrets
from shoal.manager.controlapi.filters import Filters


def _handlers(kind: secrets.Kind) -> dict[tuple[str, str], Handler]:
    async def list_all(request: web.Request) -> web.StreamResponse:
        store = node_of(request).control()
        found = secrets.list_all(store, kind, Filters.parse(request.query.get("filters")))
        return json_response([o.to_api() for o in found])

    async def create(request: web.Request) -> web.StreamResponse:
        store = node_of(request).control()
        created = await secrets.create(store, kind, await read_json(request))
        return json_response({"ID": created.id}, status=201)

    async def inspect(request: web.Request) -> web.StreamResponse:
        store = node_of(request).control()
        return json_response(secrets.get(store, kind, request.match_info["id"]).to_api())

    async def update(request: web.Request) -> web.StreamResponse:
        store = node_of(request).control()
        raw = request.query.get("version", "")
        if not raw.isdigit():
            raise BadRequest(f"invalid {kind.what} version")
        await secrets.update(
            store, kind, request.match_info["id"], int(raw), await read_json(request)
        )
        return web.Response(status=200)

    async def remove(request: web.Request) -> web.StreamResponse:
        store = node_of(request).control()
        await secrets.remove(store, kind, request.match_info["id"])
        return web.Response(status=204)

    base = f"/{kind.what}s"
    return {
        ("GET", base): list_all,
        ("POST", f"{base}/create"): create,
        ("GET", f"{base}/{{id}}"): inspect,
        ("POST", f"{base}/{{id}}/update"): update,
        ("DELETE", f"{base}/{{id}}"): remove,
    }


def add_routes(routes: Routes) -> None:
    for kind in (secrets.SECRETS, secrets.CONFIGS):
        for (method, path), handler in _handlers(kind).items():
            routes.add(method, path, handler)
