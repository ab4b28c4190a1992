"""A manager: campaigns for leadership and, while it leads, runs the control loops in one task
group that is cancelled the moment the lease is lost. The loops write through a store fenced
by the leadership, so a write after the term ended fails even before the loss is noticed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from shoal.api.errors import Deposed
from shoal.api.models import Node
from shoal.manager.allocator.allocator import Allocator
from shoal.manager.dispatcher.claims import holders
from shoal.manager.failover import DeadLeader, RaftLeader
from shoal.manager.monitor import NodeMonitor
from shoal.manager.orchestrator.orchestrator import Orchestrator
from shoal.manager.orchestrator.reaper import Reaper
from shoal.manager.roles import Membership, RoleManager
from shoal.manager.scheduler.scheduler import Scheduler
from shoal.store.election import Election
from shoal.store.kv import KVBackend
from shoal.store.store import Store

log = logging.getLogger(__name__)


class Manager:
    def __init__(
        self,
        store: Store,
        kv: KVBackend,
        node_id: str,
        clock: Callable[[], float] = time.time,
        membership: Membership | None = None,
    ) -> None:
        """`membership`: the managers' own etcd members (None: the store is not theirs, an
        external etcd cluster or a fake)."""
        self.store = store
        self.kv = kv
        self.membership = membership
        self.clock = clock
        self.node_id = node_id
        raft = kv if isinstance(kv, RaftLeader) else None
        self.election = Election(kv, node_id, judge=DeadLeader(store.nodes, raft, clock))
        self.is_leader = False

    async def run(self) -> None:
        while True:
            await self.election.campaign()
            self.is_leader = True
            store = self.store.fenced(self.election.guard)
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._keep_leader_mark(store))
                    tg.create_task(Orchestrator(store, self.clock).run())
                    tg.create_task(Allocator(store).run())
                    tg.create_task(Scheduler(store, self.clock).run())
                    tg.create_task(Reaper(store).run())
                    tg.create_task(NodeMonitor(store, lambda: holders(self.kv), self.clock).run())
                    tg.create_task(
                        RoleManager(store, self.membership, self.node_id, self.clock).run()
                    )
                    await self.election.hold()
                    raise _LostLease
            except* (_LostLease, Deposed):
                log.warning("leadership lost; stopping the leader's loops")
            except* Exception as eg:
                log.error("a leader loop failed; campaigning again", exc_info=eg)
                await asyncio.sleep(0.5)
            finally:
                self.is_leader = False
                await self.election.resign()

    async def _keep_leader_mark(self, store: Store) -> None:
        """`ManagerStatus.Leader` is true on this node and false on every other one."""
        queue = store.subscribe()
        try:
            while True:
                fixes = {
                    n.id: _leader if n.id == self.node_id else _not_leader
                    for n in store.nodes()
                    if n.manager_status is not None
                    and bool(n.manager_status.leader) != (n.id == self.node_id)
                }
                if fixes:
                    await store.modify(Node, fixes)
                while not any(ev.kind == "nodes" for ev in await queue.get()):
                    pass
        finally:
            store.unsubscribe(queue)


def _leader(node: Node) -> bool:
    ms = node.manager_status
    if ms is None or ms.leader:
        return False
    ms.leader = True
    return True


def _not_leader(node: Node) -> bool:
    ms = node.manager_status
    if ms is None or not ms.leader:
        return False
    ms.leader = False
    return True


class _LostLease(Exception):
    pass
