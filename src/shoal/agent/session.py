"""The agent's view of its manager: what a session carries, whatever the transport.

The dispatcher sends assignment sets (a full one first, then increments); the agent sends
batched task statuses and heartbeats. `Session` is the boundary; the dispatcher serves an
in-process implementation, and the network transport carries the same messages.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from shoal.api.models import Task, TaskStatus


@dataclass
class ServiceInfo:
    """What an agent needs to know of a service to run its tasks."""

    name: str
    labels: dict[str, str] | None = None


@dataclass
class Assignment:
    full: bool
    tasks: list[Task] = field(default_factory=list)  # new or changed (all of them when full)
    removed: list[str] = field(default_factory=list)  # IDs of tasks no longer assigned
    services: dict[str, ServiceInfo] = field(default_factory=dict)


class Session(Protocol):
    node_id: str

    def assignments(self) -> AsyncIterator[Assignment]: ...

    async def report(self, statuses: dict[str, TaskStatus]) -> None: ...

    async def heartbeat(self) -> float:
        """Tell the manager we are alive; returns the period until the next heartbeat."""
        ...

    async def close(self) -> None: ...
