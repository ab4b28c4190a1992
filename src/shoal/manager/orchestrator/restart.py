"""The restart rules (SwarmKit's restart supervisor), pure: whether a task that ended is
replaced, and when its replacement, created with desired state `ready`, may run (desired
`running`, or `complete` for a job's task)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from shoal.api.defaults import RESTART_DELAY
from shoal.api.models import Service, Task, parse_time, same_task_spec
from shoal.api.states import TaskState
from shoal.manager.orchestrator.plan import NS, Plan, live
from shoal.manager.orchestrator.times import TaskTimes

ENDED = (TaskState.FAILED, TaskState.COMPLETE, TaskState.REJECTED)


def restart_condition(service: Service) -> str:
    policy = service.spec.task_template.restart_policy
    cond = policy.condition if policy and policy.condition else "any"
    if service.spec.mode.kind.endswith("job") and cond == "any":
        return "on-failure"  # a job's completed task is done, whatever the policy says
    return cond


def restart_delay(service: Service) -> int:
    policy = service.spec.task_template.restart_policy
    if policy is None or policy.delay is None:
        return RESTART_DELAY
    return policy.delay


def should_restart(service: Service, task: Task, history: Iterable[Task], now: float) -> bool:
    """Condition, then max attempts within the window. `history` holds the other tasks of
    the same slot (or node, for global services)."""
    cond = restart_condition(service)
    if cond == "none":
        return False
    if cond == "on-failure" and task.status.state == TaskState.COMPLETE:
        return False
    policy = service.spec.task_template.restart_policy
    if policy is None or not policy.max_attempts:
        return True
    window = (policy.window or 0) / NS
    # Every task of the slot with this spec but the first one was a restart.
    tries = [
        t
        for t in [task, *history]
        if same_task_spec(t.spec, task.spec)
        and (not window or (t.created_at and parse_time(t.created_at) >= now - window))
    ]
    restarts = len({t.id for t in tries}) - 1
    return restarts < policy.max_attempts


def promote_ready(
    plan: Plan,
    service: Service,
    task: Task,
    others: Iterable[Task],
    node_ok: Callable[[str | None], bool],
    now: float,
    times: TaskTimes,
) -> None:
    """A task created with desired `ready` becomes `running` once the slot's previous task is
    no longer live (stop-first updates, restarts) and, when that task ended by itself, the
    restart delay since it ended has passed. Tasks on nodes that are gone do not block, nor do
    tasks shut down before any node got them (they never run)."""
    if task.desired_state != TaskState.READY:
        return
    due = now
    for prev in others:
        if prev.id == task.id:
            continue
        if live(prev, node_ok):
            return  # still live: wait for it to stop
        if prev.status.state in ENDED:
            due = max(due, times.ended_at(prev) + restart_delay(service) / NS)
    if due > now:
        plan.wake(due)
        return
    # A job's task runs to completion (SwarmKit's restart supervisor: `StartNow`).
    plan.desired[task.id] = TaskState.COMPLETE if task.job_iteration else TaskState.RUNNING
