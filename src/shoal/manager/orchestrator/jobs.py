"""Pure reconciliation of jobs: replicated-job (TotalCompletions, at most MaxConcurrent at a
time) and global-job (one run per eligible node). A job runs once per *iteration*; updating the
service starts a new iteration (`JobStatus.JobIteration.Index`).

As in SwarmKit's jobs orchestrator, a job's tasks are created with desired state `complete`
(run until the container exits) and a completed task keeps it; a task that failed is shut
down and, if its restart policy allows, replaced (desired `ready`, then `complete`). Tasks of
an earlier iteration that still run are shut down; those that ended stay as they are."""

from __future__ import annotations

from collections.abc import Iterable

from shoal.api.models import Service, Task
from shoal.api.states import TaskState
from shoal.manager.orchestrator.plan import Plan, new_task, runnable, state
from shoal.manager.orchestrator.restart import promote_ready, should_restart
from shoal.manager.orchestrator.slots import NodeOk
from shoal.manager.orchestrator.times import NOT_SEEN, TaskTimes
from shoal.manager.orchestrator.update import Slot


def iteration_of(service: Service) -> int:
    return service.job_status.job_iteration.index if service.job_status else 0


def job_counts(service: Service) -> tuple[int, int]:
    """(max concurrent, total completions) with Docker's defaults."""
    job = service.spec.mode.replicated_job
    if job is None:
        return 1, 1
    concurrent = job.max_concurrent or 1
    return concurrent, job.total_completions or concurrent


def reconcile_job(
    service: Service,
    tasks: Iterable[Task],
    node_ok: NodeOk,
    now: float,
    eligible: set[str] | None = None,
    times: TaskTimes = NOT_SEEN,
) -> Plan:
    """`eligible` is given for global jobs: the nodes that should each run the job once."""
    plan = Plan()
    iteration = iteration_of(service)
    current: list[Task] = []
    for t in tasks:
        if (t.job_iteration.index if t.job_iteration else 0) != iteration:
            if runnable(t) and state(t) <= TaskState.RUNNING:
                plan.set_desired(t, TaskState.SHUTDOWN)  # a previous iteration's, still running
        else:
            current.append(t)

    def key(t: Task) -> Slot:
        return (t.node_id or "") if eligible is not None else (t.slot or 0)

    by_key: dict[Slot, list[Task]] = {}
    for t in current:
        by_key.setdefault(key(t), []).append(t)

    active = 0
    for k, ts in by_key.items():
        if any(state(t) == TaskState.COMPLETE for t in ts):
            continue  # done: the completed task keeps its desired state `complete`
        live = [t for t in ts if runnable(t)]
        for t in live:
            if state(t) > TaskState.RUNNING or not node_ok(t.node_id):
                plan.set_desired(t, TaskState.SHUTDOWN)
                if eligible is not None and not node_ok(t.node_id):
                    continue  # a global job's node is gone: nowhere else to run its task
                if not node_ok(t.node_id) or should_restart(service, t, ts, now):
                    _create(plan, service, k, eligible, iteration, TaskState.READY)
                    active += 1
                # else: failed for good, the slot is spent
            else:
                active += 1
                promote_ready(plan, service, t, ts, node_ok, now, times)

    if eligible is not None:
        for node_id in sorted(eligible):
            if node_id not in by_key:
                _create(plan, service, node_id, eligible, iteration, TaskState.COMPLETE)
        return plan

    concurrent, total = job_counts(service)
    used = set(by_key)
    # Replicated-job slots count from 0, as the docker CLI's job progress expects.
    free = (s for s in range(total) if s not in used)
    for _ in range(max(0, min(concurrent - active, total - len(used)))):
        _create(plan, service, next(free), None, iteration, TaskState.COMPLETE)
    return plan


def _create(
    plan: Plan,
    service: Service,
    key: Slot,
    eligible: set[str] | None,
    iteration: int,
    desired_state: TaskState,
) -> None:
    if eligible is not None:
        t = new_task(
            service, node_id=str(key), desired_state=desired_state, job_iteration=iteration
        )
    else:
        t = new_task(service, slot=int(key), desired_state=desired_state, job_iteration=iteration)
    plan.create.append(t)
