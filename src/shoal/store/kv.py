"""What the cluster store needs of a key-value backend: etcd's model, reduced to its core.

Keys are strings, values bytes; every change gets the next cluster-wide revision; a
transaction applies its writes only if every expectation holds (compare-and-swap on a key's
`mod_revision`, and guards on another key's `create_revision`: the leader's fence). Watches
deliver the changes under a prefix from a revision on, in order. Leases expire keys.

`shoal.store.etcd.Etcd` implements it on a real etcd; `shoal.testing.MemoryKV` in memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

# etcd's default --max-txn-ops.
MAX_TXN_OPS = 128


@dataclass(frozen=True, slots=True)
class KV:
    key: str
    value: bytes | None  # None: deleted
    mod_revision: int
    create_revision: int = 0
    lease: int = 0  # the lease the key lives under (0: none)


@dataclass(frozen=True, slots=True)
class Put:
    key: str
    value: bytes
    # None: unconditional; 0: the key must not exist; N: the key's mod_revision must be N.
    expect: int | None = None


@dataclass(frozen=True, slots=True)
class Delete:
    key: str
    expect: int | None = None


Op = Put | Delete


@dataclass(frozen=True, slots=True)
class Guard:
    """A transaction's precondition on another key: it exists and was created at
    `create_revision` (the leader key of one term of leadership)."""

    key: str
    create_revision: int


class KVBackend(Protocol):
    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def status(self) -> int:
        """The current revision (raises when the backend cannot answer)."""
        ...

    async def load(self, prefix: str) -> tuple[int, list[KV]]:
        """Every key under `prefix`, read at one revision."""
        ...

    async def get(self, key: str) -> KV | None: ...

    async def txn(
        self, ops: Sequence[Op], lease: int = 0, guards: Sequence[Guard] = ()
    ) -> tuple[bool, int]:
        """Apply `ops` atomically if every expectation and guard holds.
        Returns (succeeded, revision)."""
        ...

    def watch(self, prefix: str, start_revision: int) -> AsyncIterator[list[KV]]:
        """The changes under `prefix` from `start_revision` on, in batches."""
        ...

    async def grant(self, ttl: int) -> int: ...

    async def keepalive(self, lease: int) -> int:
        """Refresh `lease`; returns its remaining TTL (0: it has expired)."""
        ...

    async def revoke(self, lease: int) -> None: ...
