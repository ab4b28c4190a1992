"""`FakePeers`: what a manager's leader judge (`shoal.manager.failover.DeadLeader`) sees of the
other managers — which cluster ports answer, and which etcd member leads — set by the test;
`Unanswered`: a `MemoryKV` whose next requests of a kind are never answered, as requests
sent to an etcd leader that has just died."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from shoal.store.kv import KV, Guard, Op
from shoal.testing.kv import MemoryKV


class FakePeers:
    def __init__(self, etcd_leader: str | None = None) -> None:
        self.etcd_leader = etcd_leader
        self.closed: set[str] = set()  # addresses whose cluster port does not answer
        self.probes = 0

    async def probe(self, addr: str) -> bool:
        self.probes += 1
        return addr not in self.closed

    async def leader(self) -> str | None:
        return self.etcd_leader


class Unanswered(MemoryKV):
    """`hang["grant"] = 2`: the next two lease grants never answer. `lose_txn_answers = 1`:
    the next transaction is applied but its caller gets an error instead of the answer."""

    def __init__(self) -> None:
        super().__init__()
        self.hang: dict[str, int] = {}
        self.lose_txn_answers = 0

    async def _maybe_hang(self, call: str) -> None:
        if self.hang.get(call, 0) > 0:
            self.hang[call] -= 1
            await asyncio.Event().wait()

    async def grant(self, ttl: int) -> int:
        await self._maybe_hang("grant")
        return await super().grant(ttl)

    async def txn(
        self, ops: Sequence[Op], lease: int = 0, guards: Sequence[Guard] = ()
    ) -> tuple[bool, int]:
        await self._maybe_hang("txn")
        result = await super().txn(ops, lease, guards)
        if self.lose_txn_answers > 0:
            self.lose_txn_answers -= 1
            raise ConnectionError("memory kv: the answer was lost")
        return result

    async def load(self, prefix: str) -> tuple[int, list[KV]]:
        await self._maybe_hang("load")
        return await super().load(prefix)
