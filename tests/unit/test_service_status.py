"""`ServiceStatus` (`GET /services?status=true`), counted as SwarmKit's `ListServiceStatuses`."""

from __future__ import annotations

from typing import Any

from test_orchestrator_helpers import service, task

from shoal.api.models import Node, NodeStatus, Service, Task
from shoal.manager.controlapi.services import status


class Tasks:
    def __init__(self, *tasks: Task) -> None:
        self._tasks = tasks

    def nodes(self) -> list[Node]:
        return [Node(id="n1", status=NodeStatus(state="ready"))]

    def tasks_of(self, service_id: str) -> list[Task]:
        return [t for t in self._tasks if t.service_id == service_id]


def counts(svc: Service, *tasks: Task) -> tuple[int, int, int]:
    s = status(Tasks(*tasks), svc)  # type: ignore[arg-type]
    return s.running_tasks, s.desired_tasks, s.completed_tasks


def job_task(svc: Service, slot: int | None, state: str, **kw: Any) -> Task:
    return task(svc, slot, state, desired=kw.pop("desired", "complete"), iteration=0, **kw)


def test_replicated_desires_its_replicas() -> None:
    svc = service(replicas=3)
    assert counts(svc, task(svc, 1), task(svc, 2, "starting")) == (1, 3, 0)


def test_a_replicated_job_desires_its_max_concurrent() -> None:
    svc = service(mode="replicated-job", max_concurrent=1, total_completions=2, iteration=0)
    done = [job_task(svc, s, "complete") for s in (0, 1)]
    assert counts(svc, *done) == (0, 1, 2)


def test_a_global_job_desires_its_unfinished_tasks() -> None:
    svc = service(mode="global-job", iteration=0)
    assert counts(svc, job_task(svc, None, "complete")) == (0, 0, 1)
    assert counts(svc, job_task(svc, None, "running")) == (1, 1, 0)


def test_global_desires_its_tasks_desired_running() -> None:
    svc = service(mode="global")
    ts = [task(svc, None, node="n1"), task(svc, None, "shutdown", desired="shutdown")]
    assert counts(svc, *ts) == (1, 1, 0)


def test_a_job_counts_only_its_current_iteration() -> None:
    svc = service(mode="replicated-job", max_concurrent=2, total_completions=2, iteration=1)
    old = task(svc, 0, "complete", desired="complete", iteration=0)
    assert counts(svc, old) == (0, 2, 0)
