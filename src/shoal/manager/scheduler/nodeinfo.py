"""NodeInfo: a node plus the scheduler's derived view of the tasks assigned to it.

Mirrors swarmkit's `manager/scheduler/nodeinfo.go`. A NodeInfo changes only through
`add_task` / `remove_task` / `task_failed` / `update_node`, so a caller can keep one per node
across scheduler ticks and feed it store events.

Accounting rules (swarmkit's):

* a task is *tracked* while its observed state is ≤ running; tracked tasks hold their resource
  reservations and host-mode published ports;
* a tracked task is *active* (counted in `active_tasks_count` and per service) while its
  desired state is ≤ complete — i.e. running, ready or complete (jobs), not shutdown/remove;
* failures (observed failed/rejected) are remembered per service for `MONITOR_FAILURES`
  seconds; a node with ≥ `MAX_FAILURES` recent failures of a service is ranked last for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from shoal.api.models import Node, Task
from shoal.api.states import TaskState

__all__ = [
    "MAX_FAILURES",
    "MONITOR_FAILURES",
    "Footprint",
    "NodeInfo",
    "footprint",
    "generic_counts",
    "task_host_ports",
]

# Lookback window (seconds) for counting a service's failures on a node, and the number of
# failures within it that makes the node the last choice for that service.
MONITOR_FAILURES = 5 * 60.0
MAX_FAILURES = 5

HostPort = tuple[str, int]


def task_host_ports(task: Task) -> tuple[HostPort, ...]:
    """Host-mode published ports (protocol, port) of a task, from its allocated `Endpoint`.

    As in swarmkit, the allocator copies the service's endpoint onto the task; only ports
    with `PublishMode == "host"` and a non-zero `PublishedPort` count.
    """
    ep = task.endpoint
    if ep is None or not ep.ports:
        return ()
    return tuple(
        ((p.protocol or "tcp").lower(), p.published_port)
        for p in ep.ports
        if p.publish_mode == "host" and p.published_port
    )


def _key(obj: Any, key: str) -> Any:
    """A key of a Docker JSON object; None for anything else."""
    return obj.get(key) if isinstance(obj, dict) else None


def generic_counts(generic: list[Any] | None) -> dict[str, int]:
    """Docker `GenericResources` as kind → amount (named resources count one each).

    The models keep these entries as Docker JSON (dicts), as the API and the store give them.
    """
    out: dict[str, int] = {}
    for g in generic or ():
        discrete = _key(g, "DiscreteResourceSpec")
        if discrete is not None:
            kind = _key(discrete, "Kind")
            out[kind] = out.get(kind, 0) + int(_key(discrete, "Value") or 0)
            continue
        named = _key(g, "NamedResourceSpec")
        if named is not None:
            kind = _key(named, "Kind")
            out[kind] = out.get(kind, 0) + 1
    return out


class Footprint(NamedTuple):
    """What a task costs a node: computed once per task (or once per task group)."""

    service_id: str
    nano_cpus: int
    memory_bytes: int
    generic: tuple[tuple[str, int], ...]
    host_ports: tuple[HostPort, ...]


def footprint(task: Task) -> Footprint:
    res = task.spec.resources
    r = res.reservations if res is not None else None
    if r is None:
        return Footprint(task.service_id, 0, 0, (), task_host_ports(task))
    return Footprint(
        task.service_id,
        r.nano_cpus or 0,
        r.memory_bytes or 0,
        tuple(generic_counts(r.generic_resources).items()),
        task_host_ports(task),
    )


def _is_active(task: Task) -> bool:
    return task.desired_state <= TaskState.COMPLETE


class NodeInfo:
    """A node and the tasks the scheduler counts against it."""

    __slots__ = (
        "node",
        "tasks",
        "active_tasks_count",
        "active_tasks_count_by_service",
        "available_nano_cpus",
        "available_memory_bytes",
        "available_generic",
        "used_host_ports",
        "recent_failures",
        "last_cleanup",
        "_tracked",
    )

    def __init__(self, node: Node, tasks: Iterable[Task] = (), *, now: float = 0.0) -> None:
        self.node = node
        self.tasks: dict[str, Task] = {}
        self.active_tasks_count = 0
        self.active_tasks_count_by_service: dict[str, int] = {}
        self.used_host_ports: set[HostPort] = set()
        # service ID → failure timestamps (seconds), oldest first
        self.recent_failures: dict[str, list[float]] = {}
        self.last_cleanup = now
        # task ID → (footprint, active)
        self._tracked: dict[str, tuple[Footprint, bool]] = {}
        self._reset_resources()
        for t in tasks:
            self.add_task(t)

    # ------------------------------------------------------------------ node

    @property
    def id(self) -> str:
        return self.node.id

    def _reset_resources(self) -> None:
        d = self.node.description
        r = d.resources if d is not None else None
        self.available_nano_cpus = (r.nano_cpus or 0) if r is not None else 0
        self.available_memory_bytes = (r.memory_bytes or 0) if r is not None else 0
        self.available_generic = generic_counts(r.generic_resources) if r is not None else {}

    def update_node(self, node: Node) -> None:
        """A new version of the node: recompute available resources from its description."""
        self.node = node
        self._reset_resources()
        for fp, _active in self._tracked.values():
            self._consume(fp, 1)

    # ------------------------------------------------------------------ tasks

    def _consume(self, fp: Footprint, sign: int) -> None:
        self.available_nano_cpus -= sign * fp.nano_cpus
        self.available_memory_bytes -= sign * fp.memory_bytes
        if fp.generic:
            g = self.available_generic
            for kind, amount in fp.generic:
                g[kind] = g.get(kind, 0) - sign * amount

    def _count(self, service_id: str, delta: int) -> None:
        self.active_tasks_count += delta
        by = self.active_tasks_count_by_service
        by[service_id] = by.get(service_id, 0) + delta

    def add_task(self, task: Task, fp: Footprint | None = None) -> bool:
        """Track (or update) a task on this node; returns True if the NodeInfo changed.

        A task whose observed state is past running no longer consumes anything and is
        removed instead. An already-tracked task only changes the active counts when its
        desired state crosses `complete` (as in swarmkit); its reservations stay as first
        recorded (a task's spec never changes). `fp` may be passed to skip recomputing the
        task's footprint (the scheduler does so for a whole task group).
        """
        if task.status.state > TaskState.RUNNING:
            return self.remove_task(task)
        active = _is_active(task)
        tid = task.id
        old = self._tracked.get(tid)
        if old is not None:
            self.tasks[tid] = task
            old_fp, was_active = old
            if active == was_active:
                return False
            self._tracked[tid] = (old_fp, active)
            self._count(old_fp.service_id, 1 if active else -1)
            return True
        if fp is None:
            fp = footprint(task)
        self.tasks[tid] = task
        self._tracked[tid] = (fp, active)
        self._consume(fp, 1)
        if fp.host_ports:
            self.used_host_ports.update(fp.host_ports)
        if active:
            self._count(fp.service_id, 1)
        return True

    def remove_task(self, task: Task | str) -> bool:
        """Stop tracking a task (by object or ID); returns True if it was tracked."""
        tid = task if isinstance(task, str) else task.id
        old = self._tracked.pop(tid, None)
        if old is None:
            return False
        del self.tasks[tid]
        fp, active = old
        if active:
            self._count(fp.service_id, -1)
        self._consume(fp, -1)
        if fp.host_ports:
            self.used_host_ports.difference_update(fp.host_ports)
        return True

    # ------------------------------------------------------------------ failures

    def _cleanup_failures(self, now: float) -> None:
        self.recent_failures = {
            key: stamps
            for key, stamps in self.recent_failures.items()
            if any(now - ts < MONITOR_FAILURES for ts in stamps)
        }
        self.last_cleanup = now

    def task_failed(self, task: Task | str, now: float) -> None:
        """Record that a task of a service failed or was rejected on this node at `now`.

        Pass the Task, or its service ID.
        """
        service_id = task if isinstance(task, str) else task.service_id
        if now - self.last_cleanup >= MONITOR_FAILURES:
            self._cleanup_failures(now)
        stamps = self.recent_failures.get(service_id, [])
        expired = 0
        for ts in stamps:
            if now - ts < MONITOR_FAILURES:
                break
            expired += 1
        self.recent_failures[service_id] = stamps[expired:] + [now]

    def count_recent_failures(self, service_id: str, now: float) -> int:
        """Failures of the service on this node within the last `MONITOR_FAILURES` seconds."""
        stamps = self.recent_failures.get(service_id)
        if not stamps:
            return 0
        n = len(stamps)
        for i in range(n - 1, -1, -1):
            if now - stamps[i] > MONITOR_FAILURES:
                return n - (i + 1)
        return n

    def __repr__(self) -> str:
        return (
            f"NodeInfo(id={self.id!r}, active={self.active_tasks_count}, "
            f"cpus={self.available_nano_cpus}, mem={self.available_memory_bytes})"
        )
