"""`POST /containers/create`: a plain container joining a swarm network (an attachable
overlay, `docker run --network NAME`) gets shoal's DNS as its DNS server, so that dockerd's
embedded resolver asks shoal for the names it does not know (services, containers on other
nodes). Everything else about containers goes to the engine untouched."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from shoal.api.errors import Forbidden, PermissionDenied
from shoal.dockerapi.http import Routes, json_response, node_of, read_object
from shoal.dockerapi.networks import engine_network, manager_store
from shoal.engine.networks import DNS_ADDRESS, swarm_id_of
from shoal.manager.controlapi import networks

NETWORK_WAIT = 10.0  # seconds a new attachable network may take to reach this node's engine
NOT_NETWORKS = ("", "default", "bridge", "host", "none")


def networks_of(body: dict[str, Any]) -> list[str]:
    """The networks a create request puts the container on."""
    mode = ((body.get("HostConfig") or {}).get("NetworkMode")) or ""
    names = [] if mode in NOT_NETWORKS or mode.startswith("container:") else [mode]
    names += list((body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {})
    return list(dict.fromkeys(names))


async def on_swarm_network(request: web.Request, names: list[str]) -> bool:
    """Whether the container joins a swarm network; Docker's refusal (on a manager) of one
    that is not attachable. The engine answers for a network it does not know itself.

    On a manager, an attachable network the engine does not have yet (`docker network
    create` just returned) is waited for, up to `NETWORK_WAIT`."""
    store = manager_store(request)
    joins = False
    for name in names:
        local = await engine_network(request, name)
        if local is not None and swarm_id_of(local) is None:
            continue  # one of the engine's own
        ref = (swarm_id_of(local) if local is not None else None) or name
        network = networks.find(store, ref) if store is not None else None
        if network is not None and not network.spec.attachable:
            denied = PermissionDenied(f"network {name} not manually attachable")
            raise Forbidden(f"Could not attach to network {name}: {denied}")
        deadline = time.monotonic() + NETWORK_WAIT
        while local is None and network is not None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            found = await engine_network(request, network.name)
            local = found if found is not None and swarm_id_of(found) == network.id else None
        joins = joins or local is not None
    return joins


async def create(request: web.Request) -> web.StreamResponse:
    engine = node_of(request).engine
    body = await read_object(request)
    if await on_swarm_network(request, networks_of(body)):
        host = body.setdefault("HostConfig", {}) or {}
        body["HostConfig"] = host
        dns = list(host.get("Dns") or [])
        host["Dns"] = [DNS_ADDRESS, *[d for d in dns if d != DNS_ADDRESS]]
    created = await engine.request(
        "POST", "/containers/create", params=dict(request.query), body=body
    )
    return json_response(created, status=201)


def add_routes(routes: Routes) -> None:
    routes.add("POST", "/containers/create", create, fresh=False)
