"""Pure reconciliation of long-running services: replicated (slots 1..N) and global (one per
eligible node). Both work on *slots*: an int for replicated tasks, the node ID for global ones.

Per slot, every pass:
  * a task on a node that is gone (down, drained, removed) is shut down and replaced at once;
  * a task that ended by itself is shut down and, if the restart policy says so, replaced by
    a task with desired state `ready` that becomes `running` after the restart delay;
  * a task whose spec is not the service's is replaced, `parallelism` slots at a time:
    stop-first (new task waits in `ready` until the old one stopped) or start-first (the old
    task is shut down once the new one runs).
Then the set of slots is made to match the service: replicas, or the eligible nodes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping

from shoal.api.models import Service, Task, parse_time
from shoal.api.states import TaskState
from shoal.manager.orchestrator import update
from shoal.manager.orchestrator.plan import (
    NS,
    Plan,
    desired,
    new_task,
    promote_ready,
    runnable,
    should_restart,
    state,
    up_to_date,
)

NodeOk = Callable[[str | None], bool]
Slot = int | str  # a slot number (replicated) or a node ID (global)
NOT_SEEN: Mapping[str, float] = {}


def replicas_of(service: Service) -> int:
    rep = service.spec.mode.replicated
    return 1 if rep is None or rep.replicas is None else rep.replicas


def reconcile_replicated(
    service: Service,
    tasks: Iterable[Task],
    node_ok: NodeOk,
    now: float,
    ran_for: Mapping[str, float] = NOT_SEEN,
) -> Plan:
    """`ran_for`: how long ended tasks were seen running (see `update.first_failure`)."""
    slots: dict[Slot, list[Task]] = defaultdict(list)
    for t in tasks:
        slots[t.slot or 0].append(t)
    want = _replicated_slots(service, slots, node_ok)
    return _reconcile(service, slots, node_ok, now, want, ran_for)


def reconcile_global(
    service: Service,
    tasks: Iterable[Task],
    eligible: set[str],
    node_ok: NodeOk,
    now: float,
    ran_for: Mapping[str, float] = NOT_SEEN,
) -> Plan:
    slots: dict[Slot, list[Task]] = defaultdict(list)
    for t in tasks:
        slots[t.node_id or ""].append(t)
    return _reconcile(service, slots, node_ok, now, set(eligible), ran_for)


def _keeps(t: Task, node_ok: NodeOk) -> bool:
    return runnable(t) and state(t) <= TaskState.RUNNING and node_ok(t.node_id)


def _replicated_slots(
    service: Service, slots: dict[Slot, list[Task]], node_ok: NodeOk
) -> set[Slot]:
    """The slot numbers the service should have: the live ones, trimmed or topped up to the
    replica count. Scale-down removes slots whose tasks are not running first, then those on
    the nodes with the most tasks of the service, then the highest numbers."""
    replicas = replicas_of(service)
    live = {s for s, ts in slots.items() if s and occupied(ts, service)}
    if len(live) > replicas:
        # Each slot is the n-th copy on its node (lowest slot numbers first); removing the
        # highest copies first leaves the nodes balanced, as SwarmKit does.
        by_node: dict[str | None, list[Slot]] = defaultdict(list)
        node_of: dict[Slot, str | None] = {}
        for slot in live:
            ts = [t for t in slots[slot] if runnable(t)]
            node_of[slot] = ts[-1].node_id if ts else None
            by_node[node_of[slot]].append(slot)
        rank = {
            slot: n
            for group in by_node.values()
            for n, slot in enumerate(sorted(group, key=_slot_order), start=1)
        }

        def removal_order(slot: Slot) -> tuple[int, int, int]:
            running = any(
                runnable(t) and state(t) == TaskState.RUNNING and node_ok(t.node_id)
                for t in slots[slot]
            )
            return (int(running), -rank[slot], -int(slot))

        ordered = sorted(live, key=removal_order)
        return set(ordered[len(live) - replicas :])
    wanted = set(live)
    n = 1
    while len(wanted) < replicas:
        if n not in wanted:
            wanted.add(n)
        n += 1
    return wanted


def _reconcile(
    service: Service,
    slots: dict[Slot, list[Task]],
    node_ok: NodeOk,
    now: float,
    want: set[Slot],
    ran_for: Mapping[str, float],
) -> Plan:
    plan = Plan()
    is_global = service.spec.mode.kind == "global"
    cfg = update.config(service)
    parallelism = 1 if cfg.parallelism is None else cfg.parallelism
    start_first = cfg.order == "start-first"

    def create(slot: Slot, desired_state: TaskState) -> Task:
        t = new_task(
            service,
            slot=None if is_global else int(slot),
            node_id=str(slot) if is_global else None,
            desired_state=desired_state,
        )
        plan.create.append(t)
        return t

    # Slots no longer wanted: every runnable task there goes.
    for slot, ts in slots.items():
        if slot not in want:
            for t in ts:
                if runnable(t):
                    plan.set_desired(t, TaskState.REMOVE if not is_global else TaskState.SHUTDOWN)

    dirty: list[Slot] = []
    in_progress = 0
    last_done = 0.0  # when the latest updated slot came up
    for slot in sorted(want, key=_slot_order):
        ts = slots.get(slot, [])
        kept = sorted((t for t in ts if _keeps(t, node_ok)), key=lambda t: t.created_at or "")
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
            elif not any(runnable(t) for t in ts) and not _ended_for_good(ts, service):
                kept = [create(slot, TaskState.RUNNING)]
            else:
                continue
        newest = kept[-1]
        for t in kept:
            if desired(t) == TaskState.READY:
                promote_ready(plan, service, t, ts, node_ok, now)
        if not up_to_date(newest, service):
            dirty.append(slot)
            continue
        older = kept[:-1]
        if (
            state(newest) == TaskState.RUNNING
            and newest.status.timestamp
            and any(not up_to_date(t, service) for t in ts)
        ):
            last_done = max(last_done, parse_time(newest.status.timestamp))
        if state(newest) != TaskState.RUNNING or older:
            in_progress += 1
            if state(newest) == TaskState.RUNNING:
                for t in older:  # start-first: the new task runs, the old one goes
                    plan.set_desired(t, TaskState.SHUTDOWN)

    budget = len(dirty) if parallelism == 0 else max(parallelism - in_progress, 0)
    delay = (cfg.delay or 0) / NS
    if dirty and budget and delay and last_done + delay > now:
        plan.wake(last_done + delay)  # `--update-delay` after the previous batch
        budget = 0
    all_tasks = (t for ts in slots.values() for t in ts)
    failure = update.first_failure(service, all_tasks, len(want), ran_for)
    if failure is not None and (cfg.failure_action or "pause") != "continue":
        plan.update_status, plan.rollback = update.on_failure(service, failure)
        return plan
    if update.halted(service):
        budget = 0
    for slot in dirty[:budget]:
        old = [t for t in slots.get(slot, []) if _keeps(t, node_ok)]
        if start_first:
            create(slot, TaskState.RUNNING)
        else:
            for t in old:
                plan.set_desired(t, TaskState.SHUTDOWN)
            create(slot, TaskState.READY)

    settled_at = last_done + update.settle_s(service)  # the last batch is watched
    settling = settled_at > now
    if settling and not dirty and not in_progress:
        plan.wake(settled_at)
    plan.update_status = update.finished(service, bool(dirty), bool(in_progress) or settling)
    return plan


def _slot_order(slot: Slot) -> tuple[int, str]:
    """Slot numbers in numeric order (2 before 10); node IDs (global) by name."""
    return (slot, "") if isinstance(slot, int) else (0, str(slot))


def _ended_for_good(ts: list[Task], service: Service) -> bool:
    """The slot's last task ended and the restart policy let it be (condition `none`, max
    attempts reached, a completed job task): the slot stays as it is until the spec changes."""
    if not ts:
        return False
    last = max(ts, key=lambda t: t.created_at or "")
    return (
        desired(last) == TaskState.SHUTDOWN
        and state(last) in (TaskState.FAILED, TaskState.COMPLETE, TaskState.REJECTED)
        and up_to_date(last, service)
    )


def occupied(ts: list[Task], service: Service) -> bool:
    return any(runnable(t) for t in ts) or _ended_for_good(ts, service)
