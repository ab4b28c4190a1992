"""The leader's role loop (SwarmKit's role manager): the etcd members of demoted managers.

`docker node demote` sets the node's role; the node itself, while it runs, takes its etcd
member out of the cluster and comes back as a worker. The leader removes the member of a
demoted manager that is not reachable (Docker shrinks the cluster for a Down manager too),
or that is still a member some seconds after its demotion, and then clears the node's
`ManagerStatus`: it counts no longer among the managers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from shoal.api.models import Node
from shoal.store.store import Store

log = logging.getLogger(__name__)

PERIOD = 0.5  # seconds between looks
SELF_REMOVAL = 5.0  # seconds a reachable demoted manager gets to remove its member itself


class EtcdMember(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def name(self) -> str: ...


@runtime_checkable
class Membership(Protocol):
    """The managers' etcd cluster (`shoal.store.etcd.Etcd`)."""

    async def members(self) -> Sequence[EtcdMember]: ...

    async def remove_member(self, member_id: int) -> None: ...


def demoted(nodes: list[Node], leader: str) -> list[Node]:
    """Nodes demoted that still count as managers (pure); the leader itself is left to
    hand over and remove its own member."""
    return [
        n
        for n in nodes
        if n.spec.role == "worker" and n.manager_status is not None and n.id != leader
    ]


class RoleManager:
    def __init__(
        self,
        store: Store,
        membership: Membership | None,
        node_id: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.membership = membership
        self.node_id = node_id
        self.clock = clock

    async def run(self) -> None:
        since: dict[str, float] = {}
        while True:
            try:
                await self._tick(since)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - no quorum now: the next round
                log.debug("role manager: %s", e)
            await asyncio.sleep(PERIOD)

    async def _tick(self, since: dict[str, float]) -> None:
        nodes = demoted(list(self.store.nodes()), self.node_id)
        for gone in set(since) - {n.id for n in nodes}:
            del since[gone]
        if not nodes:
            return
        members = {m.name: m.id for m in await self.membership.members()} if self.membership else {}
        done = {}
        for node in nodes:
            first = since.setdefault(node.id, self.clock())
            if node.id in members:
                assert node.manager_status is not None and self.membership is not None
                reachable = node.manager_status.reachability == "reachable"
                if reachable and self.clock() - first < SELF_REMOVAL:
                    continue
                await self.membership.remove_member(members[node.id])
                log.info("etcd member of demoted node %s removed", node.id)
            done[node.id] = _no_manager_status
        if done:
            await self.store.modify(Node, done)


def _no_manager_status(node: Node) -> bool:
    if node.spec.role != "worker" or node.manager_status is None:
        return False
    node.manager_status = None
    return True
