"""Leader election on a lease: the manager whose key `/shoal-leader` exists leads.

`campaign()` returns once this manager leads; `hold()` keeps the lease alive and returns
(or raises) as soon as leadership is lost, so the leader's loops can be cancelled with it.
`guard` fences the leader's writes: it names this term's leader key by its create revision,
so a write made after the term ended (the key expired, another manager created it anew)
fails even if the old leader has not noticed yet.

A candidate watches the key and tries again the moment it is deleted. Every request of the
campaign is bounded (`CALL_TIMEOUT`): one sent as etcd's leader died would otherwise wait for
etcd's own request timeout (7 s) although a new etcd leader answers after about one. A
candidate given a `judge` also asks it, every `CHECK_PERIOD`, whether the leader is known to
be dead (`shoal.manager.failover`), and then revokes the leader's lease rather than waiting
for it to expire — which a new etcd leader delays by its election timeout, on top of the TTL.
A live leader wrongly judged dead only loses its term (its writes are fenced).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from shoal.store.kv import KV, Guard, KVBackend, Put

log = logging.getLogger(__name__)

KEY = "/shoal-leader"
CALL_TIMEOUT = 1.0  # seconds one request of the campaign may take
CHECK_PERIOD = 0.25  # seconds between asking the judge whether the leader is dead
RETRY = 0.2  # seconds before trying again after a failed request

Judge = Callable[[KV], Awaitable[bool]]  # the leader key → whether its holder is known dead
T = TypeVar("T")


class Election:
    def __init__(
        self, kv: KVBackend, node_id: str, ttl: int = 2, judge: Judge | None = None
    ) -> None:
        self.kv = kv
        self.node_id = node_id
        self.ttl = ttl
        self.judge = judge
        self.lease = 0
        self.guard = Guard(KEY, 0)

    async def leader(self) -> str | None:
        kv = await self.kv.get(KEY)
        return kv.value.decode() if kv and kv.value else None

    async def campaign(self) -> None:
        while True:
            try:
                revision, kvs = await _bounded(self.kv.load(KEY))
                holder = next((kv for kv in kvs if kv.key == KEY and kv.value), None)
                if holder is None:
                    if await self._claim():
                        return
                elif holder.value == self.node_id.encode() and holder.lease:
                    if holder.lease == self.lease:  # our create went through, its answer lost
                        self._won(holder.create_revision)
                        return
                    # A term of ours that ended (a keepalive not answered, a restart): nobody
                    # leads under it any more.
                    await _bounded(self.kv.revoke(holder.lease))
                else:
                    await self._wait_vacant(holder, revision)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - no quorum yet: try again
                log.debug("campaign: %s", str(e) or type(e).__name__)
                await asyncio.sleep(RETRY)

    async def _claim(self) -> bool:
        self.lease = await _bounded(self.kv.grant(self.ttl))
        ok, revision = await _bounded(
            self.kv.txn([Put(KEY, self.node_id.encode(), expect=0)], lease=self.lease)
        )
        if ok:
            self._won(revision)
            return True
        lease, self.lease = self.lease, 0
        with contextlib.suppress(Exception):
            await _bounded(self.kv.revoke(lease))
        return False

    def _won(self, revision: int) -> None:
        self.guard = Guard(KEY, revision)
        log.info("this manager is the leader")

    async def _wait_vacant(self, holder: KV, revision: int) -> None:
        """Until the key is deleted or replaced (a watch from `revision` on), its holder is
        judged dead (then its lease is revoked), or `ttl` passed (to look again)."""
        gone = asyncio.Event()

        async def follow() -> None:
            async for changes in self.kv.watch(KEY, revision + 1):
                if any(kv.key == KEY and _ended(holder, kv) for kv in changes):
                    gone.set()
                    return

        follower = asyncio.ensure_future(follow())
        deadline = asyncio.get_running_loop().time() + self.ttl
        try:
            while not gone.is_set() and not follower.done():
                if self.judge is not None and await _bounded(self.judge(holder)):
                    log.warning(
                        "the leader %s is dead: revoking its lease", (holder.value or b"").decode()
                    )
                    await _bounded(self.kv.revoke(holder.lease))
                    return
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(gone.wait(), min(CHECK_PERIOD, left))
        finally:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)

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
                log.warning("lost the leader lease: %s", str(e) or type(e).__name__)
                return
            if ttl <= 0:
                log.warning("leader lease expired")
                return

    async def resign(self) -> None:
        if self.lease:
            try:
                await _bounded(self.kv.revoke(self.lease))
            except Exception:  # noqa: BLE001 - it expires anyway
                pass
            self.lease = 0


def _ended(holder: KV, kv: KV) -> bool:
    """Whether a change of the leader key ends `holder`'s term."""
    return kv.value is None or kv.create_revision != holder.create_revision


async def _bounded(call: Awaitable[T]) -> T:
    return await asyncio.wait_for(call, CALL_TIMEOUT)
