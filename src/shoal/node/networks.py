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
from shoal.rpc.messages import NetworkState

log = logging.getLogger(__name__)


class NodeNetworks:
    def __init__(self, underlay: str, state_dir: Path, engine_networks: EngineNetworks) -> None:
        self.engine_networks = engine_networks
        self.agent: Agent | None = None  # set once the agent exists: its session asks
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
        await self.engine_networks.sync(state.networks)

    async def run(self) -> None:
        """Serve dockerd (the plugin, DNS) until cancelled; the kernel state stays."""
        await self.plane.start()
        try:
            await asyncio.Event().wait()
        finally:
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
