"""`Store` over a key-value backend: a mirror loaded at one revision and kept current by one
prefix watch from the next (the informer pattern), and compare-and-swap writes.

Writers wait until the mirror has seen their own write; `barrier()` waits until it has seen
every write committed anywhere before the call (the API's reads are linearizable). A watch
failure reloads the mirror and sends the differences as events, so subscribers never miss a
change.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from shoal.api.errors import Conflict, Deposed, NameTaken, NoLeader
from shoal.api.models import (
    Attachment,
    Config,
    Meta,
    Network,
    Node,
    Secret,
    Service,
    Swarm,
    Task,
    timestamp,
)
from shoal.store.kinds import (
    KINDS,
    PREFIX,
    SENSITIVE,
    WATCH_PREFIX,
    decode,
    encode,
    key_of,
    kind_of,
    name_key,
)
from shoal.store.kv import KV, MAX_TXN_OPS, Delete, Guard, KVBackend, Op, Put
from shoal.store.seal import Sealer
from shoal.store.store import Change, Event, Events

log = logging.getLogger(__name__)

T = TypeVar("T", bound=Meta)

QUORUM_PERIOD = 0.5  # seconds between quorum checks
QUORUM_RECHECK = 0.1  # seconds between them while there is no quorum (or a request failed)
QUORUM_TIMEOUT = 1.0  # seconds a quorum check may take
BARRIER_TIMEOUT = 2.5  # seconds a read barrier may take (as a write: etcd.WRITE_TIMEOUT)


class MirroredStore:
    """One per manager process. `run()` keeps the mirror; the rest is `Store`."""

    def __init__(
        self, kv: KVBackend, sealer: Sealer, clock: Callable[[], float] = time.time
    ) -> None:
        self.kv = kv
        self.clock = clock
        self.synced = asyncio.Event()
        self._sealer = sealer
        self.quorate = True  # the backend answers reads only a quorum answers (`watch_quorum`)
        self._guards: tuple[Guard, ...] = ()
        self._mirror = _Mirror()
        self._barriers = _Barriers()  # shared with the fenced copies, as the mirror

    @property
    def revision(self) -> int:
        return self._mirror.revision

    # ------------------------------------------------------------------ reads

    def get(self, cls: type[T], id: str) -> T | None:
        return self._mirror.objects[kind_of(cls)].get(id)

    def swarm(self) -> Swarm | None:
        return next(iter(self._mirror.objects["swarm"].values()), None)

    def nodes(self) -> Iterable[Node]:
        return self._mirror.objects["nodes"].values()

    def services(self) -> Iterable[Service]:
        return self._mirror.objects["services"].values()

    def tasks(self) -> Iterable[Task]:
        return self._mirror.objects["tasks"].values()

    def networks(self) -> Iterable[Network]:
        return self._mirror.objects["networks"].values()

    def attachments(self) -> Iterable[Attachment]:
        return self._mirror.objects["attachments"].values()

    def secrets(self) -> Iterable[Secret]:
        return self._mirror.objects["secrets"].values()

    def configs(self) -> Iterable[Config]:
        return self._mirror.objects["configs"].values()

    def tasks_of(self, service_id: str) -> Iterable[Task]:
        return self._mirror.tasks_by_service.get(service_id, {}).values()

    def tasks_on(self, node_id: str) -> Iterable[Task]:
        return self._mirror.tasks_by_node.get(node_id, {}).values()

    def sensitive(self, name: str) -> bytes | None:
        key = PREFIX + SENSITIVE + name
        sealed = self._mirror.values.get(key)
        return None if sealed is None else self._sealer.open(sealed, key)

    async def barrier(self, timeout: float = BARRIER_TIMEOUT) -> None:
        """Wait until the mirror has every write committed (by any manager) before this call:
        ask the backend for its revision (a linearizable read, which only a quorum answers)
        and wait for the mirror to reach it. Concurrent callers share one request: a caller
        joins the next request sent after it arrived (never one already in flight, which
        could have been answered before a write the caller already saw acknowledged). Raises
        NoLeader when the backend does not answer in `timeout`."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        revision = await asyncio.shield(self._next_barrier())
                        break
                    except Exception:  # noqa: BLE001 - etcd's leader changed under it: again
                        await asyncio.sleep(QUORUM_RECHECK)
                await self._mirror.wait_for(revision, timeout)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - no answer, or the mirror is not following
            raise NoLeader() from e

    def _next_barrier(self) -> asyncio.Future[int]:
        """The answer of the next revision request (sent now unless one is in flight)."""
        b = self._barriers
        if b.next is None:
            b.next = asyncio.get_running_loop().create_future()
        wanted = b.next
        if not b.sent:
            self._send_barrier()
        return wanted

    def _send_barrier(self) -> None:
        b = self._barriers
        answer, b.next = b.next, None
        assert answer is not None
        b.sent = True

        async def ask() -> None:
            try:
                answer.set_result(await self.kv.status())
            except Exception as e:  # noqa: BLE001 - handed to every waiter
                answer.set_exception(e)
                answer.exception()  # retrieved: no "never retrieved" warning without waiters
            finally:
                b.sent = False
                if b.next is not None:
                    self._send_barrier()

        asyncio.get_running_loop().create_task(ask())

    # ------------------------------------------------------------------ events

    def subscribe(self) -> Events:
        q: Events = asyncio.Queue()
        self._mirror.subscribers.add(q)
        return q

    def unsubscribe(self, events: Events) -> None:
        self._mirror.subscribers.discard(events)

    # ------------------------------------------------------------------ mirror upkeep

    async def run(self) -> None:
        """Load and follow the backend until cancelled, reloading after any watch failure."""
        while True:
            try:
                revision, kvs = await self.kv.load(PREFIX)
                self._mirror.reset(revision, kvs, self._decode)
                self.synced.set()
                # Every key of shoal's (leader, session claims too), so that the mirror's
                # revision follows etcd's: `barrier` waits for the revision etcd names.
                async for changes in self.kv.watch(WATCH_PREFIX, revision + 1):
                    self._mirror.apply(changes, self._decode)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - backend away: retry
                log.warning("store watch interrupted: %s", e)
                self.synced.clear()  # reads would be stale: refused until reloaded
                await asyncio.sleep(0.5)

    async def watch_quorum(self) -> None:
        """Ask the backend for its revision (a read only a quorum of etcd members answers)
        twice a second: while it cannot answer within a second, `quorate` is false and the
        API answers Docker's quorum-loss error rather than what the mirror last saw. A
        request refused at once (etcd's `leader changed` as a new leader is elected) is sent
        again within that second, and without a quorum the check runs every 0.1 s, so that
        calls are taken again as soon as etcd answers."""
        while True:
            ok = await self._quorum_answers()
            if ok != self.quorate:
                log.warning("the cluster store %s", "has a quorum again" if ok else
                            "has no quorum: control calls are refused")  # fmt: skip
                self.quorate = ok
            await asyncio.sleep(QUORUM_PERIOD if ok else QUORUM_RECHECK)

    async def _quorum_answers(self) -> bool:
        try:
            async with asyncio.timeout(QUORUM_TIMEOUT):
                while True:
                    try:
                        await self.kv.status()
                        return True
                    except Exception:  # noqa: BLE001 - refused at once: ask again
                        await asyncio.sleep(QUORUM_RECHECK)
        except TimeoutError:
            return False

    def _decode(self, kind: str, id: str, kv: KV) -> Meta:
        assert kv.value is not None
        return decode(kind, id, kv.value, kv.mod_revision, self._sealer)

    # ------------------------------------------------------------------ writes

    def fenced(self, guard: Guard) -> MirroredStore:
        fenced = copy.copy(self)  # the same mirror and backend
        fenced._guards = (*self._guards, guard)
        return fenced

    async def _commit(self, ops: Sequence[Op]) -> int:
        """Apply `ops` in one transaction and wait until the mirror has them. Raises Conflict
        when an expectation failed, Deposed when a guard did."""
        if not ops:
            return self.revision
        try:
            ok, revision = await self.kv.txn(ops, guards=self._guards)
        except Exception as e:  # noqa: BLE001 - grpc errors: etcd unreachable or no quorum
            log.warning("store write failed: %s", e)
            raise NoLeader() from e
        if not ok:
            await self._check_guards()
            raise Conflict("update out of sequence")
        await self._mirror.wait_for(revision)
        return revision

    async def _check_guards(self) -> None:
        for g in self._guards:
            kv = await self.kv.get(g.key)
            if kv is None or kv.create_revision != g.create_revision:
                raise Deposed("this manager is no longer the leader: write refused")

    async def _commit_chunks(self, ops: Sequence[Op]) -> list[Op]:
        """Commit in transactions of at most etcd's op limit (which counts the comparisons
        too: a fenced write's guard takes one); returns the ops of those that conflicted."""
        failed: list[Op] = []
        size = MAX_TXN_OPS - len(self._guards)
        for i in range(0, len(ops), size):
            chunk = ops[i : i + size]
            try:
                await self._commit(chunk)
            except Conflict:
                failed.extend(chunk)
        return failed

    async def _commit_each(self, ops: Sequence[Op]) -> None:
        """Like `_commit_chunks`, a conflicting transaction retried op by op so that one stale
        object does not hold back the rest."""
        for op in await self._commit_chunks(ops):
            try:
                await self._commit([op])
            except Conflict:
                log.debug("skipped stale write to %s", op.key)

    def _put(self, obj: Meta, expect: int | None) -> Put:
        return Put(key_of(kind_of(type(obj)), obj.id), encode(obj, self._sealer), expect)

    async def create(self, obj: T) -> T:
        stamp = timestamp(self.clock())
        obj.created_at = obj.created_at or stamp
        obj.updated_at = stamp
        ops: list[Op] = [self._put(obj, expect=0)]
        named = name_key(obj)
        if named is not None:
            ops.append(Put(named, obj.id.encode(), expect=0))
        try:
            await self._commit(ops)
        except Conflict:
            if named is None or not await self._name_taken(named, obj):
                raise
            await self._commit(ops)  # the name's holder was gone: its key is cleared now
        return self._stored(obj)

    async def _name_taken(self, named: str, obj: Meta) -> bool:
        """After a refused create: whether another object holds the name (NameTaken), or
        the key outlived its object (cleared: False)."""
        held = await self.kv.get(named)
        if held is None or held.value is None or held.value.decode() == obj.id:
            return False
        holder = held.value.decode()
        if await self.kv.get(key_of(kind_of(type(obj)), holder)) is not None:
            raise NameTaken(f"the name is held by {holder}")
        await self.kv.txn([Delete(named, expect=held.mod_revision)])
        return True

    async def update(self, obj: T) -> T:
        obj.updated_at = timestamp(self.clock())
        await self._commit([self._put(obj, expect=obj.version.index)])
        return self._stored(obj)

    def _stored(self, obj: T) -> T:
        stored = self.get(type(obj), obj.id)
        assert stored is not None
        return stored

    async def delete(self, obj: Meta) -> None:
        await self._commit(_delete(obj))

    async def create_all(self, objs: Sequence[Meta]) -> None:
        stamp = timestamp(self.clock())
        for obj in objs:
            obj.created_at = obj.created_at or stamp
            obj.updated_at = stamp
        await self._commit_each([self._put(obj, expect=0) for obj in objs])

    async def delete_all(self, objs: Sequence[Meta]) -> None:
        await self._commit_each([op for obj in objs for op in _delete(obj)])

    async def put_sensitive(self, name: str, data: bytes) -> None:
        key = PREFIX + SENSITIVE + name
        await self._commit([Put(key, self._sealer.seal(data, key))])

    async def modify(
        self, cls: type[T], changes: Mapping[str, Change[T]], attempts: int = 5
    ) -> None:
        kind = kind_of(cls)
        pending = dict(changes)
        for _ in range(attempts):
            ops: list[Op] = []
            stamp = timestamp(self.clock())
            for id, fn in pending.items():
                current = self.get(cls, id)
                if current is None:
                    continue
                fresh = current.model_copy(deep=True)
                if fn(fresh):
                    fresh.updated_at = stamp
                    ops.append(self._put(fresh, expect=current.version.index))
            if not ops:
                return
            conflicted = await self._commit_chunks(ops)
            if not conflicted:
                return
            pending = {id: pending[id] for id in (op.key.rsplit("/", 1)[1] for op in conflicted)}
            # Give the mirror the chance to catch up with whatever beat us.
            await asyncio.sleep(0.01)
        log.warning("gave up writing %d %s after conflicts", len(pending), kind)


def _delete(obj: Meta) -> list[Op]:
    """The object's key, at its version, and the key holding its name, if any."""
    ops: list[Op] = [Delete(key_of(kind_of(type(obj)), obj.id), expect=obj.version.index)]
    named = name_key(obj)
    if named is not None:
        ops.append(Delete(named))
    return ops


Decoder = Callable[[str, str, KV], Meta]


class _Barriers:
    """The read barriers' state: the waiters for the next revision request, and whether one
    is in flight."""

    def __init__(self) -> None:
        self.next: asyncio.Future[int] | None = None
        self.sent = False


class _Mirror:
    """The objects by kind and ID, tasks indexed by service and node, the revision they are
    at, and the subscribers to their changes."""

    def __init__(self) -> None:
        self.revision = 0
        self.objects: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
        self.values: dict[str, bytes] = {}  # keys that are not objects (sealed values)
        self.tasks_by_service: dict[str, dict[str, Task]] = defaultdict(dict)
        self.tasks_by_node: dict[str, dict[str, Task]] = defaultdict(dict)
        self.subscribers: set[Events] = set()
        # Writers and barriers waiting for a revision: woken before the subscribers hear of
        # the change, so that a call answers before the leader's loops act on it.
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def reset(self, revision: int, kvs: list[KV], decode: Decoder) -> None:
        old = {kind: dict(objs) for kind, objs in self.objects.items()}
        for objs in self.objects.values():
            objs.clear()
        self.values.clear()
        self.tasks_by_service.clear()
        self.tasks_by_node.clear()
        for kv in kvs:
            self._put(kv, decode)
        self.revision = max(self.revision, revision)
        events = []
        for kind, objs in self.objects.items():
            for id, obj in objs.items():
                before = old[kind].get(id)
                if before is None or before.version.index != obj.version.index:
                    events.append(Event(kind, id, before, obj))
            for id, before in old[kind].items():
                if id not in objs:
                    events.append(Event(kind, id, before, None))
        self._notify()
        self._publish(events)

    def apply(self, changes: list[KV], decode: Decoder) -> None:
        events = []
        for kv in changes:
            ev = self._put(kv, decode)
            if ev is not None:
                events.append(ev)
            self.revision = max(self.revision, kv.mod_revision)
        self._notify()
        self._publish(events)

    def _put(self, kv: KV, decode: Decoder) -> Event | None:
        if not kv.key.startswith(PREFIX):
            return None  # a key outside the state (the leader's, a session claim)
        kind, _, id = kv.key[len(PREFIX) :].partition("/")
        if kind not in self.objects:
            if kv.value is None:
                self.values.pop(kv.key, None)
            else:
                self.values[kv.key] = kv.value
            return None
        objs = self.objects[kind]
        old = objs.get(id)
        if kv.value is None:
            if old is None:
                return None
            del objs[id]
            self._index(kind, old, None)
            return Event(kind, id, old, None)
        new = decode(kind, id, kv)
        objs[id] = new
        self._index(kind, old, new)
        return Event(kind, id, old, new)

    def _index(self, kind: str, old: Any, new: Any) -> None:
        if kind != "tasks":
            return
        if old is not None:
            self.tasks_by_service[old.service_id].pop(old.id, None)
            if old.node_id:
                self.tasks_by_node[old.node_id].pop(old.id, None)
        if new is not None:
            self.tasks_by_service[new.service_id][new.id] = new
            if new.node_id:
                self.tasks_by_node[new.node_id][new.id] = new

    def _publish(self, events: list[Event]) -> None:
        if events:
            for q in self.subscribers:
                q.put_nowait(events)

    def _notify(self) -> None:
        waiting = []
        for revision, fut in self._waiters:
            if revision <= self.revision:
                if not fut.done():
                    fut.set_result(None)
            else:
                waiting.append((revision, fut))
        self._waiters = waiting

    async def wait_for(self, revision: int, timeout: float = 10.0) -> None:
        """Until the mirror has caught up with `revision`."""
        if self.revision >= revision:
            return
        fut = asyncio.get_running_loop().create_future()
        entry = (revision, fut)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                await fut
        finally:
            if not fut.done():
                fut.cancel()
                self._waiters = [w for w in self._waiters if w is not entry]
