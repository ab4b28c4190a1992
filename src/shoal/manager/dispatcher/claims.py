"""Which manager holds each node's session, for every manager to see.

Every manager's dispatcher serves the agents that connected to it. It claims each of their
nodes under a lease of its own: `/shoal-sessions/<node-id>` → its node ID. The lease is
kept alive while the manager lives and reaches a quorum of etcd; when the manager dies (or
is cut off) its claims expire with it, within `TTL` seconds. The leader's node monitor
(`shoal.manager.monitor`) marks a node down only when no manager has claimed it for a
heartbeat grace; a node whose agent reconnected to another manager meanwhile stays ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from shoal.api.errors import Unavailable
from shoal.store.kv import Delete, KVBackend, Put

log = logging.getLogger(__name__)

PREFIX = "/shoal-sessions/"
TTL = 3  # seconds a dead manager's claims outlive it


async def holders(kv: KVBackend) -> dict[str, str]:
    """node ID → the manager holding its session, for every node some manager claims."""
    _, kvs = await kv.load(PREFIX)
    return {k.key[len(PREFIX) :]: (k.value or b"").decode() for k in kvs if k.value}


class Claims:
    """This manager's claims. `run()` keeps the lease alive (and, after losing it, takes a
    new one and claims its nodes again)."""

    def __init__(self, kv: KVBackend, manager_id: str, ttl: int = TTL) -> None:
        self.kv = kv
        self.manager_id = manager_id
        self.ttl = ttl
        self._lease = 0
        self._held: dict[str, int] = {}  # node ID → the revision of our claim
        self._ready = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                self._lease = await self.kv.grant(self.ttl)
                for node_id in list(self._held):
                    await self._put(node_id)
                self._ready.set()
                while await self.kv.keepalive(self._lease) > 0:
                    await asyncio.sleep(self.ttl / 3)
                log.warning("session claims: lease expired; claiming again")
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.kv.revoke(self._lease), 1)
                raise
            except Exception as e:  # noqa: BLE001 - no quorum: try again
                log.debug("session claims: %s", e)
            self._ready.clear()
            await asyncio.sleep(self.ttl / 3)

    async def claim(self, node_id: str) -> None:
        """Claim the node (its agent comes back later if this manager has no lease now)."""
        self._held[node_id] = 0
        if not self._ready.is_set():
            raise Unavailable("this manager cannot take sessions yet: no lease")
        await self._put(node_id)

    async def _put(self, node_id: str) -> None:
        _, revision = await self.kv.txn(
            [Put(PREFIX + node_id, self.manager_id.encode())], lease=self._lease
        )
        if node_id in self._held:
            self._held[node_id] = revision

    async def release(self, node_id: str) -> None:
        """Drop our claim (unless another manager claimed the node since)."""
        revision = self._held.pop(node_id, None)
        if revision:
            with contextlib.suppress(Exception):
                await self.kv.txn([Delete(PREFIX + node_id, expect=revision)])

    async def holder(self, node_id: str) -> str | None:
        found = await self.kv.get(PREFIX + node_id)
        return found.value.decode() if found is not None and found.value else None
