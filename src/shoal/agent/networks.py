"""The swarm networks this node has, as networks of shoal's driver in its engine: made when a
task (or, for attachable ones, the node's network state) needs one, removed when nothing
needs it any more. The data plane underneath is `shoal.network`'s, driven by the node."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from shoal.agent.session import Session
from shoal.api import labels
from shoal.api.errors import EngineError
from shoal.api.models import Network
from shoal.engine import networks as engine_networks
from shoal.engine.client import EngineAPI
from shoal.rpc.messages import NetworkPlan, NetworkState

log = logging.getLogger(__name__)


class NetworkHandler(Protocol):
    """What the worker hands a node's network state to (the node's data plane)."""

    async def apply(self, state: NetworkState) -> None: ...


class EngineNetworks:
    def __init__(self, engine: EngineAPI) -> None:
        self.engine = engine
        self.known: dict[str, str] = {}  # swarm network ID → engine network name
        self._lock = asyncio.Lock()

    async def ensure(self, network: Network) -> str:
        """The engine network of swarm network `network` (made if missing); its name."""
        conf = network.subnet()
        if conf is None or not conf.subnet or not conf.gateway:
            raise EngineError(500, f"network {network.name} has no subnet yet")
        body = engine_networks.create_body(
            network.name, network.id, conf.subnet, conf.gateway,
            internal=bool(network.spec.internal), labels=network.spec.labels,
        )  # fmt: skip
        return await self._ensure(network.id, network.name, body)

    async def ensure_plan(self, plan: NetworkPlan) -> str:
        body = engine_networks.create_body(
            plan.name, plan.id, plan.subnet, plan.gateway, internal=plan.internal,
            labels=plan.labels,
        )  # fmt: skip
        return await self._ensure(plan.id, plan.name, body)

    async def _ensure(self, swarm_id: str, name: str, body: dict[str, object]) -> str:
        async with self._lock:
            if swarm_id in self.known:
                return self.known[swarm_id]
            present = await self._present()
            if swarm_id not in present:
                try:
                    await self.engine.request("POST", "/networks/create", body=body)
                    log.info("network %s (%s) created in the engine", name, swarm_id)
                except EngineError as e:
                    if e.status != 409:
                        raise
            self.known[swarm_id] = name
            return name

    async def _present(self) -> dict[str, str]:
        """The engine's networks of shoal's driver: swarm ID → engine network ID."""
        found = await self.engine.request("GET", "/networks") or []
        out = {}
        for r in found:
            swarm_id = engine_networks.swarm_id_of(r)
            if swarm_id is not None:
                out[swarm_id] = r["Id"]
        return out

    async def sync(self, plans: list[NetworkPlan]) -> bool:
        """Make the engine's shoal networks the ones of `plans` (those still in use by a
        container stay until their containers are gone). True when nothing is left to do."""
        done = True
        for plan in plans:
            try:
                await self.ensure_plan(plan)
            except EngineError as e:
                log.warning("network %s: %s", plan.name, e)
                done = False
        wanted = {p.id for p in plans}
        async with self._lock:
            for swarm_id, engine_id in (await self._present()).items():
                if swarm_id in wanted:
                    continue
                try:
                    await self.engine.request("DELETE", f"/networks/{engine_id}")
                    self.known.pop(swarm_id, None)
                    log.info("network %s removed from the engine", swarm_id)
                except EngineError as e:
                    log.debug("network %s stays for now: %s", swarm_id, e)
                    done = False
        return done


async def report_names(engine: EngineAPI, session: Session) -> None:
    """Tell the manager the names of plain containers that join a swarm network here (their
    name and aliases: what `docker run --name … --network …` means other nodes to resolve).
    Task containers are named by the swarm itself."""
    filters = {"type": ["network"], "event": ["connect"]}
    while True:
        try:
            async for ev in engine.events(filters):
                attrs = (ev.get("Actor") or {}).get("Attributes") or {}
                if attrs.get("type") == engine_networks.DRIVER and attrs.get("container"):
                    await _name(engine, session, attrs["container"], attrs.get("name") or "")
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - engine restarting: look again later
            log.warning("engine network events: %s", e)
        await asyncio.sleep(1)


async def _name(engine: EngineAPI, session: Session, container: str, network: str) -> None:
    try:
        c = await engine.request("GET", f"/containers/{container}/json")
        net = await engine.request("GET", f"/networks/{network}")
    except EngineError as e:
        log.debug("naming %s on %s: %s", container, network, e)
        return
    if labels.TASK_ID in ((c.get("Config") or {}).get("Labels") or {}):
        return
    swarm_id = engine_networks.swarm_id_of(net)
    settings = ((c.get("NetworkSettings") or {}).get("Networks") or {}).get(network) or {}
    address = settings.get("IPAddress")
    if swarm_id is None or not address:
        return
    name = (c.get("Name") or "").lstrip("/")
    names = [n for n in [name, *(settings.get("Aliases") or [])] if n and n != c["Id"][:12]]
    await session.named(swarm_id, address, list(dict.fromkeys(names)))
