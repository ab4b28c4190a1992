"""The agent's view of its manager: what a session carries, whatever the transport.

The dispatcher sends assignment sets (a full one first, then increments); the agent sends
batched task statuses and heartbeats. `Session` is the boundary: the dispatcher serves an
in-process implementation for its own node's agent, `RemoteSession` carries the same
messages (`shoal.rpc.messages`) over the network.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from shoal.api.models import TaskStatus
from shoal.rpc.messages import Assignment, NetworkState, RoleChange


class Session(Protocol):
    node_id: str

    def assignments(self) -> AsyncIterator[Assignment | NetworkState | RoleChange]:
        """The tasks this node runs (sets of them), and its network state (in full)."""
        ...

    async def report(self, statuses: dict[str, TaskStatus]) -> None: ...

    async def attach(self, network_id: str, endpoint: str) -> str:
        """An address (CIDR) on an attachable network for a plain container of this node."""
        ...

    async def detach(self, network_id: str, address: str) -> None: ...

    async def named(self, network_id: str, address: str, names: list[str]) -> None:
        """The names an attached container answers to in the network's DNS."""
        ...

    async def applied(self, version: int) -> None:
        """The node's data plane carries out the network state of this version."""
        ...

    async def stopping(self) -> None:
        """shoald stops to come back: the manager waits out the full grace before down."""
        ...

    async def heartbeat(self) -> float:
        """Tell the manager we are alive; returns the period until the next heartbeat."""
        ...

    async def close(self) -> None: ...
