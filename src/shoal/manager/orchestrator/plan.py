"""What an orchestrator pass decides, and the small pure helpers every mode shares.

A `Plan` is data: tasks to create, desired-state changes, service-status changes and the
earliest time the service must be looked at again (a restart delay running out). The loop in
`orchestrator.py` turns it into store writes; everything here is pure and clock-free.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from shoal.api.models import (
    JobIteration,
    Service,
    Task,
    TaskSpec,
    TaskStatus,
)
from shoal.api.naming import new_id
from shoal.api.states import TaskState

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
    """The orchestrator still wants this task: desired ready or running — or `complete`, a
    job's task, which runs until its container exits (as SwarmKit's jobs orchestrator)."""
    return desired(task) <= TaskState.COMPLETE


def live(task: Task, node_ok: Callable[[str | None], bool]) -> bool:
    """The task runs, or may still: not ended, on a node that is there, and not shut down
    while still waiting for a node (the scheduler gives a node only to wanted tasks)."""
    if state(task) > TaskState.RUNNING or not node_ok(task.node_id):
        return False
    return runnable(task) or state(task) >= TaskState.ASSIGNED


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
