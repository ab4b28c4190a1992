"""Leader election on a lease: the manager whose key `/shoal-leader` exists leads.

`campaign()` returns once this manager leads; `hold()` keeps the lease alive and returns
(or raises) as soon as leadership is lost, so the leader's loops can be cancelled with it.
`guard` fences the leader's writes: it names this term's leader key by its create revision,
so a write made after the term ended (the key expired, another manager created it anew)
fails even if the old leader has not noticed yet.
"""

from __future__ import annotations

import asyncio
import logging

from shoal.store.kv import Guard, KVBackend, Put

log = logging.getLogger(__name__)

KEY = "/shoal-leader"


class Election:
    def __init__(self, kv: KVBackend, node_id: str, ttl: int = 2) -> None:
        self.kv = kv
        self.node_id = node_id
        self.ttl = ttl
        self.lease = 0
        self.guard = Guard(KEY, 0)

    async def leader(self) -> str | None:
        kv = await self.kv.get(KEY)
        return kv.value.decode() if kv and kv.value else None

    async def campaign(self) -> None:
        while True:
            try:
                self.lease = await self.kv.grant(self.ttl)
                ok, revision = await self.kv.txn(
                    [Put(KEY, self.node_id.encode(), expect=0)], lease=self.lease
                )
                if ok:
                    self.guard = Guard(KEY, revision)
                    log.info("this manager is the leader")
                    return
                await self.kv.revoke(self.lease)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - no quorum yet: try again
                log.debug("campaign: %s", e)
            await asyncio.sleep(self.ttl / 4)

    async def hold(self) -> None:
        """Keep the lease alive; return when it is lost."""
        period = self.ttl / 3
        while True:
            await asyncio.sleep(period)
            try:
                ttl = await asyncio.wait_for(self.kv.keepalive(self.lease), self.ttl)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001
                log.warning("lost the leader lease: %s", e)
                return
            if ttl <= 0:
                log.warning("leader lease expired")
                return

    async def resign(self) -> None:
        if self.lease:
            try:
                await self.kv.revoke(self.lease)
            except Exception:  # noqa: BLE001 - it expires anyway
                pass
            self.lease = 0
