"""Knowing that the leader is dead before its lease says so.

The leader key's lease (2 s) outlives a dead leader by its TTL, and by one more etcd election
timeout when the dead host held etcd's leader too (a new etcd leader extends every lease).
A candidate (`Election.campaign`) asks a `DeadLeader` judge every 0.25 s; it answers yes —
and the candidate revokes the lease — only when both hold:

* the leader's cluster port (2377) refused or did not accept a TCP connection within
  `PROBE_TIMEOUT`, `FAILURES` times in a row. The kernel accepts connections on a listening
  socket even while its process is busy, so a slow leader answers; only a dead shoald (or an
  unreachable host) does not;
* the leader's etcd member is not etcd's raft leader, as this manager's member sees it (its
  own answer, no quorum needed), and there is one (else a revoke cannot go through anyway).

A term is judged only after `GRACE` seconds (a new leader opens its port just after it
won). Wrongly revoking a live leader's lease costs one more election, nothing else: its
writes are fenced by the term (`store/election.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from shoal.api.models import Node
from shoal.store.kv import KV

PROBE_TIMEOUT = 0.3  # seconds a connection to the leader's cluster port may take
FAILURES = 2  # probes in a row that must fail
GRACE = 2.0  # seconds a term is known before its leader is judged


@runtime_checkable
class RaftLeader(Protocol):
    """Who leads the etcd cluster, as this manager's member sees it (`Etcd.leader`)."""

    async def leader(self) -> str | None: ...


@dataclass
class Suspicion:
    """The probes of one term's leader (pure): when the term was first seen, how many probes
    in a row failed."""

    term: int = 0  # the leader key's create revision
    since: float = 0.0
    failures: int = 0

    def probed(self, term: int, now: float, answered: bool) -> None:
        if term != self.term:
            self.term, self.since, self.failures = term, now, 0
        self.failures = 0 if answered else self.failures + 1

    def suspect(self, term: int, now: float) -> bool:
        """Whether the leader of `term` failed enough probes to ask etcd about it."""
        return term == self.term and self.failures >= FAILURES and now - self.since >= GRACE


def dead(suspected: bool, holder: str, etcd_leader: str | None) -> bool:
    """The verdict (pure): its port does not answer, and its etcd member does not lead."""
    return suspected and etcd_leader is not None and etcd_leader != holder


class DeadLeader:
    """The judge a candidate asks (`Election(judge=…)`), on the manager's own view: the
    leader's address from its node object, etcd's leader from this manager's member."""

    def __init__(
        self,
        nodes: Callable[[], Iterable[Node]],
        raft: RaftLeader | None,
        clock: Callable[[], float],
        probe: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self._nodes = nodes
        self._raft = raft
        self._clock = clock
        self._probe = probe or answers
        self._suspicion = Suspicion()

    async def __call__(self, holder: KV) -> bool:
        if self._raft is None or not holder.lease or not holder.value:
            return False
        node_id = holder.value.decode()
        addr = _addr_of(self._nodes(), node_id)
        if addr is None:
            return False
        answered = await self._probe(addr)
        now = self._clock()
        self._suspicion.probed(holder.create_revision, now, answered)
        if not self._suspicion.suspect(holder.create_revision, now):
            return False
        return dead(True, node_id, await self._raft.leader())


def _addr_of(nodes: Iterable[Node], node_id: str) -> str | None:
    for n in nodes:
        if n.id == node_id and n.manager_status is not None:
            return n.manager_status.addr
    return None


async def answers(addr: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether `host:port` accepts a TCP connection within `timeout` (closed at once)."""
    host, _, port = addr.rpartition(":")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout)
    except (OSError, TimeoutError, ValueError):
        return False
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return True
