"""What an orchestrator pass decides, and the small pure helpers every mode shares.

A `Plan` is data: tasks to create, desired-state changes, service-status changes and the
earliest time the service must be looked at again (a restart delay running out). The loop in
`orchestrator.py` turns it into store writes; everything here is pure and clock-free.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from shoal.api.models import (
    JobIteration,
    Service,
    Task,
    TaskSpec,
    TaskStatus,
    parse_time,
    same_task_spec,
)
from shoal.api.naming import new_id
from shoal.api.states import TaskState

DEFAULT_RESTART_DELAY = 5_000_000_000  # ns, SwarmKit's default
NS = 1e9


@dataclass
class Plan:
    create: list[Task] = field(default_factory=list)
    desired: dict[str, TaskState] = field(default_factory=dict)  # task ID → new desired state
    update_status: dict[str, str] | None = None  # UpdateStatus fields to set on the service
    rollback: bool = False  # the update failed: the service goes back to its previous spec
    wake_at: float | None = None

    def wake(self, at: float) -> None:
        self.wake_at = at if self.wake_at is None else min(self.wake_at, at)

    def set_desired(self, task: Task, state: TaskState) -> None:
        if task.desired_state < state:
            self.desired[task.id] = state

    def __bool__(self) -> bool:
        return bool(self.create or self.desired or self.update_status)


def state(task: Task) -> TaskState:
    return task.status.state


def desired(task: Task) -> TaskState:
    return task.desired_state


def runnable(task: Task) -> bool:
    """The orchestrator still wants this task (desired ready or running)."""
    return desired(task) <= TaskState.RUNNING


def live(task: Task, node_ok: Callable[[str | None], bool]) -> bool:
    """The task runs, or may still: not ended, on a node that is there, and not shut down
    while still waiting for a node (the scheduler gives a node only to wanted tasks)."""
    if state(task) > TaskState.RUNNING or not node_ok(task.node_id):
        return False
    return runnable(task) or state(task) >= TaskState.ASSIGNED


def up_to_date(task: Task, service: Service) -> bool:
    return same_task_spec(task.spec, service.spec.task_template)


def new_task(
    service: Service,
    *,
    slot: int | None = None,
    node_id: str | None = None,
    desired_state: TaskState = TaskState.RUNNING,
    job_iteration: int | None = None,
) -> Task:
    spec: TaskSpec = service.spec.task_template.model_copy(deep=True)
    return Task(
        id=new_id(),
        service_id=service.id,
        slot=slot,
        node_id=node_id,
        spec=spec,
        desired_state=desired_state,
        status=TaskStatus(state=TaskState.NEW, message="created"),
        job_iteration=JobIteration(index=job_iteration) if job_iteration is not None else None,
    )


def restart_condition(service: Service) -> str:
    policy = service.spec.task_template.restart_policy
    cond = policy.condition if policy and policy.condition else "any"
    if service.spec.mode.kind.endswith("job") and cond == "any":
        return "on-failure"  # a job's completed task is done, whatever the policy says
    return cond


def restart_delay(service: Service) -> int:
    policy = service.spec.task_template.restart_policy
    if policy is None or policy.delay is None:
        return DEFAULT_RESTART_DELAY
    return policy.delay


def should_restart(service: Service, task: Task, history: Iterable[Task], now: float) -> bool:
    """SwarmKit's restart supervisor: condition, then max attempts within the window.

    `history` holds the other tasks of the same slot (or node, for global services)."""
    cond = restart_condition(service)
    if cond == "none":
        return False
    if cond == "on-failure" and state(task) == TaskState.COMPLETE:
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
) -> None:
    """A task created with desired `ready` becomes `running` once the slot's previous task is
    no longer live (stop-first updates, restarts) and, when that task ended by itself, the
    restart delay since it ended has passed. Tasks on nodes that are gone do not block, nor do
    tasks shut down before any node got them (they never run)."""
    if desired(task) != TaskState.READY:
        return
    due = now
    for prev in others:
        if prev.id == task.id:
            continue
        if live(prev, node_ok):
            return  # still live: wait for it to stop
        if state(prev) in (TaskState.FAILED, TaskState.COMPLETE, TaskState.REJECTED):
            ended = parse_time(prev.status.timestamp) if prev.status.timestamp else now
            due = max(due, ended + restart_delay(service) / NS)
    if due > now:
        plan.wake(due)
        return
    plan.desired[task.id] = TaskState.RUNNING
