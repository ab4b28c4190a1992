"""The orchestrator loop: one for every service mode. Events mark services dirty; each batch of
store changes (or a due delay) triggers one `tick()` that reconciles the dirty services with
the pure reconcilers (`replicated`, `global_`, `jobs`) and writes the plans. Time is the
injected clock's (`times.py`: what the loop saw, when)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from shoal.api.models import Node, Service, Task, UpdateStatus, timestamp
from shoal.api.states import TaskState
from shoal.manager.orchestrator.eligible import eligible_nodes, node_usable
from shoal.manager.orchestrator.global_ import reconcile_global
from shoal.manager.orchestrator.jobs import reconcile_job
from shoal.manager.orchestrator.plan import Plan
from shoal.manager.orchestrator.replicated import reconcile_replicated
from shoal.manager.orchestrator.times import TaskTimes
from shoal.store.store import Event, Store

log = logging.getLogger(__name__)


class Orchestrator:
    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self.dirty: set[str] = set()
        self.wake_at: dict[str, float] = {}
        self.times = TaskTimes()

    async def run(self) -> None:
        queue = self.store.subscribe()
        try:
            self.dirty.update(s.id for s in self.store.services())
            # Tasks whose service is gone (deleted while no leader ran).
            self.dirty.update(t.service_id for t in self.store.tasks())
            while True:
                await self.tick()
                timeout = None
                if self.wake_at:
                    timeout = max(0.0, min(self.wake_at.values()) - self.clock())
                try:
                    batch = await asyncio.wait_for(queue.get(), timeout)
                    self.handle(batch)
                    while not queue.empty():
                        self.handle(queue.get_nowait())
                except TimeoutError:
                    pass
                due = [sid for sid, at in self.wake_at.items() if at <= self.clock()]
                for sid in due:
                    del self.wake_at[sid]
                    self.dirty.add(sid)
        finally:
            self.store.unsubscribe(queue)

    def handle(self, events: list[Event]) -> None:
        for ev in events:
            if ev.kind == "services":
                self.dirty.add(ev.id)
            elif ev.kind == "tasks":
                task = ev.new or ev.old
                self.times.observe(ev.old, ev.new, self.clock())
                if _matters(ev):
                    self.dirty.add(task.service_id)
            elif ev.kind == "nodes":
                self._node_changed(ev.old, ev.new)

    def _node_changed(self, old: Node | None, new: Node | None) -> None:
        if old is not None and new is not None:
            if node_usable(old) == node_usable(new) and old.spec == new.spec:
                return
        node = new or old
        assert node is not None
        self.dirty.update(t.service_id for t in self.store.tasks_on(node.id))
        self.dirty.update(
            s.id for s in self.store.services() if s.spec.mode.kind in ("global", "global-job")
        )

    async def tick(self) -> None:
        dirty, self.dirty = self.dirty, set()
        task_changes: dict[str, TaskState] = {}
        creates = []
        service_changes = {}
        for sid in dirty:
            service = self.store.get(Service, sid)
            if service is None:
                # Deleted service: its tasks are told to go; the reaper deletes them.
                for t in self.store.tasks_of(sid):
                    if t.desired_state < TaskState.REMOVE:
                        task_changes[t.id] = TaskState.REMOVE
                continue
            plan = self.plan(service)
            if plan:
                log.debug(
                    "service %s: %d new tasks (slots %s), desired %s, status %s",
                    service.spec.name, len(plan.create),
                    [t.slot or t.node_id for t in plan.create], plan.desired,
                    plan.update_status and plan.update_status.get("State"),
                )  # fmt: skip
            task_changes.update(plan.desired)
            creates.extend(plan.create)
            if plan.update_status is not None:
                service_changes[sid] = (plan.update_status, plan.rollback)
            if plan.wake_at is not None:
                self.wake_at[sid] = plan.wake_at
        # The service's UpdateStatus first: a client never sees an update's new tasks beside
        # no status or the previous update's (Docker starts an update before its tasks).
        if service_changes:
            await self.store.modify(
                Service,
                {sid: _set_update_status(*change) for sid, change in service_changes.items()},
            )
        if creates:
            stamp = timestamp(self.clock())
            for t in creates:
                t.status.timestamp = stamp
            await self.store.create_all(creates)
        if task_changes:
            await self.store.modify(
                Task, {tid: _set_desired(state) for tid, state in task_changes.items()}
            )

    def plan(self, service: Service) -> Plan:
        nodes = {n.id: n for n in self.store.nodes()}

        def node_ok(node_id: str | None) -> bool:
            if not node_id:
                return True
            node = nodes.get(node_id)
            return node is not None and node_usable(node)

        tasks = list(self.store.tasks_of(service.id))
        now_s = self.clock()
        kind = service.spec.mode.kind
        if kind == "replicated":
            return reconcile_replicated(service, tasks, node_ok, now_s, self.times)
        if kind == "global":
            eligible = eligible_nodes(service, nodes.values())
            return reconcile_global(service, tasks, eligible, node_ok, now_s, self.times)
        job_nodes = eligible_nodes(service, nodes.values()) if kind == "global-job" else None
        return reconcile_job(service, tasks, node_ok, now_s, job_nodes, self.times)


def _matters(ev: Event) -> bool:
    """Only changes of observed or desired state (or creation/deletion) concern the
    orchestrator; the scheduler's node assignment and status messages do not."""
    if ev.old is None or ev.new is None:
        return True
    old: Task = ev.old
    new: Task = ev.new
    return (
        old.status.state != new.status.state
        or old.desired_state != new.desired_state
        or old.node_id != new.node_id
    )


def _set_desired(state: TaskState) -> Callable[[Task], bool]:
    def apply(task: Task) -> bool:
        if state <= task.desired_state:
            return False  # desired states only move forward
        task.desired_state = state
        return True

    return apply


def _set_update_status(fields: dict[str, str], rollback: bool) -> Callable[[Service], bool]:
    """Set `UpdateStatus`; with `rollback`, the failed update's service also goes back to its
    previous spec (as `docker service rollback` would)."""

    def apply(service: Service) -> bool:
        if rollback:
            if (
                service.previous_spec is None
                or (service.update_status or UpdateStatus()).state != "updating"
            ):
                return False
            service.spec, service.previous_spec = service.previous_spec, service.spec
        status = service.update_status or UpdateStatus()
        # A new update starts from a clean status; its end keeps when it started.
        data = fields if "StartedAt" in fields else {**status.to_api(), **fields}
        service.update_status = UpdateStatus.from_api(data)
        return True

    return apply
