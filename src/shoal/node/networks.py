"""A node's swarm networks: its data plane (`shoal.network`) and its engine's networks of
shoal's driver (`shoal.agent.networks`), both made to follow the network state the manager
sends; and the data plane's address requests for plain containers, over the agent's session."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from pathlib import Path

from shoal.agent.agent import Agent
from shoal.agent.networks import EngineNetworks
from shoal.api.errors import Unavailable
from shoal.api.naming import new_id
from shoal.network import DataPlane
from shoal.network.kernel import KernelError
from shoal.rpc.messages import NetworkPlan, NetworkState

log = logging.getLogger(__name__)

RETRY = 2.0  # seconds between tries of engine networks that could not be settled


class NodeNetworks:
    def __init__(self, underlay: str, state_dir: Path, engine_networks: EngineNetworks) -> None:
        self.engine_networks = engine_networks
        self.agent: Agent | None = None  # set once the agent exists: its session asks
        self._plans: list[NetworkPlan] | None = None  # the engine networks still to settle
        self._unsettled = asyncio.Event()
        self.plane = DataPlane(
            underlay, str(state_dir), allocate=self._allocate, release=self._release
        )

    async def apply(self, state: NetworkState) -> None:
        """The data plane first (the engine's driver needs the networks it is asked to make),
        then the engine's networks."""
        try:
            await self.plane.apply(state)
        except KernelError as e:  # the other networks were applied; the next state retries
            log.error("network data plane: %s", e)
        if await self.engine_networks.sync(state.networks):
            self._plans = None
        else:
            self._plans = state.networks
            self._unsettled.set()

    async def run(self) -> None:
        """Serve dockerd (the plugin, DNS) until cancelled; the kernel state stays."""
        await self.plane.start()
        try:
            while True:  # an engine network still in use when it was to go: try again
                await self._unsettled.wait()
                await asyncio.sleep(RETRY)
                self._unsettled.clear()
                plans = self._plans
                if plans is not None and not await self.engine_networks.sync(plans):
                    self._unsettled.set()
        finally:
            with contextlib.suppress(Exception):
                await self.plane.close()

    async def serve(self) -> None:
        """Serve dockerd (the plugin, DNS) without running the swarm parts: while the node
        leaves, dockerd calls the plugin for every container and network that goes; while a
        manager is locked, its containers keep their names and dockerd its plugin."""
        try:
            await self.plane.start()
        except (KernelError, OSError) as e:
            log.warning("network data plane: not served while leaving: %s", e)

    async def close(self) -> None:
        """Stop serving dockerd after `serve` (the kernel state stays)."""
        with contextlib.suppress(Exception):
            await self.plane.close()

    async def remove_engine_networks(self) -> None:
        """The engine's networks of shoal's driver go (their containers went first)."""
        with contextlib.suppress(Exception):
            await self.engine_networks.sync([])

    async def teardown(self) -> None:
        """The node leaves the swarm: everything shoal added on the host goes."""
        await self.plane.teardown()

    async def _allocate(self, network_id: str, hint: Mapping[str, str]) -> str:
        session = self.agent.session if self.agent is not None else None
        if session is None:
            raise Unavailable("this node has no session with a manager: no address to give")
        cidr = await session.attach(network_id, new_id())
        return cidr.split("/")[0]

    async def _release(self, network_id: str, ip: str) -> None:
        session = self.agent.session if self.agent is not None else None
        if session is not None:
            await session.detach(network_id, ip)
