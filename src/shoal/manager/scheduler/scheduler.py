"""The scheduler loop: keeps a `NodeInfo` per node from store events, and on each batch of
changes places the pending tasks with the pure `schedule_group` and writes the decisions
(`NodeID` + `assigned`) or the reason no node fits (`Status.Err`, task stays `pending`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from shoal.api.models import Task, now
from shoal.api.states import TaskState
from shoal.manager.scheduler.decide import fit_preassigned, group_tasks, schedule_group
from shoal.manager.scheduler.nodeinfo import NodeInfo
from shoal.store.store import Event, Store

DEBOUNCE = 0.02


def unassigned(task: Task) -> bool:
    """Waiting for a node, and wanted (desired ready, running, or a job's `complete`)."""
    return task.status.state == TaskState.PENDING and task.desired_state <= TaskState.COMPLETE


class Scheduler:
    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self.nodes: dict[str, NodeInfo] = {}
        self.pending: dict[str, Task] = {}
        # Tasks no node could take: looked at again when nodes or their tasks change.
        self.waiting: dict[str, Task] = {}

    def _load(self) -> None:
        now = self.clock()
        self.nodes = {n.id: NodeInfo(n, now=now) for n in self.store.nodes()}
        for t in self.store.tasks():
            self._track(t)

    def _track(self, t: Task) -> None:
        if unassigned(t):
            self.waiting.pop(t.id, None)
            self.pending[t.id] = t
            return
        self.pending.pop(t.id, None)
        self.waiting.pop(t.id, None)
        if t.node_id and t.node_id in self.nodes:
            self.nodes[t.node_id].add_task(t)

    def handle(self, events: list[Event]) -> None:
        for ev in events:
            if self.waiting and _frees_room(ev):
                self.pending.update(self.waiting)
                self.waiting.clear()
            if ev.kind == "nodes":
                if ev.new is None:
                    self.nodes.pop(ev.id, None)
                elif ev.id in self.nodes:
                    self.nodes[ev.id].update_node(ev.new)
                else:
                    self.nodes[ev.id] = NodeInfo(ev.new, now=self.clock())
            elif ev.kind == "tasks":
                if ev.new is None:
                    self.pending.pop(ev.id, None)
                    self.waiting.pop(ev.id, None)
                    node = self.nodes.get(ev.old.node_id or "")
                    if node is not None:
                        node.remove_task(ev.id)
                else:
                    old = ev.old
                    if _just_failed(old, ev.new) and ev.new.node_id in self.nodes:
                        self.nodes[ev.new.node_id].task_failed(ev.new, self.clock())
                    if old is not None and old.node_id and old.node_id != ev.new.node_id:
                        node = self.nodes.get(old.node_id)
                        if node is not None:
                            node.remove_task(ev.id)
                    self._track(ev.new)

    async def run(self) -> None:
        queue = self.store.subscribe()
        try:
            self._load()
            while True:
                if self.pending:
                    await self.tick()
                self.handle(await queue.get())
                await asyncio.sleep(DEBOUNCE)
                while not queue.empty():
                    self.handle(queue.get_nowait())
        finally:
            self.store.unsubscribe(queue)

    async def tick(self) -> None:
        now = self.clock()
        decisions: dict[str, Callable[[Any], bool]] = {}
        free = [t for t in self.pending.values() if not t.node_id]
        for t in self.pending.values():
            if t.node_id:
                node = self.nodes.get(t.node_id)
                err = "node not found" if node is None else fit_preassigned(t, node)
                decisions[t.id] = _assign(t.node_id) if err is None else _explain(err)
        free.sort(key=lambda t: (t.service_id, t.slot or 0, t.created_at or ""))
        for group in group_tasks(free):
            assigned, errors = schedule_group(group, self.nodes, now)
            for tid, node_id in assigned.items():
                decisions[tid] = _assign(node_id)
            for tid, err in errors.items():
                if self.pending[tid].status.err != err:
                    decisions[tid] = _explain(err)
                else:
                    self.waiting[tid] = self.pending.pop(tid)
        if decisions:
            await self.store.modify(Task, decisions)


def _assign(node_id: str) -> Callable[[Task], bool]:
    def apply(task: Task) -> bool:
        if not unassigned(task):
            return False
        task.node_id = node_id
        task.status.state = TaskState.ASSIGNED
        task.status.message = "scheduler assigned task to node"
        task.status.err = None
        task.status.timestamp = now()
        return True

    return apply


def _explain(err: str) -> Callable[[Task], bool]:
    def apply(task: Task) -> bool:
        if not unassigned(task) or task.status.err == err:
            return False
        task.status.err = err
        return True

    return apply


def _frees_room(ev: Event) -> bool:
    """Could this change let a waiting task fit somewhere?"""
    if ev.kind == "nodes":
        return True
    if ev.kind != "tasks" or ev.old is None or not ev.old.node_id:
        return False
    if ev.new is None:
        return True
    old: Task = ev.old
    new: Task = ev.new
    return (
        new.status.state > TaskState.RUNNING >= old.status.state
        or new.desired_state > TaskState.COMPLETE >= old.desired_state
    )


def _just_failed(old: Task | None, new: Task) -> bool:
    """A task that failed here now counts against its node for this service."""
    failed = (TaskState.FAILED, TaskState.REJECTED)
    return new.status.state in failed and (old is None or old.status.state not in failed)
