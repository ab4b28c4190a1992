"""The cluster store as its users see it: typed reads from a local mirror, versioned writes,
and batches of change events.

Every manager keeps a mirror of the whole state; reads never wait. Writes are transactions
that succeed only if the object is still at the version the writer read (`Version.Index`),
and return once the mirror has them, so a read that follows a write sees it. Components
subscribe to batches of `Event`s (one batch per delivery of changes) and act once per batch.

`shoal.store.mirrored.MirroredStore` is the implementation (over etcd in shoald, over
`shoal.testing.MemoryKV` in tests).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

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
)
from shoal.store.kv import Guard

T = TypeVar("T", bound=Meta)


@dataclass(frozen=True, slots=True)
class Event:
    kind: str  # a key of `shoal.store.kinds.KINDS`: "swarm", "nodes", "services", "tasks", …
    id: str
    old: Any  # the object before, None on create
    new: Any  # the object after, None on delete


Events = asyncio.Queue[list[Event]]
Change = Callable[[T], bool]  # changes a fresh copy in place; False: nothing to write


class Store(Protocol):
    @property
    def revision(self) -> int:
        """The store revision the mirror has caught up with."""
        ...

    # ------------------------------------------------------------------ reads (the mirror)

    def get(self, cls: type[T], id: str) -> T | None: ...

    def swarm(self) -> Swarm | None:
        """The swarm object (None before `swarm init` wrote it)."""
        ...

    def nodes(self) -> Iterable[Node]: ...

    def services(self) -> Iterable[Service]: ...

    def networks(self) -> Iterable[Network]: ...

    def attachments(self) -> Iterable[Attachment]: ...

    def secrets(self) -> Iterable[Secret]: ...

    def configs(self) -> Iterable[Config]: ...

    def tasks(self) -> Iterable[Task]: ...

    def tasks_of(self, service_id: str) -> Iterable[Task]: ...

    def tasks_on(self, node_id: str) -> Iterable[Task]: ...

    def sensitive(self, name: str) -> bytes | None:
        """A sealed value (e.g. the root CA key), opened."""
        ...

    # ------------------------------------------------------------------ events

    def subscribe(self) -> Events:
        """Event batches from now on. Read the mirror for the snapshot first: snapshot and
        subscription are taken together (no await in between)."""
        ...

    def unsubscribe(self, events: Events) -> None: ...

    # ------------------------------------------------------------------ writes

    async def create(self, obj: T) -> T:
        """Write a new object (Conflict if its ID exists); returns it as stored."""
        ...

    async def update(self, obj: T) -> T:
        """Write `obj` if nobody changed it since `obj.version.index` (Conflict otherwise)."""
        ...

    async def delete(self, obj: Meta) -> None: ...

    async def create_all(self, objs: Sequence[Meta]) -> None:
        """Create many objects in batches; one that exists already is skipped."""
        ...

    async def delete_all(self, objs: Sequence[Meta]) -> None:
        """Delete many objects in batches; one changed meanwhile is skipped."""
        ...

    async def modify(self, cls: type[T], changes: Mapping[str, Change[T]]) -> None:
        """Apply `changes[id](fresh copy)` and write the objects that changed, in batches,
        re-reading and re-applying on conflicts: how a loop that owns one field of an object
        (status, desired state, node) writes it without clobbering another loop's field."""
        ...

    async def put_sensitive(self, name: str, data: bytes) -> None:
        """Store `data` sealed under `name`."""
        ...

    def fenced(self, guard: Guard) -> Store:
        """The same store whose writes succeed only while `guard` holds (the leader's term):
        a deposed leader's writes raise `shoal.api.errors.Deposed`."""
        ...
