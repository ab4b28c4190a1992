"""The per-slot pass that replicated and global services share. A slot is an int for
replicated tasks, the node ID for global ones.

Per slot, every pass:
  * a task on a node that is gone (down, drained, removed) is shut down and replaced at once;
  * a task that ended by itself is shut down and, if the restart policy says so, replaced by
    a task with desired state `ready` that becomes `running` after the restart delay;
  * a task whose spec is not the service's is replaced, `parallelism` slots at a time
    (`update.advance`): stop-first (the new task waits in `ready` until the old one stopped)
    or start-first (the old task is shut down once the new one runs).
Slots that are not wanted any more lose their tasks.
"""

from __future__ import annotations

from collections.abc import Callable

from shoal.api.models import Service, Task, up_to_date
from shoal.api.states import TaskState
from shoal.manager.orchestrator import update
from shoal.manager.orchestrator.plan import Plan, new_task, runnable
from shoal.manager.orchestrator.restart import promote_ready, should_restart
from shoal.manager.orchestrator.times import TaskTimes
from shoal.manager.orchestrator.update import Slot

NodeOk = Callable[[str | None], bool]


def reconcile_slots(
    service: Service,
    slots: dict[Slot, list[Task]],
    node_ok: NodeOk,
    now: float,
    want: set[Slot],
    times: TaskTimes,
) -> Plan:
    plan = Plan()
    is_global = service.spec.mode.kind == "global"

    def create(slot: Slot, desired_state: TaskState) -> Task:
        t = new_task(
            service,
            slot=None if is_global else int(slot),
            node_id=str(slot) if is_global else None,
            desired_state=desired_state,
        )
        plan.create.append(t)
        return t

    for slot, ts in slots.items():
        if slot not in want:
            for t in ts:
                if runnable(t):
                    plan.set_desired(t, TaskState.REMOVE if not is_global else TaskState.SHUTDOWN)

    progress = update.Progress()
    for slot in sorted(want, key=slot_order):
        ts = slots.get(slot, [])
        kept = sorted((t for t in ts if keeps(t, node_ok)), key=lambda t: t.created_at or "")
        # Tasks that ended or lost their node: shut down, maybe replaced.
        replace: TaskState | None = None
        kept_ids = {t.id for t in kept}
        for t in ts:
            if not runnable(t) or t.id in kept_ids:
                continue
            plan.set_desired(t, TaskState.SHUTDOWN)
            if not node_ok(t.node_id):
                replace = TaskState.RUNNING
            elif should_restart(service, t, ts, now) and replace is None:
                replace = TaskState.READY
        if not kept:
            if replace is not None:
                kept = [create(slot, replace)]
            elif not any(runnable(t) for t in ts) and not ended_for_good(ts, service):
                kept = [create(slot, TaskState.RUNNING)]
            else:
                continue
        newest = kept[-1]
        for t in kept:
            promote_ready(plan, service, t, ts, node_ok, now, times)
        if not up_to_date(newest, service):
            progress.dirty.append(slot)
            continue
        older = kept[:-1]
        running = newest.status.state == TaskState.RUNNING
        if running and any(not up_to_date(t, service) for t in ts):
            progress.last_done = max(progress.last_done, times.running_since(newest))
        if not running or older:
            progress.in_progress += 1
            if running:
                for t in older:  # start-first: the new task runs, the old one goes
                    plan.set_desired(t, TaskState.SHUTDOWN)

    def replace_slot(slot: Slot, start_first: bool) -> None:
        if start_first:
            create(slot, TaskState.RUNNING)
            return
        for t in slots.get(slot, []):
            if keeps(t, node_ok):
                plan.set_desired(t, TaskState.SHUTDOWN)
        create(slot, TaskState.READY)

    all_tasks = [t for ts in slots.values() for t in ts]
    update.advance(plan, service, progress, all_tasks, len(want), now, times, replace_slot)
    return plan


def keeps(t: Task, node_ok: NodeOk) -> bool:
    """The task stays in its slot: wanted, not ended, on a node that is there."""
    return runnable(t) and t.status.state <= TaskState.RUNNING and node_ok(t.node_id)


def slot_order(slot: Slot) -> tuple[int, str]:
    """Slot numbers in numeric order (2 before 10); node IDs (global) by name."""
    return (slot, "") if isinstance(slot, int) else (0, str(slot))


def ended_for_good(ts: list[Task], service: Service) -> bool:
    """The slot's last task ended and the restart policy let it be (condition `none`, max
    attempts reached, a completed job task): the slot stays as it is until the spec changes."""
    if not ts:
        return False
    last = max(ts, key=lambda t: t.created_at or "")
    return (
        last.desired_state == TaskState.SHUTDOWN
        and last.status.state in (TaskState.FAILED, TaskState.COMPLETE, TaskState.REJECTED)
        and up_to_date(last, service)
    )


def occupied(ts: list[Task], service: Service) -> bool:
    return any(runnable(t) for t in ts) or ended_for_good(ts, service)
