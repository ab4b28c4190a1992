"""The cluster store: etcd as the source of truth, an in-memory mirror for every read.

Keys are `/shoal/<kind>/<id>` → the object's Docker JSON. The mirror is loaded at one revision
and kept current by a single prefix watch from the next one (the informer pattern). Every
object's `Version.Index` is its etcd `mod_revision`; updates are compare-and-swap on it.

Writers wait until the mirror has seen their own write, so a read that follows a write on the
same manager always sees it. Components subscribe to batches of `Event`s: one batch per watch
delivery, which is the unit they `tick()` on.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from shoal.api.errors import Conflict, NotFound, Unavailable
from shoal.api.models import KINDS, Meta, Model, Node, Service, Task, now
from shoal.store.etcd import KV, MAX_TXN_OPS, Delete, Etcd, Op, Put

log = logging.getLogger(__name__)

PREFIX = "/shoal/"
T = TypeVar("T", bound=Meta)


def key_of(kind: str, id: str) -> str:
    return f"{PREFIX}{kind}/{id}"


def kind_of(obj: Meta) -> str:
    for kind, cls in KINDS.items():
        if type(obj) is cls:
            return kind
    raise TypeError(type(obj))


@dataclass(frozen=True, slots=True)
class Event:
    kind: str
    id: str
    old: Any  # the object before, None on create
    new: Any  # the object after, None on delete


class Store:
    """Mirror of `/shoal/` plus the write path. One per manager process."""

    def __init__(self, etcd: Etcd) -> None:
        self.etcd = etcd
        self.revision = 0
        self._objects: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
        self._extra: dict[str, bytes] = {}  # keys that are not model objects (CA key, …)
        self.tasks_by_service: dict[str, dict[str, Task]] = defaultdict(dict)
        self.tasks_by_node: dict[str, dict[str, Task]] = defaultdict(dict)
        self._subscribers: set[asyncio.Queue[list[Event]]] = set()
        self._revision_changed = asyncio.Condition()
        self.synced = asyncio.Event()

    # ------------------------------------------------------------------ reads

    def get(self, kind: str, id: str) -> Any:
        return self._objects[kind].get(id)

    def objects(self, kind: str) -> Iterable[Any]:
        return self._objects[kind].values()

    def count(self, kind: str) -> int:
        return len(self._objects[kind])

    def extra(self, name: str) -> bytes | None:
        return self._extra.get(name)

    def services(self) -> Iterable[Service]:
        return self._objects["services"].values()

    def nodes(self) -> Iterable[Node]:
        return self._objects["nodes"].values()

    def tasks_of(self, service_id: str) -> Iterable[Task]:
        return self.tasks_by_service.get(service_id, {}).values()

    def tasks_on(self, node_id: str) -> Iterable[Task]:
        return self.tasks_by_node.get(node_id, {}).values()

    # ------------------------------------------------------------------ subscription

    def subscribe(self) -> asyncio.Queue[list[Event]]:
        """A queue of event batches from now on. Read the mirror for the snapshot first: the
        snapshot and the subscription are taken atomically (no await in between)."""
        q: asyncio.Queue[list[Event]] = asyncio.Queue()
        self._subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[list[Event]]) -> None:
        self._subscribers.discard(q)

    # ------------------------------------------------------------------ mirror upkeep

    async def run(self) -> None:
        """Load and follow etcd until cancelled, reloading after any watch failure."""
        while True:
            try:
                revision, kvs = await self.etcd.load(PREFIX)
                self._reset(revision, kvs)
                self.synced.set()
                async for changes in self.etcd.watch(PREFIX, revision + 1):
                    self._apply(changes)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - etcd away: retry
                log.warning("store watch interrupted: %s", e)
                await asyncio.sleep(0.5)

    def _reset(self, revision: int, kvs: list[KV]) -> None:
        old = {kind: dict(objs) for kind, objs in self._objects.items()}
        for objs in self._objects.values():
            objs.clear()
        self._extra.clear()
        self.tasks_by_service.clear()
        self.tasks_by_node.clear()
        for kv in kvs:
            self._put(kv)
        self.revision = max(self.revision, revision)
        events = []
        for kind, objs in self._objects.items():
            for id, obj in objs.items():
                before = old[kind].get(id)
                if before is None or before.version.index != obj.version.index:
                    events.append(Event(kind, id, before, obj))
            for id, before in old[kind].items():
                if id not in objs:
                    events.append(Event(kind, id, before, None))
        self._publish(events)
        self._notify()

    def _apply(self, changes: list[KV]) -> None:
        events = []
        for kv in changes:
            ev = self._put(kv)
            if ev is not None:
                events.append(ev)
            self.revision = max(self.revision, kv.mod_revision)
        self._publish(events)
        self._notify()

    def _put(self, kv: KV) -> Event | None:
        rest = kv.key[len(PREFIX) :]
        kind, _, id = rest.partition("/")
        if kind not in self._objects:
            if kv.value is None:
                self._extra.pop(rest, None)
            else:
                self._extra[rest] = kv.value
            return None
        objs = self._objects[kind]
        old = objs.get(id)
        if kv.value is None:
            if old is None:
                return None
            del objs[id]
            self._index(kind, old, None)
            return Event(kind, id, old, None)
        new = KINDS[kind].model_validate_json(kv.value)
        new.version.index = kv.mod_revision
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
            for q in self._subscribers:
                q.put_nowait(events)

    def _notify(self) -> None:
        async def wake() -> None:
            async with self._revision_changed:
                self._revision_changed.notify_all()

        asyncio.get_running_loop().create_task(wake())

    async def wait_for(self, revision: int, timeout: float = 10.0) -> None:
        """Until the mirror has caught up with `revision`."""

        async def caught_up() -> None:
            async with self._revision_changed:
                await self._revision_changed.wait_for(lambda: self.revision >= revision)

        if self.revision < revision:
            await asyncio.wait_for(caught_up(), timeout)

    # ------------------------------------------------------------------ writes

    async def commit(self, ops: Sequence[Op]) -> int:
        """Apply `ops` in one transaction (CAS where they expect a revision) and wait until the
        mirror has them. Raises Conflict when an expectation failed."""
        if not ops:
            return self.revision
        try:
            ok, revision = await self.etcd.txn(ops)
        except Exception as e:  # noqa: BLE001 - grpc errors: etcd unreachable or no quorum
            raise Unavailable(str(e)) from e
        if not ok:
            raise Conflict("update out of sequence")
        await self.wait_for(revision)
        return revision

    async def commit_batches(self, ops: Sequence[Op]) -> None:
        """Like `commit`, in transactions of at most etcd's op limit; a conflicting batch is
        retried op by op so that one stale object does not hold back the rest."""
        for i in range(0, len(ops), MAX_TXN_OPS):
            chunk = ops[i : i + MAX_TXN_OPS]
            try:
                await self.commit(chunk)
            except Conflict:
                for op in chunk:
                    try:
                        await self.commit([op])
                    except Conflict:
                        log.debug("skipped stale write to %s", op.key)

    async def create(self, obj: T) -> T:
        stamp = now()
        obj.created_at = obj.created_at or stamp
        obj.updated_at = stamp
        await self.commit([put_op(obj, expect=0)])
        return self.get(kind_of(obj), obj.id)  # type: ignore[no-any-return]

    async def update(self, obj: T) -> T:
        """Write `obj` if nobody changed it since `obj.version.index`."""
        obj.updated_at = now()
        await self.commit([put_op(obj, expect=obj.version.index)])
        return self.get(kind_of(obj), obj.id)  # type: ignore[no-any-return]

    async def delete(self, obj: Meta) -> None:
        await self.commit([Delete(key_of(kind_of(obj), obj.id), expect=obj.version.index)])

    async def put_extra(self, name: str, value: bytes) -> None:
        await self.commit([Put(PREFIX + name, value)])


def encode(obj: Model) -> bytes:
    data = obj.model_dump(by_alias=True, exclude_none=True, mode="json")
    data.pop("Version", None)
    return json.dumps(data, separators=(",", ":")).encode()


def put_op(obj: Meta, expect: int | None) -> Put:
    return Put(key_of(kind_of(obj), obj.id), encode(obj), expect)


def delete_op(obj: Meta) -> Delete:
    return Delete(key_of(kind_of(obj), obj.id), expect=obj.version.index)


def by_prefix(objs: Iterable[T], ref: str) -> Iterator[T]:
    return (o for o in objs if o.id.startswith(ref))


def resolve(store: Store, kind: str, ref: str, name_of: Any, what: str) -> Any:
    """Docker's lookup: full ID, then exact name, then a unique ID prefix; 404 otherwise."""
    obj = store.get(kind, ref)
    if obj is not None:
        return obj
    objs = list(store.objects(kind))
    named = [o for o in objs if name_of(o) == ref]
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        raise Conflict(f"{what} {ref} is ambiguous ({len(named)} matches found)")
    prefixed = list(by_prefix(objs, ref))
    if len(prefixed) == 1:
        return prefixed[0]
    if len(prefixed) > 1:
        raise Conflict(f"{what} {ref} is ambiguous ({len(prefixed)} matches found)")
    raise NotFound(f"{what} {ref} not found")


async def modify(store: Store, kind: str, changes: dict[str, Any], attempts: int = 5) -> None:
    """Apply `changes[id](fresh_copy) -> bool` to objects and write the ones that changed, in
    batches, re-reading and re-applying on conflicts. The way loops that own one field of an
    object (status, desired state, node) write it without clobbering another loop's field."""
    pending = dict(changes)
    for _ in range(attempts):
        ops: list[Op] = []
        for id, fn in pending.items():
            current = store.get(kind, id)
            if current is None:
                continue
            copy = current.model_copy(deep=True)
            if fn(copy):
                copy.updated_at = now()
                ops.append(put_op(copy, expect=current.version.index))
        if not ops:
            return
        failed: dict[str, Any] = {}
        for i in range(0, len(ops), MAX_TXN_OPS):
            chunk = ops[i : i + MAX_TXN_OPS]
            try:
                await store.commit(chunk)
            except Conflict:
                for op in chunk:
                    id = op.key.rsplit("/", 1)[1]
                    failed[id] = pending[id]
        if not failed:
            return
        pending = failed
        # Give the mirror the chance to catch up with whatever beat us.
        await asyncio.sleep(0.01)
    log.warning("gave up writing %d %s after conflicts", len(pending), kind)
