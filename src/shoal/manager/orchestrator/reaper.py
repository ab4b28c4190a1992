"""The task reaper: deletes tasks that are finished with — removed tasks once they stopped,
and history beyond `TaskHistoryRetentionLimit` per slot (or per node, for global tasks)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable

from ...api.models import Task
from ...api.states import TaskState
from ...store.store import Store, delete_op

DEFAULT_RETENTION = 5
INTERVAL = 0.25


def doomed(tasks: Iterable[Task], retention: int, live_services: set[str]) -> list[Task]:
    """The tasks to delete now (pure)."""
    out = []
    slots: dict[tuple[str, object], list[Task]] = defaultdict(list)
    for t in tasks:
        state = TaskState.parse(t.status.state)
        desired = TaskState.parse(t.desired_state)
        stopped = state > TaskState.RUNNING or state < TaskState.ASSIGNED
        if desired >= TaskState.REMOVE or t.service_id not in live_services:
            if stopped:
                out.append(t)
            continue
        slots[(t.service_id, t.slot if t.slot is not None else t.node_id)].append(t)
    if retention < 0:
        return out
    for ts in slots.values():
        if len(ts) <= retention:
            continue
        old = sorted(
            (t for t in ts if TaskState.parse(t.desired_state) > TaskState.RUNNING
             and TaskState.parse(t.status.state) > TaskState.RUNNING),
            key=lambda t: t.created_at or "",
        )  # fmt: skip
        out.extend(old[: max(0, len(ts) - max(retention, 1))])
    return out


class Reaper:
    def __init__(self, store: Store) -> None:
        self.store = store

    def retention(self) -> int:
        cluster = next(iter(self.store.list("clusters")), None)
        limit = cluster.spec.orchestration.task_history_retention_limit if cluster else None
        return DEFAULT_RETENTION if limit is None else limit

    async def run(self) -> None:
        queue = self.store.subscribe()
        try:
            while True:
                services = {s.id for s in self.store.services()}
                victims = doomed(self.store.list("tasks"), self.retention(), services)
                if victims:
                    await self.store.commit_batches([delete_op(t) for t in victims])
                await queue.get()
                await asyncio.sleep(INTERVAL)
                while not queue.empty():
                    queue.get_nowait()
        finally:
            self.store.unsubscribe(queue)
