"""The task reaper's pure decision, `doomed()`: history per slot (TaskHistoryRetentionLimit,
default 5), removed tasks once stopped, tasks of deleted services."""

from __future__ import annotations

import pytest
from test_orchestrator_helpers import T0, all_ok, apply, service, task

from shoal.api.defaults import TASK_HISTORY_RETENTION as DEFAULT_RETENTION
from shoal.api.models import Task
from shoal.manager.orchestrator.reaper import doomed
from shoal.manager.orchestrator.replicated import reconcile_replicated

SVC = service("svc1", replicas=1)
OTHER = service("svc2", replicas=1)
LIVE = {"svc1": None, "svc2": None}


def history(svc, slot, n_old: int, *, current: str | None = "running", node="n1") -> list[Task]:  # noqa: ANN001
    """`n_old` shut-down tasks in a slot (oldest first) plus, optionally, the current one."""
    out = [
        task(svc, slot, "shutdown", desired="shutdown", node=node, created=T0 + i)
        for i in range(n_old)
    ]
    if current is not None:
        out.append(task(svc, slot, current, node=node, created=T0 + n_old))
    return out


def ids(tasks: list[Task]) -> set[str]:
    return {t.id for t in tasks}


def test_default_retention_is_five() -> None:
    assert DEFAULT_RETENTION == 5


def test_slot_within_retention_is_kept() -> None:
    ts = history(SVC, 1, 4)  # 5 tasks in all
    assert doomed(ts, 5, LIVE) == []


def test_history_beyond_retention_deletes_the_oldest() -> None:
    ts = history(SVC, 1, 7)  # 8 tasks: 7 old + the running one
    victims = doomed(ts, 5, LIVE)
    assert ids(victims) == ids(ts[:3])  # 8 - 5 oldest


def test_retention_never_deletes_the_running_task() -> None:
    ts = history(SVC, 1, 3)
    victims = doomed(ts, 1, LIVE)
    assert ids(victims) == ids(ts[:3])
    assert ts[-1].id not in ids(victims)


def test_retention_zero_keeps_only_the_current_task() -> None:
    ts = history(SVC, 1, 4)
    assert ids(doomed(ts, 0, LIVE)) == ids(ts[:4])


def test_retention_does_not_delete_a_stopping_task() -> None:
    """Desired shutdown but still running: not history yet."""
    old = [task(SVC, 1, "shutdown", desired="shutdown", created=T0 + i) for i in range(5)]
    stopping = task(SVC, 1, "running", desired="shutdown", created=T0 + 5)
    ready = task(SVC, 1, "new", desired="ready", created=T0 + 6)
    victims = doomed([*old, stopping, ready], 5, LIVE)
    assert stopping.id not in ids(victims)
    assert ready.id not in ids(victims)
    assert ids(victims) == ids(old[:2])


def test_negative_retention_keeps_all_history() -> None:
    ts = history(SVC, 1, 20)
    assert doomed(ts, -1, LIVE) == []


def test_history_is_counted_per_slot_and_per_service() -> None:
    s1 = history(SVC, 1, 4)  # 5: kept
    s2 = history(SVC, 2, 6)  # 7: 2 go
    other = history(OTHER, 1, 4)  # 5: kept (same slot number, other service)
    victims = doomed([*s1, *s2, *other], 5, LIVE)
    assert ids(victims) == ids(s2[:2])


def test_global_history_is_counted_per_node() -> None:
    n1 = history(SVC, None, 6, node="n1")
    n2 = history(SVC, None, 3, node="n2")
    victims = doomed([*n1, *n2], 5, LIVE)
    assert ids(victims) == ids(n1[:2])


def test_oldest_by_creation_time_go_first_whatever_the_input_order() -> None:
    ts = history(SVC, 1, 7)
    victims = doomed(list(reversed(ts)), 5, LIVE)
    assert ids(victims) == ids(ts[:3])


def test_failed_and_complete_tasks_are_history_too() -> None:
    ts = [
        task(SVC, 1, st, desired="shutdown", created=T0 + i)
        for i, st in enumerate(["failed", "complete", "rejected", "shutdown", "failed", "failed"])
    ] + [task(SVC, 1, "running", created=T0 + 10)]
    victims = doomed(ts, 5, LIVE)
    assert ids(victims) == ids(ts[:2])


def test_never_scheduled_tasks_told_to_stop_are_history() -> None:
    """A task that never reached a node (pending, desired shutdown — e.g. replaced during an
    update while no node fitted) will never move again: SwarmKit's reaper counts it as
    history (`state < assigned && desired > running`). Otherwise such tasks pile up."""
    stuck = [
        task(SVC, 1, "pending", desired="shutdown", node=None, created=T0 + i) for i in range(7)
    ]
    current = task(SVC, 1, "pending", node=None, created=T0 + 10)
    victims = doomed([*stuck, current], 5, LIVE)
    assert ids(victims) == ids(stuck[:3])


# ---------------------------------------------------------------- removed tasks


@pytest.mark.parametrize(
    ("state", "deleted"),
    [
        ("running", False),
        ("starting", False),
        ("assigned", False),
        ("shutdown", True),
        ("failed", True),
        ("complete", True),
        ("rejected", True),
        ("new", True),  # never reached a node
        ("pending", True),
    ],
)
def test_removed_task_deleted_only_once_stopped(state: str, deleted: bool) -> None:
    t = task(SVC, 4, state, desired="remove")
    assert (doomed([t], 5, LIVE) == [t]) is deleted


def test_removed_tasks_do_not_count_as_slot_history() -> None:
    ts = history(SVC, 1, 4)
    removed = task(SVC, 1, "running", desired="remove", created=T0 + 50)
    assert doomed([*ts, removed], 5, LIVE) == []


def test_removed_tasks_deleted_even_when_retention_is_negative() -> None:
    t = task(SVC, 2, "shutdown", desired="remove")
    assert doomed([t], -1, LIVE) == [t]


# ---------------------------------------------------------------- deleted services


@pytest.mark.parametrize(
    ("state", "deleted"),
    [("running", False), ("shutdown", True), ("failed", True), ("new", True), ("starting", False)],
)
def test_tasks_of_deleted_service_deleted_once_stopped(state: str, deleted: bool) -> None:
    t = task(SVC, 1, state, desired="remove")
    assert (doomed([t], 5, {"svc2": None}) == [t]) is deleted
    # Even before the orchestrator got round to setting desired `remove`.
    u = task(SVC, 1, state, desired="running")
    assert (doomed([u], 5, set()) == [u]) is deleted


def test_all_history_of_deleted_service_goes() -> None:
    ts = history(SVC, 1, 3, current="shutdown")
    assert ids(doomed(ts, 5, set())) == ids(ts)


# ---------------------------------------------------------------- with the restart policy


def test_reaper_keeps_enough_history_for_max_attempts() -> None:
    """MaxAttempts is counted from the slot's history, so the reaper must not prune it below
    MaxAttempts + 1 tasks (SwarmKit raises the limit for such services). With the default
    retention of 5 and MaxAttempts 7, restarts must still stop after 7."""
    svc = service("svc1", replicas=1, restart={"Condition": "any", "MaxAttempts": 7, "Delay": 0})
    tasks = [task(svc, 1, "running", created=T0)]
    now = T0
    runs = 1
    for _ in range(30):
        now += 1
        for t in tasks:  # whatever runs, fails
            if t.status.state in ("new", "running") and t.desired_state == "running":
                t.status.state = "failed"
        plan = reconcile_replicated(svc, tasks, all_ok, now)
        runs += len(plan.create)
        tasks = apply(tasks, plan, now=now)
        for t in tasks:
            if t.desired_state == "shutdown" and t.status.state in ("new", "running"):
                t.status.state = "shutdown"
        dead = {t.id for t in doomed(tasks, DEFAULT_RETENTION, {"svc1": svc})}
        tasks = [t for t in tasks if t.id not in dead]
    assert runs == 8  # the first run and 7 restarts


def test_a_pending_job_task_is_no_history() -> None:
    """A job's task waits for a node with desired state `complete` (it is wanted): only one
    told to shut down before any node got it is history."""
    job = service("job1", mode="replicated-job")
    stuck = [
        task(job, 0, "failed", desired="shutdown", created=T0 + i, iteration=0) for i in range(5)
    ]
    waiting = task(job, 0, "pending", desired="complete", node=None, created=T0 - 1, iteration=0)
    victims = doomed([*stuck, waiting], 5, {"job1": job})
    assert ids(victims) == ids(stuck[:1])
