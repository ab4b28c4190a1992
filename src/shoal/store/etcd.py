"""`KVBackend` on etcd: ranged loads, compare-and-swap transactions, watches, leases.

Only this module knows etcd's wire types; the rest of shoal sees keys, bytes and revisions.

A manager's embedded member answers on loopback without TLS. An external etcd cluster
(`shoald --etcd-endpoints`) is reached over TLS (its CA, and a client certificate when it
asks for one) at one of its endpoints: the first that answers; when the one in use stops
answering, the next (as etcd's own clients fail over between endpoints).
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aetcd
import grpc
from aetcd import rpc, utils

from shoal.store.kinds import WATCH_PREFIX
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
FAILOVER_AFTER = 2  # status checks failed in a row before the next endpoint is tried

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClientTLS:
    """The files an external etcd cluster's clients use (etcdctl's `--cacert`, `--cert`,
    `--key`); without a certificate and key, TLS with the server's certificate alone."""

    ca: Path
    cert: Path | None = None
    key: Path | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca.read_bytes(),
            private_key=self.key.read_bytes() if self.key else None,
            certificate_chain=self.cert.read_bytes() if self.cert else None,
        )


def endpoint_address(url: str) -> str:
    """`host:port` of an etcd endpoint given as etcd's clients take them (`https://h:2379`,
    `http://h:2379` or `h:2379`)."""
    _, _, rest = url.rpartition("://")
    host, sep, port = rest.rstrip("/").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"invalid etcd endpoint {url!r}: expected https://HOST:PORT")
    return f"{host}:{port}"


class _Client(aetcd.Client):  # type: ignore[misc]
    """aetcd's client on a channel opened here: plain, or TLS (aetcd itself opens plain
    channels only), and opened at once (no stub is missing once it exists)."""

    def __init__(self, host: str, port: int, timeout: float, tls: ClientTLS | None) -> None:
        super().__init__(host=host, port=port, timeout=timeout)
        target = f"{host}:{port}"
        if tls is None:
            self.channel = grpc.aio.insecure_channel(target)
        else:
            self.channel = grpc.aio.secure_channel(target, tls.credentials())
        self.kvstub = rpc.KVStub(self.channel)
        self.clusterstub = rpc.ClusterStub(self.channel)
        self.leasestub = rpc.LeaseStub(self.channel)
        self.maintenancestub = rpc.MaintenanceStub(self.channel)
        self._watcher = aetcd.watcher.Watcher(rpc.WatchStub(self.channel), timeout=timeout)
        self._connected.set()


class Etcd:
    def __init__(
        self, endpoints: str | Sequence[str], timeout: float = 10.0, tls: ClientTLS | None = None
    ) -> None:
        given = [endpoints] if isinstance(endpoints, str) else list(endpoints)
        if not given:
            raise ValueError("no etcd endpoint")
        self.endpoints = [endpoint_address(e) for e in given]
        self.tls = tls
        self._timeout = timeout
        self._index = 0
        self._failures = 0
        self._client: aetcd.Client | None = None

    @property
    def endpoint(self) -> str:
        """The endpoint in use."""
        return self.endpoints[self._index]

    def _new_client(self) -> aetcd.Client:
        host, _, port = self.endpoint.rpartition(":")
        return _Client(host, int(port), self._timeout, self.tls)

    @property
    def _c(self) -> aetcd.Client:
        """The client of the endpoint in use (opened on first use, in the event loop)."""
        if self._client is None:
            self._client = self._new_client()
        return self._client

    async def connect(self) -> None:
        self._c  # noqa: B018 - opens the channel

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def status(self) -> int:
        """The cluster's current revision (raises when etcd cannot answer). Checks that
        fail in a row move to the next endpoint, if there is one."""
        try:
            resp = await self._c.kvstub.Range(
                rpc.RangeRequest(key=b"\0", count_only=True), timeout=self._timeout
            )
        except BaseException:  # noqa: BLE001 - counted, then raised as it came
            self._failed()
            raise
        self._failures = 0
        return int(resp.header.revision)

    def _failed(self) -> None:
        self._failures += 1
        if len(self.endpoints) < 2 or self._failures < FAILOVER_AFTER:
            return
        old, failed = self._client, self.endpoint
        self._index = (self._index + 1) % len(self.endpoints)
        self._failures = 0
        self._client = None
        log.warning("etcd endpoint %s does not answer: trying %s", failed, self.endpoint)
        if old is not None:  # its watches end with it: the mirror loads again from the next
            asyncio.get_running_loop().create_task(old.close())

    async def load(self, prefix: str) -> tuple[int, list[KV]]:
        """Every key under `prefix`, read at one revision."""
        key = prefix.encode()
        req = rpc.RangeRequest(key=key, range_end=utils.prefix_range_end(key))
        resp = await self._c.kvstub.Range(req, timeout=self._timeout)
        return int(resp.header.revision), [_kv(kv) for kv in resp.kvs]

    async def get(self, key: str) -> KV | None:
        resp = await self._c.kvstub.Range(rpc.RangeRequest(key=key.encode()), timeout=self._timeout)
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
        resp = await self._c.kvstub.Txn(req, timeout=WRITE_TIMEOUT)
        return bool(resp.succeeded), int(resp.header.revision)

    async def watch(self, prefix: str, start_revision: int) -> AsyncIterator[list[KV]]:
        """Yield the changes under `prefix` from `start_revision` on, in batches: everything
        that has arrived by the time the consumer asks again comes as one list."""
        key = prefix.encode()
        watch = await self._c.watch(
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
        resp = await self._c.leasestub.LeaseGrant(
            rpc.LeaseGrantRequest(TTL=ttl), timeout=self._timeout
        )
        return int(resp.ID)

    async def keepalive(self, lease: int) -> int:
        """Refresh `lease`; returns its remaining TTL (0: it has expired)."""
        resp = await self._c.refresh_lease(lease)
        return int(resp.TTL)

    async def revoke(self, lease: int) -> None:
        await self._c.revoke_lease(lease)

    # ---------------------------------------------------------------- membership

    async def delete_all(self) -> None:
        """Every key of shoal's (the last manager of a swarm on an external cluster leaves
        it, with `--force`: the swarm is gone, as Docker's with its last manager)."""
        key = WATCH_PREFIX.encode()
        await self._c.kvstub.DeleteRange(
            rpc.DeleteRangeRequest(key=key, range_end=utils.prefix_range_end(key)),
            timeout=WRITE_TIMEOUT,
        )

    async def members(self) -> list[Member]:
        resp = await self._c.clusterstub.MemberList(rpc.MemberListRequest(), timeout=self._timeout)
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
                await self._c.clusterstub.MemberAdd(
                    rpc.MemberAddRequest(peerURLs=[peer_url], isLearner=True),
                    timeout=self._timeout,
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
                await self._c.clusterstub.MemberPromote(
                    rpc.MemberPromoteRequest(ID=m.id), timeout=self._timeout
                )
                promoted.append(m.name)
            except Exception as e:  # noqa: BLE001 - not caught up yet: the next round
                if "not in sync" not in str(e) and "not ready" not in str(e):
                    raise
        return promoted

    async def member_id(self) -> int:
        resp = await self._c.maintenancestub.Status(rpc.StatusRequest(), timeout=self._timeout)
        return int(resp.header.member_id)

    async def leader(self) -> str | None:
        """The name of the member this member follows as raft leader (None: it knows of
        none). Answered by this member alone, also without a quorum."""
        status = await self._c.maintenancestub.Status(rpc.StatusRequest(), timeout=self._timeout)
        lead = int(status.leader)
        if not lead:
            return None
        return next((m.name for m in await self.members() if m.id == lead), None)

    async def remove_member(self, member_id: int) -> None:
        await self._c.clusterstub.MemberRemove(
            rpc.MemberRemoveRequest(ID=member_id), timeout=self._timeout
        )

    async def snapshot(self) -> bytes:
        """The whole database as etcd's `Maintenance.Snapshot` streams it (what `etcdctl
        snapshot restore` takes)."""
        buf = io.BytesIO()
        await self._c.snapshot(buf)
        return buf.getvalue()

    async def hand_over(self) -> None:
        """If this member leads the etcd cluster, make another voting member the leader
        (before this one is removed: no election to wait for)."""
        status = await self._c.maintenancestub.Status(rpc.StatusRequest(), timeout=self._timeout)
        own = int(status.header.member_id)
        if int(status.leader) != own:
            return
        others = [m for m in await self.members() if m.id != own and not m.learner and m.name]
        if others:
            await self._c.maintenancestub.MoveLeader(
                rpc.MoveLeaderRequest(targetID=others[0].id), timeout=self._timeout
            )

    async def update_peer_url(self, peer_url: str) -> None:
        """This member's advertised peer URL (a swarm made before managers could join
        advertised loopback)."""
        own = await self.member_id()
        mine = next((m for m in await self.members() if m.id == own), None)
        if mine is not None and mine.peer_url != peer_url:
            await self._c.clusterstub.MemberUpdate(
                rpc.MemberUpdateRequest(ID=own, peerURLs=[peer_url]),
                timeout=self._timeout,
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
