"""`POST /containers/create`: a plain container joining a swarm network (an attachable
overlay, `docker run --network NAME`) gets shoal's DNS as its DNS server, so that dockerd's
embedded resolver asks shoal for the names it does not know (services, containers on other
nodes). Everything else about containers goes to the engine untouched."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from shoal.api.errors import EngineError
from shoal.dockerapi.http import Routes, json_response, node_of, read_object
from shoal.engine.client import Engine
from shoal.engine.networks import DNS_ADDRESS, swarm_id_of

NOT_NETWORKS = ("", "default", "bridge", "host", "none")


def networks_of(body: dict[str, Any]) -> list[str]:
    """The networks a create request puts the container on."""
    mode = ((body.get("HostConfig") or {}).get("NetworkMode")) or ""
    names = [] if mode in NOT_NETWORKS or mode.startswith("container:") else [mode]
    names += list((body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {})
    return list(dict.fromkeys(names))


async def on_swarm_network(engine: Engine, names: list[str]) -> bool:
    for name in names:
        try:
            if swarm_id_of(await engine.request("GET", f"/networks/{name}")) is not None:
                return True
        except EngineError:
            continue  # the engine answers for an unknown network itself
    return False


async def create(request: web.Request) -> web.StreamResponse:
    engine = node_of(request).engine
    body = await read_object(request)
    if await on_swarm_network(engine, networks_of(body)):
        host = body.setdefault("HostConfig", {}) or {}
        body["HostConfig"] = host
        dns = list(host.get("Dns") or [])
        host["Dns"] = [DNS_ADDRESS, *[d for d in dns if d != DNS_ADDRESS]]
    created = await engine.request(
        "POST", "/containers/create", params=dict(request.query), body=body
    )
    return json_response(created, status=201)


def add_routes(routes: Routes) -> None:
    routes.add("POST", "/containers/create", create)
