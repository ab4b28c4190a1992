"""The task reaper: deletes tasks that are finished with — removed tasks once they stopped,
and history beyond `TaskHistoryRetentionLimit` per slot (or per node, for global tasks)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Mapping

from shoal.api.defaults import TASK_HISTORY_RETENTION
from shoal.api.models import Service, Task
from shoal.api.states import TaskState
from shoal.store.store import Store

INTERVAL = 0.25


def keep_per_slot(service: Service | None, retention: int) -> int:
    """History kept per slot: the cluster's limit, but never less than the restart policy's
    MaxAttempts + 1 — restarts are counted from that history (as SwarmKit keeps it)."""
    policy = service.spec.task_template.restart_policy if service is not None else None
    if policy is not None and policy.max_attempts:
        return max(retention, policy.max_attempts + 1)
    return retention


def doomed(
    tasks: Iterable[Task], retention: int, services: Mapping[str, Service | None]
) -> list[Task]:
    """The tasks to delete now (pure). `services`: the live services by ID."""
    out = []
    slots: dict[tuple[str, object], list[Task]] = defaultdict(list)
    for t in tasks:
        state = t.status.state
        desired = t.desired_state
        stopped = state > TaskState.RUNNING or state < TaskState.ASSIGNED
        if desired >= TaskState.REMOVE or t.service_id not in services:
            if stopped:
                out.append(t)
            continue
        slots[(t.service_id, t.slot if t.slot is not None else t.node_id)].append(t)
    if retention < 0:
        return out
    for (service_id, _), ts in slots.items():
        keep = max(keep_per_slot(services.get(service_id), retention), 1)
        if len(ts) <= keep:
            continue
        # History: ended and no longer wanted running (a job's completed task included), or
        # told to stop before any node got it.
        old = sorted(
            (t for t in ts
             if (t.status.state > TaskState.RUNNING and t.desired_state > TaskState.RUNNING)
             or (t.status.state < TaskState.ASSIGNED and t.desired_state > TaskState.COMPLETE)),
            key=lambda t: t.created_at or "",
        )  # fmt: skip
        out.extend(old[: max(0, len(ts) - keep)])
    return out


class Reaper:
    def __init__(self, store: Store) -> None:
        self.store = store

    def retention(self) -> int:
        swarm = self.store.swarm()
        limit = swarm.spec.orchestration.task_history_retention_limit if swarm else None
        return TASK_HISTORY_RETENTION if limit is None else limit

    async def run(self) -> None:
        queue = self.store.subscribe()
        try:
            while True:
                services = {s.id: s for s in self.store.services()}
                victims = doomed(self.store.tasks(), self.retention(), services)
                if victims:
                    await self.store.delete_all(victims)
                await queue.get()
                await asyncio.sleep(INTERVAL)
                while not queue.empty():
                    queue.get_nowait()
        finally:
            self.store.unsubscribe(queue)
