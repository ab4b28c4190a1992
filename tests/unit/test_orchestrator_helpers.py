"""Builders for orchestrator unit tests: services, tasks and nodes as pydantic models, and a
tiny "apply the plan" step so multi-pass scenarios read like the store would see them.

Times are POSIX seconds; every reconcile call gets an explicit `now`."""

from __future__ import annotations

import datetime as _dt
from collections import Counter
from collections.abc import Iterable
from typing import Any

from shoal.api.models import (
    JobIteration,
    JobStatus,
    Node,
    Service,
    Task,
    UpdateStatus,
    format_time,
)
from shoal.api.states import TaskState
from shoal.manager.orchestrator.plan import Plan

T0 = 1_700_000_000.0
SEC = 1_000_000_000


def ts(t: float) -> str:
    """POSIX seconds → Docker's RFC 3339 nanosecond string."""
    return format_time(_dt.datetime.fromtimestamp(t, _dt.UTC))


def task_template(
    image: str = "busybox:1",
    *,
    restart: dict[str, Any] | None = None,
    constraints: list[str] | None = None,
) -> dict[str, Any]:
    tmpl: dict[str, Any] = {"ContainerSpec": {"Image": image}}
    if restart is not None:
        tmpl["RestartPolicy"] = restart
    if constraints:
        tmpl["Placement"] = {"Constraints": constraints}
    return tmpl


def service(
    sid: str = "svc1",
    *,
    replicas: int | None = 3,
    mode: str = "replicated",
    image: str = "busybox:1",
    restart: dict[str, Any] | None = None,
    update: dict[str, Any] | None = None,
    update_status: dict[str, Any] | None = None,
    max_concurrent: int | None = None,
    total_completions: int | None = None,
    iteration: int | None = None,
    constraints: list[str] | None = None,
) -> Service:
    if mode == "replicated":
        m: dict[str, Any] = {"Replicated": {} if replicas is None else {"Replicas": replicas}}
    elif mode == "global":
        m = {"Global": {}}
    elif mode == "replicated-job":
        job: dict[str, Any] = {}
        if max_concurrent is not None:
            job["MaxConcurrent"] = max_concurrent
        if total_completions is not None:
            job["TotalCompletions"] = total_completions
        m = {"ReplicatedJob": job}
    elif mode == "global-job":
        m = {"GlobalJob": {}}
    else:
        raise ValueError(mode)
    spec: dict[str, Any] = {
        "Name": "web",
        "TaskTemplate": task_template(image, restart=restart, constraints=constraints),
        "Mode": m,
    }
    if update is not None:
        spec["UpdateConfig"] = update
    svc = Service.model_validate({"ID": sid, "Spec": spec})
    if update_status is not None:
        svc.update_status = UpdateStatus.model_validate(update_status)
    if mode.endswith("job"):
        svc.job_status = JobStatus(job_iteration=JobIteration(index=iteration or 0))
    return svc


_counter = Counter[str]()


def task(
    svc: Service,
    slot: int | None,
    state: str = "running",
    *,
    desired: str = "running",
    node: str | None = "n1",
    created: float = T0,
    ended: float | None = None,
    image: str | None = None,
    tid: str | None = None,
    iteration: int | None = None,
    exit_code: int | None = None,
) -> Task:
    """A task of `svc` in `slot` (replicated) or on `node` (global: pass slot=None).
    `image` gives the task an older spec than the service's; `ended` is when its status was
    reported (the status timestamp and the store's `UpdatedAt`)."""
    tmpl = svc.spec.task_template.to_api()
    if image is not None:
        tmpl["ContainerSpec"]["Image"] = image
    if tid is None:
        _counter["t"] += 1
        tid = f"t{_counter['t']:04d}"
    data: dict[str, Any] = {
        "ID": tid,
        "ServiceID": svc.id,
        "Slot": slot,
        "NodeID": node,
        "Spec": tmpl,
        "DesiredState": desired,
        "CreatedAt": ts(created),
        "UpdatedAt": ts(ended if ended is not None else created),
        "Status": {"State": state, "Timestamp": ts(ended if ended is not None else created)},
    }
    if exit_code is not None:
        data["Status"]["ContainerStatus"] = {"ExitCode": exit_code}
    if iteration is not None:
        data["JobIteration"] = {"Index": iteration}
    return Task.model_validate({k: v for k, v in data.items() if v is not None})


def node(
    nid: str,
    *,
    state: str = "ready",
    availability: str = "active",
    labels: dict[str, str] | None = None,
    role: str = "worker",
) -> Node:
    return Node.model_validate(
        {
            "ID": nid,
            "Spec": {"Labels": labels or {}, "Role": role, "Availability": availability},
            "Description": {"Hostname": f"host-{nid}", "Platform": {"OS": "linux"}},
            "Status": {"State": state},
        }
    )


def all_ok(_node_id: str | None) -> bool:
    return True


def nodes_ok(*bad: str):  # noqa: ANN201 - a NodeOk
    """node_ok that says no for the given node IDs."""

    def ok(node_id: str | None) -> bool:
        return node_id not in bad

    return ok


def apply(tasks: Iterable[Task], plan: Plan, *, now: float, node: str | None = "n1") -> list[Task]:
    """The store after `plan`: desired-state changes applied (forward only, like the
    orchestrator's writer) and created tasks added with `created_at = now`. The scheduler is
    not part of these tests, so a created task without a node is put on `node` (state `new`)."""

    out = []
    for t in tasks:
        t = t.model_copy(deep=True)
        if t.id in plan.desired:
            new = plan.desired[t.id]
            if new > t.desired_state:
                t.desired_state = new
        out.append(t)
    for c in plan.create:
        c = c.model_copy(deep=True)
        c.created_at = c.updated_at = ts(now)
        c.status.timestamp = ts(now)
        if c.node_id is None:
            c.node_id = node
        if c.id in plan.desired:
            c.desired_state = plan.desired[c.id]
        out.append(c)
    return out


def set_state(tasks: list[Task], tid: str, state: str, *, at: float) -> None:
    """The agent reports a new observed state for task `tid` (the store writes it at `at`)."""
    for t in tasks:
        if t.id == tid:
            t.status.state = TaskState(state)
            t.status.timestamp = t.updated_at = ts(at)
            return
    raise KeyError(tid)


def by_id(tasks: Iterable[Task]) -> dict[str, Task]:
    return {t.id: t for t in tasks}


def live(tasks: Iterable[Task]) -> list[Task]:
    """Tasks the orchestrator still wants (desired ready/running)."""
    return [t for t in tasks if t.desired_state in ("running", "ready")]


def agent_step(tasks: list[Task], *, at: float, start: bool = True, stop: bool = True) -> None:
    """A perfect agent: stops tasks told to stop, starts tasks told to run (in place)."""
    for t in tasks:
        active = t.status.state in (
            "new",
            "pending",
            "assigned",
            "accepted",
            "preparing",
            "ready",
            "starting",
            "running",
        )
        if stop and active and t.desired_state in ("shutdown", "remove"):
            t.status.state = TaskState.SHUTDOWN
            t.status.timestamp = t.updated_at = ts(at)
        elif start and t.desired_state == "running" and active and t.status.state != "running":
            t.status.state = TaskState.RUNNING
            t.status.timestamp = t.updated_at = ts(at)
