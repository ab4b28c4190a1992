"""`/networks…`: the swarm's networks (from the control API) beside the engine's own
(`bridge`, `host`, `none`, user bridges: passed to the engine). A swarm network that runs on
this node is an engine network of shoal's driver underneath; it is shown as the swarm network
(`Scope: swarm`, its swarm ID), with the node's containers on it."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from shoal.api.errors import Conflict, EngineError, NotFound
from shoal.api.models import Network, to_resource
from shoal.dockerapi.http import Routes, json_response, node_of, read_object
from shoal.engine.networks import swarm_id_of
from shoal.manager.controlapi import networks
from shoal.manager.controlapi.filters import Filters


def swarm_scoped(spec: dict[str, Any]) -> bool:
    """A network for the swarm rather than for this engine."""
    return spec.get("Driver") == "overlay" or spec.get("Scope") == "swarm"


def is_shoals(resource: dict[str, Any]) -> bool:
    return swarm_id_of(resource) is not None


def swarm_view(resource: dict[str, Any], network: Network | None) -> dict[str, Any]:
    """An engine network of shoal's driver, shown as the swarm network it runs."""
    if network is not None:
        out = to_resource(network)
    else:  # a worker: no store, what the engine knows
        out = dict(resource)
        out.update(Scope="swarm", Driver="overlay")
        out["Id"] = swarm_id_of(resource) or resource.get("Id")
    out["Containers"] = resource.get("Containers") or {}
    return out


async def engine_networks(request: web.Request) -> list[dict[str, Any]]:
    params = {"filters": request.query["filters"]} if "filters" in request.query else None
    found: list[dict[str, Any]] = await node_of(request).engine.request(
        "GET", "/networks", params=params
    )
    return found or []


def manager_store(request: web.Request) -> Any:
    node = node_of(request)
    membership = node.membership
    return node.control() if membership is not None and membership.role == "manager" else None


async def list_networks(request: web.Request) -> web.StreamResponse:
    store = manager_store(request)
    out: list[dict[str, Any]] = []
    shown: set[str] = set()
    for r in await engine_networks(request):
        if is_shoals(r):
            network = networks.find(store, _swarm_id(r)) if store is not None else None
            if store is not None and network is None:
                continue  # removed from the swarm; the agent removes it here soon
            view = swarm_view(r, network)
            shown.add(view["Id"])
            out.append(view)
        else:
            out.append(r)
    if store is not None:
        filters = Filters.parse(request.query.get("filters"))
        out += [to_resource(n) for n in networks.list_networks(store, filters) if n.id not in shown]
    return json_response(out)


def _swarm_id(resource: dict[str, Any]) -> str:
    return swarm_id_of(resource) or ""


async def engine_network(request: web.Request, ref: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = await node_of(request).engine.request("GET", f"/networks/{ref}")
        return found
    except EngineError as e:
        if e.status == 404:
            return None
        raise


async def inspect(request: web.Request) -> web.StreamResponse:
    ref = request.match_info["id"]
    scope = request.query.get("scope", "")
    store = manager_store(request)
    local = await engine_network(request, ref) if scope in ("", "local") else None
    if local is not None and not is_shoals(local):
        return json_response(local)
    if local is not None:
        network = networks.find(store, _swarm_id(local)) if store is not None else None
    else:
        network = networks.find(store, ref) if store is not None and scope != "local" else None
        if network is None:
            raise NotFound(f"network {ref} not found")
        local = await engine_network_of(request, network.id) if scope == "" else None
    if local is not None:
        view = swarm_view(local, network)
    else:
        assert network is not None
        view = to_resource(network)
    # no container of this node on it: Docker has not made it here, and shows null
    view["Containers"] = view.get("Containers") or None
    return json_response(_with_peers(store, view, network) if network else view)


async def engine_network_of(request: web.Request, swarm_id: str) -> dict[str, Any] | None:
    """The engine network running that swarm network on this node, if there is one (a swarm
    network asked for by its swarm ID: the engine network has an ID of its own)."""
    for r in await engine_networks(request):
        if is_shoals(r) and _swarm_id(r) == swarm_id:
            return await engine_network(request, r["Id"])
    return None


def _with_peers(store: Any, resource: dict[str, Any], network: Network) -> dict[str, Any]:
    peers = networks.peers(store, network)
    if peers:
        resource["Peers"] = peers
    return resource


async def create(request: web.Request) -> web.StreamResponse:
    """Docker's order: a name the swarm knows (as a name, an ID or an ID prefix, as the
    daemon asks it) is taken for any network; the engine's own names for a swarm one."""
    node = node_of(request)
    body = await read_object(request)
    name = str(body.get("Name") or "")
    store = manager_store(request)
    taken = Conflict(f"network with name {name} already exists")
    if name and store is not None and networks.find(store, name) is not None:
        raise taken
    if swarm_scoped(body):
        local = await engine_network(request, name) if name else None
        if local is not None and local.get("Name") == name:
            raise taken
        network = await networks.create(node.control(), body)
        return json_response({"Id": network.id, "Warning": ""}, status=201)
    created = await node.engine.request("POST", "/networks/create", body=body)
    return json_response(created, status=201)


async def remove(request: web.Request) -> web.StreamResponse:
    ref = request.match_info["id"]
    store = manager_store(request)
    network = networks.find(store, ref) if store is not None else None
    if network is None:
        local = await engine_network(request, ref)
        if local is not None and is_shoals(local) and store is None:
            node_of(request).control()  # a worker: Docker's "not a swarm manager"
        if local is None or not is_shoals(local):
            await node_of(request).engine.request("DELETE", f"/networks/{ref}")
            return web.Response(status=204)
        network = networks.find(store, _swarm_id(local))
        if network is None:
            raise NotFound(f"network {ref} not found")
    await networks.remove(store, network.id)
    return web.Response(status=204)


async def prune(request: web.Request) -> web.StreamResponse:
    node = node_of(request)
    params = {"filters": request.query["filters"]} if "filters" in request.query else None
    pruned = await node.engine.request("POST", "/networks/prune", params=params) or {}
    deleted = list(pruned.get("NetworksDeleted") or [])
    store = manager_store(request)
    if store is not None:
        filters = Filters.parse(request.query.get("filters"))
        filters.values.pop("until", None)
        deleted += await networks.prune(store, filters)
    return json_response({"NetworksDeleted": deleted or None})


def add_routes(routes: Routes) -> None:
    routes.add("GET", "/networks", list_networks)
    routes.add("GET", "/networks/{id}", inspect)
    routes.add("POST", "/networks/create", create)
    routes.add("DELETE", "/networks/{id}", remove)
    routes.add("POST", "/networks/prune", prune)
