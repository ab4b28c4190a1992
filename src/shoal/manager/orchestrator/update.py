"""How a rolling update (or rollback) is going: its config, its failures, its end.

Pure: `_reconcile` in `services.py` asks these questions once per pass. Docker's words:
`update paused due to failure or early termination of task <id>`, `update rolled back due
to failure or early termination of task <id>`, `rollback paused due to …`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from shoal.api.models import Service, Task, UpdateConfig, parse_time
from shoal.api.models import now as now_str
from shoal.api.states import TaskState
from shoal.manager.orchestrator.plan import NS, state, up_to_date

ENDED = (TaskState.FAILED, TaskState.REJECTED, TaskState.COMPLETE)

DEFAULT_MONITOR = 5_000_000_000


def rolling_back(service: Service) -> bool:
    return service.update_status is not None and (service.update_status.state or "").startswith(
        "rollback"
    )


def config(service: Service) -> UpdateConfig:
    cfg = service.spec.rollback_config if rolling_back(service) else service.spec.update_config
    return cfg or UpdateConfig()


def halted(service: Service) -> bool:
    """A paused update goes no further until the service is updated again."""
    status = service.update_status
    return status is not None and status.state in ("paused", "rollback_paused")


def first_failure(
    service: Service, tasks: Iterable[Task], total: int, ran_for: Mapping[str, float]
) -> Task | None:
    """The task whose failure stops the running update, if failures now exceed the update's
    max failure ratio. A failure is a task of the new spec, created since the update started,
    that failed, was rejected or exited by itself before it ran or within the monitor period
    after it ran. `ran_for`: how long the orchestrator saw ended tasks running (task ID →
    seconds); a task not in it counts as never started."""
    status = service.update_status
    if status is None or status.state not in ("updating", "rollback_started"):
        return None
    since = parse_time(status.started_at) if status.started_at else 0.0
    monitor = monitor_s(service)

    def failure(t: Task) -> bool:
        if state(t) not in ENDED:  # a task stopped on request ends `shutdown`
            return False
        if not (t.created_at and parse_time(t.created_at) >= since and up_to_date(t, service)):
            return False
        return ran_for.get(t.id, 0.0) <= monitor

    failed = sorted((t for t in tasks if failure(t)), key=lambda t: t.created_at or "")
    ratio = config(service).max_failure_ratio or 0.0
    if failed and len(failed) > ratio * max(total, 1):
        return failed[0]
    return None


def on_failure(service: Service, task: Task) -> tuple[dict[str, str], bool]:
    """(the UpdateStatus to set, whether to roll the spec back) for a failed update."""
    why = f"due to failure or early termination of task {task.id}"
    if rolling_back(service):
        return {"State": "rollback_paused", "Message": f"rollback paused {why}"}, False
    action = config(service).failure_action or "pause"
    if action == "rollback":
        return {
            "State": "rollback_started",
            "StartedAt": now_str(),
            "Message": f"update rolled back {why}",
        }, True
    return {"State": "paused", "Message": f"update paused {why}"}, False


def monitor_s(service: Service) -> float:
    cfg = config(service)
    return (cfg.monitor if cfg.monitor is not None else DEFAULT_MONITOR) / NS


def settle_s(service: Service) -> float:
    """How long the last batch is watched before the update completes: the monitor period,
    or the delay plus a second when the delay is not shorter (SwarmKit's rule)."""
    delay = (config(service).delay or 0) / NS
    monitor = monitor_s(service)
    return delay + 1.0 if delay >= monitor else monitor


def finished(service: Service, dirty: bool, in_progress: bool) -> dict[str, str] | None:
    """The `UpdateStatus` change this pass makes: an update starts when tasks are found out of
    date, and completes (or its rollback does) once every slot runs the service's spec."""
    status = service.update_status
    current = status.state if status is not None else None
    if dirty and current in (None, "completed", "rollback_completed"):
        return {"State": "updating", "StartedAt": now_str(), "Message": "update in progress"}
    if not dirty and not in_progress:
        if current == "updating":
            return {"State": "completed", "CompletedAt": now_str(), "Message": "update completed"}
        if current == "rollback_started":
            return {
                "State": "rollback_completed",
                "CompletedAt": now_str(),
                "Message": "rollback completed",
            }
    return None
