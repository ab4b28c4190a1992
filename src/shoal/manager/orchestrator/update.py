"""Rolling updates (and rollbacks), pure: which out-of-date slots get their new task in this
pass, when the next batch is due, whether failures stop the update, and its status.

`slots.reconcile_slots` gathers, per pass, the slots whose newest task runs an older spec
(`dirty`), the slots still changing over (`in_progress`) and when the last updated one came up;
`advance` decides the rest. Docker's words: `update paused due to failure or early termination
of task <id>`, `update rolled back due to failure or early termination of task <id>`,
`rollback paused due to …`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from shoal.api.defaults import UPDATE_MONITOR
from shoal.api.models import Service, Task, UpdateConfig, parse_time, timestamp, up_to_date
from shoal.manager.orchestrator.plan import NS, Plan
from shoal.manager.orchestrator.restart import ENDED
from shoal.manager.orchestrator.times import TaskTimes

Slot = int | str  # a slot number (replicated) or a node ID (global)


@dataclass
class Progress:
    """What one pass over the slots found."""

    dirty: list[Slot] = field(default_factory=list)  # newest task out of date, in slot order
    in_progress: int = 0  # slots whose new task is not running yet, or whose old one still is
    last_done: float = 0.0  # when the latest updated slot's task came up (orchestrator clock)


def rolling_back(service: Service) -> bool:
    status = service.update_status
    return status is not None and (status.state or "").startswith("rollback")


def config(service: Service) -> UpdateConfig:
    cfg = service.spec.rollback_config if rolling_back(service) else service.spec.update_config
    return cfg or UpdateConfig()


def halted(service: Service) -> bool:
    """A paused update goes no further until the service is updated again."""
    status = service.update_status
    return status is not None and status.state in ("paused", "rollback_paused")


def advance(
    plan: Plan,
    service: Service,
    progress: Progress,
    tasks: Iterable[Task],
    total: int,
    now: float,
    times: TaskTimes,
    replace: Callable[[Slot, bool], None],
) -> None:
    """Start the next batch if it is due: `replace(slot, start_first)` creates a slot's new
    task (and, stop-first, shuts the old one down). `total` is the number of slots."""
    cfg = config(service)
    parallelism = 1 if cfg.parallelism is None else cfg.parallelism
    dirty = progress.dirty
    budget = len(dirty) if parallelism == 0 else max(parallelism - progress.in_progress, 0)
    delay = (cfg.delay or 0) / NS
    if dirty and budget and delay and progress.last_done + delay > now:
        plan.wake(progress.last_done + delay)  # `--update-delay` after the previous batch
        budget = 0
    failure = first_failure(service, tasks, total, times)
    if failure is not None and (cfg.failure_action or "pause") != "continue":
        plan.update_status, plan.rollback = on_failure(service, failure, now)
        return
    if halted(service):
        budget = 0
    for slot in dirty[:budget]:
        replace(slot, cfg.order == "start-first")
    settled_at = progress.last_done + settle_s(service)  # the last batch is watched
    settling = settled_at > now
    if settling and not dirty and not progress.in_progress:
        plan.wake(settled_at)
    plan.update_status = finished(service, bool(dirty), bool(progress.in_progress) or settling, now)


def first_failure(
    service: Service, tasks: Iterable[Task], total: int, times: TaskTimes
) -> Task | None:
    """The task whose failure stops the running update, if failures now exceed the update's
    max failure ratio. A failure is a task of the new spec, created since the update started,
    that failed, was rejected or exited by itself before it ran or within the monitor period
    after it ran (as long as the orchestrator saw it run: `times`)."""
    status = service.update_status
    if status is None or status.state not in ("updating", "rollback_started"):
        return None
    since = parse_time(status.started_at) if status.started_at else 0.0
    monitor = monitor_s(service)

    def failure(t: Task) -> bool:
        if t.status.state not in ENDED:  # a task stopped on request ends `shutdown`
            return False
        if not (t.created_at and parse_time(t.created_at) >= since and up_to_date(t, service)):
            return False
        return times.ran_for(t) <= monitor

    failed = sorted((t for t in tasks if failure(t)), key=lambda t: t.created_at or "")
    ratio = config(service).max_failure_ratio or 0.0
    if failed and len(failed) > ratio * max(total, 1):
        return failed[0]
    return None


def on_failure(service: Service, task: Task, now: float) -> tuple[dict[str, str], bool]:
    """(the UpdateStatus to set, whether to roll the spec back) for a failed update."""
    why = f"due to failure or early termination of task {task.id}"
    if rolling_back(service):
        return {"State": "rollback_paused", "Message": f"rollback paused {why}"}, False
    action = config(service).failure_action or "pause"
    if action == "rollback":
        return {
            "State": "rollback_started",
            "StartedAt": timestamp(now),
            "Message": f"update rolled back {why}",
        }, True
    return {"State": "paused", "Message": f"update paused {why}"}, False


def monitor_s(service: Service) -> float:
    cfg = config(service)
    return (cfg.monitor if cfg.monitor is not None else UPDATE_MONITOR) / NS


def settle_s(service: Service) -> float:
    """How long the last batch is watched before the update completes: the monitor period,
    or the delay plus a second when the delay is not shorter (SwarmKit's rule)."""
    delay = (config(service).delay or 0) / NS
    monitor = monitor_s(service)
    return delay + 1.0 if delay >= monitor else monitor


def finished(service: Service, dirty: bool, in_progress: bool, now: float) -> dict[str, str] | None:
    """The `UpdateStatus` change this pass makes: an update starts when tasks are found out of
    date, and completes (or its rollback does) once every slot runs the service's spec."""
    status = service.update_status
    current = status.state if status is not None else None
    if dirty and current in (None, "completed", "rollback_completed"):
        return {"State": "updating", "StartedAt": timestamp(now), "Message": "update in progress"}
    if not dirty and not in_progress:
        if current == "updating":
            return {
                "State": "completed", "CompletedAt": timestamp(now), "Message": "update completed"
            }  # fmt: skip
        if current == "rollback_started":
            return {
                "State": "rollback_completed",
                "CompletedAt": timestamp(now),
                "Message": "rollback completed",
            }
    return None
