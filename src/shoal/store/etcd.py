"""`KVBackend` on etcd: ranged loads, compare-and-swap transactions, watches, leases.

Only this module knows etcd's wire types; the rest of shoal sees keys, bytes and revisions.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import aetcd
from aetcd import rpc, utils

from shoal.store.kv import KV, Guard, Op, Put


class MemberExists(Exception):
    """A member with that peer URL is in the cluster already, under another name: a manager
    whose host came back without its state (its data wiped) and joins again."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


ADD_WAIT = 30.0  # seconds a member add waits for the member added before it
# Seconds a write may take. A write sent just as etcd's leader died waits for etcd's own
# request timeout (7 s) before it fails, although a new leader takes writes after about one:
# such a write fails sooner (its outcome unknown, as any write cut off) and the next goes
# through.
WRITE_TIMEOUT = 2.5


class Etcd:
    def __init__(self, endpoint: str, timeout: float = 10.0) -> None:
        host, _, port = endpoint.rpartition(":")
        self._client = aetcd.Client(host=host, port=int(port), timeout=timeout)
        self.endpoint = endpoint

    @property
    def client(self) -> aetcd.Client:
        return self._client

    async def connect(self) -> None:
        await self._client.connect()

    async def close(self) -> None:
        await self._client.close()

    async def status(self) -> int:
        """The cluster's current revision (raises when etcd cannot answer)."""
        resp = await self._client.kvstub.Range(
            rpc.RangeRequest(key=b"\0", count_only=True), timeout=self._client._timeout
        )
        return int(resp.header.revision)

    async def load(self, prefix: str) -> tuple[int, list[KV]]:
        """Every key under `prefix`, read at one revision."""
        key = prefix.encode()
        req = rpc.RangeRequest(key=key, range_end=utils.prefix_range_end(key))
        resp = await self._client.kvstub.Range(req, timeout=self._client._timeout)
        return int(resp.header.revision), [_kv(kv) for kv in resp.kvs]

    async def get(self, key: str) -> KV | None:
        resp = await self._client.kvstub.Range(
            rpc.RangeRequest(key=key.encode()), timeout=self._client._timeout
        )
        if not resp.kvs:
            return None
        return _kv(resp.kvs[0])

    async def txn(
        self, ops: Sequence[Op], lease: int = 0, guards: Sequence[Guard] = ()
    ) -> tuple[bool, int]:
        """Apply `ops` atomically if every expectation and guard holds.
        Returns (succeeded, revision)."""
        compare = []
        for g in guards:
            c = rpc.Compare(key=g.key.encode(), target=rpc.Compare.CREATE, result=rpc.Compare.EQUAL)
            c.create_revision = g.create_revision
            compare.append(c)
        success = []
        for op in ops:
            key = op.key.encode()
            if op.expect is not None:
                c = rpc.Compare(key=key, target=rpc.Compare.MOD, result=rpc.Compare.EQUAL)
                c.mod_revision = op.expect
                compare.append(c)
            if isinstance(op, Put):
                success.append(
                    rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=op.value, lease=lease))
                )
            else:
                success.append(rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=key)))
        req = rpc.TxnRequest(compare=compare, success=success, failure=[])
        resp = await self._client.kvstub.Txn(req, timeout=WRITE_TIMEOUT)
        return bool(resp.succeeded), int(resp.header.revision)

    async def watch(self, prefix: str, start_revision: int) -> AsyncIterator[list[KV]]:
        """Yield the changes under `prefix` from `start_revision` on, in batches: everything
        that has arrived by the time the consumer asks again comes as one list."""
        key = prefix.encode()
        watch = await self._client.watch(
            key, range_end=utils.prefix_range_end(key), start_revision=start_revision
        )
        queue: asyncio.Queue[KV | BaseException] = asyncio.Queue()

        async def pump() -> None:
            try:
                async for ev in watch:
                    queue.put_nowait(_kv(ev.kv, deleted=ev.kind == "DELETE"))
                queue.put_nowait(ConnectionError("etcd watch ended"))
            except BaseException as e:  # noqa: BLE001 - handed to the consumer
                queue.put_nowait(e)

        pumper = asyncio.create_task(pump())
        try:
            while True:
                batch = [await queue.get()]
                while not queue.empty():
                    batch.append(queue.get_nowait())
                errors = [x for x in batch if isinstance(x, BaseException)]
                changes = [x for x in batch if isinstance(x, KV)]
                if changes:
                    yield changes
                if errors:
                    raise errors[0]
        finally:
            pumper.cancel()
            try:
                await asyncio.wait_for(asyncio.shield(watch.cancel()), 2)
            except Exception:  # noqa: BLE001 - the connection may be gone already
                pass

    # Leases, for leader election.
    async def grant(self, ttl: int) -> int:
        resp = await self._client.leasestub.LeaseGrant(
            rpc.LeaseGrantRequest(TTL=ttl), timeout=self._client._timeout
        )
        return int(resp.ID)

    async def keepalive(self, lease: int) -> int:
        """Refresh `lease`; returns its remaining TTL (0: it has expired)."""
        resp = await self._client.refresh_lease(lease)
        return int(resp.TTL)

    async def revoke(self, lease: int) -> None:
        await self._client.revoke_lease(lease)

    # ---------------------------------------------------------------- membership

    async def members(self) -> list[Member]:
        resp = await self._client.clusterstub.MemberList(
            rpc.MemberListRequest(), timeout=self._client._timeout
        )
        return [_member(m) for m in resp.members]

    async def add_learner(self, name: str, peer_url: str) -> dict[str, str]:
        """Add a member that will start as `name` at `peer_url`, as a learner (it votes once
        promoted). Returns the `--initial-cluster` it starts with: name → peer URL of every
        member (a member added before but never started has no name: it is left out)."""
        existing = {m.peer_url: m for m in await self.members()}
        old = existing.get(peer_url)
        if old is not None and old.name and old.name != name:
            raise MemberExists(old.name)
        deadline = asyncio.get_running_loop().time() + ADD_WAIT
        while peer_url not in existing:
            try:
                await self._client.clusterstub.MemberAdd(
                    rpc.MemberAddRequest(peerURLs=[peer_url], isLearner=True),
                    timeout=self._client._timeout,
                )
                break
            except Exception as e:
                # One learner at a time, and none while the cluster is not healthy (a member
                # that joined just before is still catching up): wait for it.
                busy = "unhealthy cluster" in str(e) or "too many learner" in str(e)
                if not busy or asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.5)
        cluster = {m.name: m.peer_url for m in await self.members() if m.name}
        cluster[name] = peer_url
        return cluster

    async def promote_learners(self) -> list[str]:
        """Make every started learner that caught up a voting member (etcd refuses the
        others: "not in sync"). The names of those promoted."""
        promoted = []
        for m in await self.members():
            if not (m.learner and m.name):
                continue
            try:
                await self._client.clusterstub.MemberPromote(
                    rpc.MemberPromoteRequest(ID=m.id), timeout=self._client._timeout
                )
                promoted.append(m.name)
            except Exception as e:  # noqa: BLE001 - not caught up yet: the next round
                if "not in sync" not in str(e) and "not ready" not in str(e):
                    raise
        return promoted

    async def member_id(self) -> int:
        resp = await self._client.maintenancestub.Status(
            rpc.StatusRequest(), timeout=self._client._timeout
        )
        return int(resp.header.member_id)

    async def leader(self) -> str | None:
        """The name of the member this member follows as raft leader (None: it knows of
        none). Answered by this member alone, also without a quorum."""
        status = await self._client.maintenancestub.Status(
            rpc.StatusRequest(), timeout=self._client._timeout
        )
        lead = int(status.leader)
        if not lead:
            return None
        return next((m.name for m in await self.members() if m.id == lead), None)

    async def remove_member(self, member_id: int) -> None:
        await self._client.clusterstub.MemberRemove(
            rpc.MemberRemoveRequest(ID=member_id), timeout=self._client._timeout
        )

    async def snapshot(self) -> bytes:
        """The whole database as etcd's `Maintenance.Snapshot` streams it (what `etcdctl
        snapshot restore` takes)."""
        buf = io.BytesIO()
        await self._client.snapshot(buf)
        return buf.getvalue()

    async def hand_over(self) -> None:
        """If this member leads the etcd cluster, make another voting member the leader
        (before this one is removed: no election to wait for)."""
        status = await self._client.maintenancestub.Status(
            rpc.StatusRequest(), timeout=self._client._timeout
        )
        own = int(status.header.member_id)
        if int(status.leader) != own:
            return
        others = [m for m in await self.members() if m.id != own and not m.learner and m.name]
        if others:
            await self._client.maintenancestub.MoveLeader(
                rpc.MoveLeaderRequest(targetID=others[0].id), timeout=self._client._timeout
            )

    async def update_peer_url(self, peer_url: str) -> None:
        """This member's advertised peer URL (a swarm made before managers could join
        advertised loopback)."""
        own = await self.member_id()
        mine = next((m for m in await self.members() if m.id == own), None)
        if mine is not None and mine.peer_url != peer_url:
            await self._client.clusterstub.MemberUpdate(
                rpc.MemberUpdateRequest(ID=own, peerURLs=[peer_url]),
                timeout=self._client._timeout,
            )


@dataclass(frozen=True)
class Member:
    id: int
    name: str
    peer_url: str
    learner: bool


def _member(m: Any) -> Member:
    return Member(int(m.ID), m.name, m.peerURLs[0] if m.peerURLs else "", bool(m.isLearner))


def _kv(kv: rpc.KeyValue, deleted: bool = False) -> KV:
    value = None if deleted else kv.value
    return KV(kv.key.decode(), value, kv.mod_revision, kv.create_revision, kv.lease)
