"""What the Docker API needs of the node it serves, and nothing more.

`shoal.node.daemon.Daemon` implements it; the API never sees the daemon itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from shoal.api.models import Task
from shoal.engine.client import Engine
from shoal.store.store import Store


class Membership(Protocol):
    """This node's place in its swarm."""

    node_id: str
    role: str  # manager | worker
    advertise_addr: str  # host:port
    managers: list[str]  # cluster-port addresses of the managers (as a worker knows them)


class LocalNode(Protocol):
    @property
    def engine(self) -> Engine:
        """The node's own Docker Engine."""
        ...

    @property
    def membership(self) -> Membership | None:
        """None outside a swarm."""
        ...

    @property
    def locked(self) -> bool:
        """A manager restarted with autolock on and not unlocked yet."""
        ...

    def control(self) -> Store:
        """The cluster state, on a manager; raises Docker's "not a manager" errors elsewhere,
        and its "Swarm is encrypted and needs to be unlocked" one while locked."""
        ...

    async def barrier(self) -> None:
        """On a manager that can answer control calls: wait until its view of the cluster
        state has every write acknowledged anywhere before the call (so a read sent to any
        manager sees what another one acknowledged). Raises Docker's no-leader error when the
        store cannot tell; does nothing on other nodes (`control()` refuses there)."""
        ...

    def known_managers(self) -> list[dict[str, str]]:
        """`RemoteManagers` as this manager last knew them (`NodeID`, `Addr`), quorum or
        not."""
        ...

    async def unlock(self, unlock_key: str) -> None:
        """`POST /swarm/unlock`."""
        ...

    def follow_unlock_key(self) -> None:
        """Re-wrap this manager's data key for the swarm's unlock key after an update."""
        ...

    async def init(self, req: dict[str, Any]) -> str:
        """`POST /swarm/init`: returns the new node ID."""
        ...

    async def join(self, req: dict[str, Any]) -> None: ...

    async def leave(self, force: bool) -> None: ...

    async def backup(self) -> tuple[bytes, str | None]:
        """`POST /shoal/swarm/backup`: the backup file and the key made for it (None: the
        swarm's unlock key)."""
        ...

    async def restore(self, data: bytes, key: str, req: dict[str, Any]) -> str:
        """`POST /shoal/swarm/restore`: the node ID of the restored swarm's manager."""
        ...

    def task_log(
        self, task: Task, container: str, params: dict[str, str], tty: bool
    ) -> AsyncIterator[tuple[int, bytes]]:
        """A task container's log as (stream, bytes) chunks, on whichever node it runs."""
        ...
