"""`MemoryKV`: the store's key-value backend in memory, with etcd's semantics.

One revision counter for all keys; a transaction's writes share one revision; compares on
`mod_revision` (0: the key must not exist) and guards on `create_revision`; watches deliver
each transaction's changes as one batch, in order; leases expire on the event loop's clock
(so, with looptime, on virtual time). `fail_next_txn` and `partition` let tests inject faults.
`LaggingKV` is another manager's view of one, its watch late: a mirror that lags.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from shoal.store.kv import KV, MAX_TXN_OPS, Delete, Guard, Op, Put


@dataclass
class _Lease:
    ttl: int
    expires: float
    keys: set[str] = field(default_factory=set)


class MemoryKV:
    def __init__(self) -> None:
        self.revision = 1
        self.data: dict[str, KV] = {}
        self.txns = 0  # committed transactions, for tests that count writes
        self.unavailable = False  # True: every call fails, as an etcd without quorum
        self._watchers: list[tuple[str, asyncio.Queue[list[KV]]]] = []
        self._leases: dict[int, _Lease] = {}
        self._next_lease = 1
        self._fail_txns = 0

    # ------------------------------------------------------------------ faults

    def fail_next_txn(self, count: int = 1) -> None:
        """The next `count` transactions raise, as a backend that lost its connection."""
        self._fail_txns += count

    def _check(self) -> None:
        if self.unavailable:
            raise ConnectionError("memory kv: unavailable")

    # ------------------------------------------------------------------ KVBackend

    async def connect(self) -> None:
        self._check()

    async def close(self) -> None:
        pass

    async def status(self) -> int:
        self._check()
        return self.revision

    async def load(self, prefix: str) -> tuple[int, list[KV]]:
        self._check()
        self._expire()
        return self.revision, [kv for k, kv in sorted(self.data.items()) if k.startswith(prefix)]

    async def get(self, key: str) -> KV | None:
        self._check()
        self._expire()
        return self.data.get(key)

    async def txn(
        self, ops: Sequence[Op], lease: int = 0, guards: Sequence[Guard] = ()
    ) -> tuple[bool, int]:
        self._check()
        if self._fail_txns:
            self._fail_txns -= 1
            raise ConnectionError("memory kv: transaction lost")
        compares = len(guards) + sum(op.expect is not None for op in ops)
        if max(compares, len(ops)) > MAX_TXN_OPS:
            raise ValueError("etcdserver: too many operations in txn request")
        self._expire()
        await asyncio.sleep(0)  # a transaction is a round trip: others may run meanwhile
        for g in guards:
            kv = self.data.get(g.key)
            if kv is None or kv.create_revision != g.create_revision:
                return False, self.revision
        for op in ops:
            if op.expect is not None:
                current = self.data.get(op.key)
                if (current.mod_revision if current else 0) != op.expect:
                    return False, self.revision
        if lease and lease not in self._leases:
            raise ValueError("memory kv: requested lease not found")
        self.revision += 1
        self.txns += 1
        changes = []
        for op in ops:
            if isinstance(op, Put):
                old = self.data.get(op.key)
                created = old.create_revision if old else self.revision
                kv = KV(op.key, op.value, self.revision, created, lease)
                self.data[op.key] = kv
                if old is not None and old.lease and old.lease in self._leases:
                    self._leases[old.lease].keys.discard(op.key)
                if lease:
                    self._leases[lease].keys.add(op.key)
                changes.append(kv)
            elif isinstance(op, Delete) and op.key in self.data:
                del self.data[op.key]
                changes.append(KV(op.key, None, self.revision))
        self._deliver(changes)
        return True, self.revision

    async def watch(self, prefix: str, start_revision: int) -> AsyncIterator[list[KV]]:
        self._check()
        queue: asyncio.Queue[list[KV]] = asyncio.Queue()
        if start_revision <= self.revision:
            missed = [kv for kv in self.data.values() if kv.mod_revision >= start_revision]
            if missed:
                queue.put_nowait(sorted(missed, key=lambda kv: kv.mod_revision))
        entry = (prefix, queue)
        self._watchers.append(entry)
        try:
            while True:
                batch = await queue.get()
                if self.unavailable:
                    raise ConnectionError("memory kv: watch lost")
                yield [kv for kv in batch if kv.key.startswith(prefix)]
        finally:
            self._watchers.remove(entry)

    async def grant(self, ttl: int) -> int:
        self._check()
        lease = self._next_lease
        self._next_lease += 1
        self._leases[lease] = _Lease(ttl, _now() + ttl)
        return lease

    async def keepalive(self, lease: int) -> int:
        self._check()
        self._expire()
        entry = self._leases.get(lease)
        if entry is None:
            return 0
        entry.expires = _now() + entry.ttl
        return entry.ttl

    async def revoke(self, lease: int) -> None:
        self._check()
        self._drop_lease(lease)

    # ------------------------------------------------------------------ internals

    def _deliver(self, changes: list[KV]) -> None:
        if not changes:
            return
        for prefix, queue in self._watchers:
            mine = [kv for kv in changes if kv.key.startswith(prefix)]
            if mine:
                queue.put_nowait(mine)

    def _expire(self) -> None:
        now = _now()
        for lease in [n for n, entry in self._leases.items() if entry.expires <= now]:
            self._drop_lease(lease)

    def _drop_lease(self, lease: int) -> None:
        entry = self._leases.pop(lease, None)
        if entry is None:
            return
        gone = [k for k in entry.keys if k in self.data]
        if gone:
            self.revision += 1
            for k in gone:
                del self.data[k]
            self._deliver([KV(k, None, self.revision) for k in gone])

    def break_watches(self) -> None:
        """Every watch fails once (as when etcd restarts): the store must reload."""
        self.unavailable = True
        for _, queue in self._watchers:
            queue.put_nowait([])

    def heal(self) -> None:
        self.unavailable = False


def _now() -> float:
    return asyncio.get_running_loop().time()


LAG = 0.5  # seconds a `LaggingKV`'s watch deliveries come late


class LaggingKV:
    """A manager's view of a shared `MemoryKV` whose watch deliveries come `LAG` late;
    counts the revision requests."""

    def __init__(self, kv: MemoryKV) -> None:
        self.kv = kv
        self.status_calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.kv, name)

    async def status(self) -> int:
        self.status_calls += 1
        revision = await self.kv.status()  # as etcd was when the request reached it
        await asyncio.sleep(0.01)  # the way back
        return revision

    async def watch(self, prefix: str, start_revision: int) -> AsyncIterator[list[KV]]:
        async for batch in self.kv.watch(prefix, start_revision):
            await asyncio.sleep(LAG)
            yield batch
