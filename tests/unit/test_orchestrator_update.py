"""Rolling updates in reconcile_replicated / reconcile_global: parallelism, stop-first and
start-first, and the service's UpdateStatus."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from test_orchestrator_helpers import (
    SEC,
    T0,
    agent_step,
    all_ok,
    apply,
    by_id,
    live,
    service,
    task,
    ts,
)

from shoal.api.models import Service, Task, up_to_date
from shoal.manager.orchestrator.global_ import reconcile_global
from shoal.manager.orchestrator.orchestrator import Orchestrator
from shoal.manager.orchestrator.plan import Plan
from shoal.manager.orchestrator.replicated import reconcile_replicated
from shoal.manager.orchestrator.times import TaskTimes
from shoal.store.store import Event
from shoal.testing.store import MemoryStore

NEW, OLD = "busybox:2", "busybox:1"


def outdated(svc: Service, replicas: int, *, node: str = "n1") -> list[Task]:
    """`replicas` running tasks of an older spec (image busybox:1); the service wants busybox:2."""
    return [task(svc, s, image=OLD, node=node, created=T0 - 100) for s in range(1, replicas + 1)]


def unavailable(tasks: list[Task], keys: list) -> int:  # noqa: ANN001
    """Slots without a running task the orchestrator still wants."""
    up = {t.slot for t in tasks if t.status.state == "running" and t.desired_state == "running"}
    return sum(1 for k in keys if k not in up)


def converged(svc: Service, tasks: list[Task], replicas: int) -> bool:
    wanted = [t for t in live(tasks)]
    return (
        len(wanted) == replicas
        and all(up_to_date(t, svc) and t.status.state == "running" for t in wanted)
        and not any(t.status.state == "running" and t.desired_state != "running" for t in tasks)
    )


def run_update(
    svc: Service,
    tasks: list[Task],
    replicas: int,
    check: Callable[[list[Task]], None],
    *,
    max_passes: int = 60,
) -> tuple[list[Task], int]:
    """Drive orchestrator passes and a perfect agent until converged; `check` sees every
    intermediate state. Returns the final tasks and the number of passes."""
    now = T0
    for n in range(max_passes):
        plan = reconcile_replicated(svc, tasks, all_ok, now)
        tasks = apply(tasks, plan, now=now)
        check(tasks)
        now += 0.1
        agent_step(tasks, at=now)
        check(tasks)
        now += 0.1
        if converged(svc, tasks, replicas):
            return tasks, n
    raise AssertionError("rolling update did not converge")


# ---------------------------------------------------------------- stop-first


def test_stop_first_replaces_one_slot_at_a_time_by_default() -> None:
    svc = service(replicas=3, image=NEW)
    tasks = outdated(svc, 3)
    plan = reconcile_replicated(svc, tasks, all_ok, T0)
    assert len(plan.create) == 1
    new = plan.create[0]
    assert new.desired_state == "ready"  # waits for the old task to stop
    assert new.spec.container_spec.image == NEW
    (old_id,) = plan.desired
    assert plan.desired[old_id] == "shutdown"
    assert by_id(tasks)[old_id].slot == new.slot


def test_stop_first_new_task_waits_in_ready_until_old_task_stopped() -> None:
    svc = service(replicas=1, image=NEW)
    tasks = outdated(svc, 1)
    tasks = apply(tasks, reconcile_replicated(svc, tasks, all_ok, T0), now=T0)
    new = next(t for t in tasks if t.desired_state == "ready")
    # The old task is still running: the new one stays ready.
    assert reconcile_replicated(svc, tasks, all_ok, T0 + 30).desired == {}
    # The old task stopped: the new one may run, without a restart delay.
    agent_step(tasks, at=T0 + 31, start=False)
    plan = reconcile_replicated(svc, tasks, all_ok, T0 + 31)
    assert plan.desired == {new.id: "running"}
    assert plan.create == []


def test_stop_first_next_slot_waits_until_new_task_runs() -> None:
    svc = service(replicas=2, image=NEW)
    tasks = outdated(svc, 2)
    tasks = apply(tasks, reconcile_replicated(svc, tasks, all_ok, T0), now=T0)
    agent_step(tasks, at=T0 + 1, start=False)  # the old task stops
    tasks = apply(tasks, reconcile_replicated(svc, tasks, all_ok, T0 + 1), now=T0 + 1)
    # New task desired running but not yet running: the second slot is not touched.
    plan = reconcile_replicated(svc, tasks, all_ok, T0 + 2)
    assert plan.create == [] and plan.desired == {}
    agent_step(tasks, at=T0 + 3)
    plan = reconcile_replicated(svc, tasks, all_ok, T0 + 3)
    assert len(plan.create) == 1
    untouched = [
        t for t in tasks if t.spec.container_spec.image == OLD and t.desired_state == "running"
    ]
    assert len(untouched) == 1
    assert plan.create[0].slot == untouched[0].slot
    assert plan.desired == {untouched[0].id: "shutdown"}


@pytest.mark.parametrize(("replicas", "parallelism"), [(3, 1), (6, 2), (5, 3)])
def test_stop_first_never_has_more_than_parallelism_slots_down(
    replicas: int, parallelism: int
) -> None:
    svc = service(replicas=replicas, image=NEW, update={"Parallelism": parallelism})
    keys = list(range(1, replicas + 1))
    seen: list[int] = []

    def check(tasks: list[Task]) -> None:
        down = unavailable(tasks, keys)
        seen.append(down)
        assert down <= parallelism

    tasks, _ = run_update(svc, outdated(svc, replicas), replicas, check)
    assert max(seen) == parallelism  # the budget is actually used
    assert sorted(t.slot for t in live(tasks)) == keys


def test_parallelism_two_replaces_two_slots_in_the_first_pass() -> None:
    svc = service(replicas=5, image=NEW, update={"Parallelism": 2})
    plan = reconcile_replicated(svc, outdated(svc, 5), all_ok, T0)
    assert len(plan.create) == 2
    assert len(plan.desired) == 2
    assert len({t.slot for t in plan.create}) == 2


def test_parallelism_zero_replaces_all_slots_at_once() -> None:
    svc = service(replicas=5, image=NEW, update={"Parallelism": 0})
    tasks = outdated(svc, 5)
    plan = reconcile_replicated(svc, tasks, all_ok, T0)
    assert sorted(t.slot for t in plan.create) == [1, 2, 3, 4, 5]
    assert plan.desired == {t.id: "shutdown" for t in tasks}


def test_update_counts_slots_still_converging_against_parallelism() -> None:
    """A slot whose new task is not yet running uses up the parallelism budget."""
    svc = service(replicas=3, image=NEW, update={"Parallelism": 1})
    tasks = outdated(svc, 3)
    tasks[0].desired_state = "shutdown"
    tasks[0].status.state = "shutdown"
    tasks.append(task(svc, 1, "starting", created=T0))
    plan = reconcile_replicated(svc, tasks, all_ok, T0 + 1)
    assert plan.create == [] and plan.desired == {}


def test_update_order_follows_slot_numbers() -> None:
    svc = service(replicas=12, image=NEW, update={"Parallelism": 3})
    plan = reconcile_replicated(svc, outdated(svc, 12), all_ok, T0)
    assert sorted(t.slot for t in plan.create) == [1, 2, 3]


def test_update_delay_between_batches() -> None:
    """UpdateConfig.Delay (`--update-delay`): after a batch converged, the next one starts only
    once the delay has passed; the plan asks to be woken then."""
    svc = service(replicas=2, image=NEW, update={"Parallelism": 1, "Delay": 10 * SEC})
    old1, old2 = outdated(svc, 2)
    old1.desired_state = "shutdown"
    old1.status.state = "shutdown"
    new1 = task(svc, 1, "running", created=T0 - 5, ended=T0)  # running since T0
    tasks = [old1, old2, new1]
    early = reconcile_replicated(svc, tasks, all_ok, T0 + 1)
    assert early.create == [] and early.desired == {}
    assert early.wake_at == pytest.approx(T0 + 10)
    due = reconcile_replicated(svc, tasks, all_ok, T0 + 10)
    assert len(due.create) == 1 and due.desired == {old2.id: "shutdown"}


# ---------------------------------------------------------------- start-first


def test_start_first_starts_new_task_before_touching_old() -> None:
    svc = service(replicas=2, image=NEW, update={"Parallelism": 1, "Order": "start-first"})
    tasks = outdated(svc, 2)
    plan = reconcile_replicated(svc, tasks, all_ok, T0)
    assert len(plan.create) == 1
    assert plan.create[0].desired_state == "running"
    assert plan.desired == {}  # the old task keeps running


def test_start_first_old_task_shut_down_once_new_runs() -> None:
    svc = service(replicas=1, image=NEW, update={"Order": "start-first"})
    tasks = outdated(svc, 1)
    old = tasks[0]
    tasks = apply(tasks, reconcile_replicated(svc, tasks, all_ok, T0), now=T0)
    new = next(t for t in tasks if t.id != old.id)
    assert reconcile_replicated(svc, tasks, all_ok, T0 + 1).desired == {}  # not running yet
    agent_step(tasks, at=T0 + 2)
    plan = reconcile_replicated(svc, tasks, all_ok, T0 + 2)
    assert plan.desired == {old.id: "shutdown"}
    assert plan.create == []
    assert by_id(tasks)[new.id].status.state == "running"


@pytest.mark.parametrize(("replicas", "parallelism"), [(3, 1), (4, 2)])
def test_start_first_never_drops_a_slot(replicas: int, parallelism: int) -> None:
    svc = service(
        replicas=replicas, image=NEW, update={"Parallelism": parallelism, "Order": "start-first"}
    )
    keys = list(range(1, replicas + 1))
    extra: list[int] = []

    def check(tasks: list[Task]) -> None:
        assert unavailable(tasks, keys) == 0
        runnable = [t for t in tasks if t.desired_state in ("running", "ready")]
        extra.append(len(runnable) - replicas)
        assert len(runnable) - replicas <= parallelism

    tasks, _ = run_update(svc, outdated(svc, replicas), replicas, check)
    assert max(extra) == parallelism
    assert all(t.spec.container_spec.image == NEW for t in live(tasks))


# ---------------------------------------------------------------- UpdateStatus


def test_update_status_updating_becomes_completed_when_converged() -> None:
    svc = service(replicas=2, image=NEW, update_status={"State": "updating", "StartedAt": ts(T0)})
    tasks = [task(svc, 1), task(svc, 2)]
    plan = reconcile_replicated(svc, tasks, all_ok, T0 + 10)
    assert plan.update_status is not None
    assert plan.update_status["State"] == "completed"
    assert plan.update_status["Message"] == "update completed"
    assert plan.update_status["CompletedAt"]
    assert plan  # a status change is work to write


def test_update_status_stays_updating_while_tasks_converge() -> None:
    svc = service(replicas=2, image=NEW, update_status={"State": "updating", "StartedAt": ts(T0)})
    tasks = [task(svc, 1), task(svc, 2, "starting")]
    assert reconcile_replicated(svc, tasks, all_ok, T0 + 10).update_status is None
    tasks = outdated(svc, 2)
    assert reconcile_replicated(svc, tasks, all_ok, T0 + 10).update_status is None


def test_completed_update_status_is_not_rewritten() -> None:
    svc = service(replicas=2, update_status={"State": "completed", "StartedAt": ts(T0)})
    assert reconcile_replicated(svc, [task(svc, 1), task(svc, 2)], all_ok, T0).update_status is None


@pytest.mark.parametrize("previous", [None, {"State": "completed", "StartedAt": ts(T0 - 60)}])
def test_rolling_update_start_sets_update_status_updating(previous: dict | None) -> None:
    """SwarmKit's updater marks the service `updating` (StartedAt, "update in progress") when
    it starts replacing out-of-date tasks; `docker service inspect` and the CLI's progress
    display read it. Nothing in shoal sets it: the control API clears UpdateStatus on update
    and the orchestrator only ever moves `updating` to `completed`."""
    svc = service(replicas=2, image=NEW, update_status=previous)
    plan = reconcile_replicated(svc, outdated(svc, 2), all_ok, T0)
    assert plan.update_status is not None
    assert plan.update_status["State"] == "updating"
    assert plan.update_status.get("StartedAt")


def test_rollback_started_becomes_rollback_completed() -> None:
    """`docker service rollback` sets rollback_started; once converged SwarmKit writes
    rollback_completed (the CLI's progress loop waits for it)."""
    svc = service(replicas=1, update_status={"State": "rollback_started", "StartedAt": ts(T0)})
    plan = reconcile_replicated(svc, [task(svc, 1)], all_ok, T0 + 5)
    assert plan.update_status is not None
    assert plan.update_status["State"] == "rollback_completed"


# ---------------------------------------------------------------- global services


def test_global_update_replaces_task_on_the_same_node() -> None:
    svc = service(mode="global", image=NEW, update={"Parallelism": 1})
    tasks = [task(svc, None, node=n, image=OLD) for n in ("n1", "n2", "n3")]
    plan = reconcile_global(svc, tasks, {"n1", "n2", "n3"}, all_ok, T0)
    assert len(plan.create) == 1
    new = plan.create[0]
    assert new.slot is None
    (old_id,) = plan.desired
    assert by_id(tasks)[old_id].node_id == new.node_id
    assert new.desired_state == "ready"


def test_global_update_parallelism_zero() -> None:
    svc = service(mode="global", image=NEW, update={"Parallelism": 0})
    tasks = [task(svc, None, node=n, image=OLD) for n in ("n1", "n2", "n3")]
    plan = reconcile_global(svc, tasks, {"n1", "n2", "n3"}, all_ok, T0)
    assert sorted(t.node_id for t in plan.create) == ["n1", "n2", "n3"]
    assert isinstance(plan, Plan)


# ---------------------------------------------------------------- failures during an update


def failing_update(action: str | None, ratio: float | None = None) -> tuple[Service, list[Task]]:
    """3 slots; slot 1 already updated, and its new task failed after the update started."""
    cfg: dict = {"Parallelism": 1}  # type: ignore[type-arg]
    if action:
        cfg["FailureAction"] = action
    if ratio is not None:
        cfg["MaxFailureRatio"] = ratio
    svc = service(
        replicas=3, image=NEW, update=cfg, update_status={"State": "updating", "StartedAt": ts(T0)}
    )
    old = outdated(svc, 3)
    old[0].desired_state = "shutdown"
    old[0].status.state = "shutdown"
    bad = task(svc, 1, "failed", created=T0 + 1, ended=T0 + 2, tid="bad1")
    return svc, [*old, bad]


def test_failed_update_pauses_by_default() -> None:
    svc, tasks = failing_update(None)
    plan = reconcile_replicated(svc, tasks, all_ok, T0 + 3)
    assert plan.update_status == {
        "State": "paused",
        "Message": "update paused due to failure or early termination of task bad1",
    }
    assert not plan.rollback
    assert [t.slot for t in plan.create] == [1]  # the failed task restarts; no new slot starts


def test_paused_update_goes_no_further() -> None:
    svc, tasks = failing_update(None)
    svc.update_status.state = "paused"  # type: ignore[union-attr]
    plan = reconcile_replicated(svc, tasks, all_ok, T0 + 3)
    assert not any(t.slot in (2, 3) for t in plan.create)
    assert tasks[1].id not in plan.desired and tasks[2].id not in plan.desired


def test_failed_update_rolls_back_when_asked() -> None:
    svc, tasks = failing_update("rollback")
    plan = reconcile_replicated(svc, tasks, all_ok, T0 + 3)
    assert plan.rollback
    assert plan.update_status is not None
    assert plan.update_status["State"] == "rollback_started"
    assert plan.update_status["Message"] == (
        "update rolled back due to failure or early termination of task bad1"
    )


def test_continue_and_failure_ratio_keep_the_update_going() -> None:
    for svc, tasks in (failing_update("continue"), failing_update("pause", ratio=0.5)):
        plan = reconcile_replicated(svc, tasks, all_ok, T0 + 3)
        assert plan.update_status is None and not plan.rollback
        assert [t.slot for t in plan.create] == [1]  # slot 1 restarts, then the update goes on


def test_failed_rollback_pauses_the_rollback() -> None:
    svc, tasks = failing_update("rollback")
    svc.update_status.state = "rollback_started"  # type: ignore[union-attr]
    plan = reconcile_replicated(svc, tasks, all_ok, T0 + 3)
    assert plan.update_status is not None and plan.update_status["State"] == "rollback_paused"
    assert not plan.rollback


@pytest.mark.parametrize(
    ("update", "completes_at"),
    [
        ({"Monitor": 5 * SEC}, T0 + 7),  # the last batch ran at T0 + 2, watched 5 s
        # A delay not shorter than the monitor: watched delay + 1 s (SwarmKit's rule).
        ({"Monitor": 5 * SEC, "Delay": 6 * SEC}, T0 + 9),
    ],
)
def test_update_completes_only_after_the_last_batch_was_watched(
    update: dict[str, int], completes_at: float
) -> None:
    svc = service(
        replicas=1,
        image=NEW,
        update=update,
        update_status={"State": "updating", "StartedAt": ts(T0)},
    )
    old = outdated(svc, 1)[0]
    old.desired_state = old.status.state = "shutdown"
    new = task(svc, 1, "running", created=T0 + 1, ended=T0 + 2)
    early = reconcile_replicated(svc, [old, new], all_ok, completes_at - 1)
    assert early.update_status is None and early.wake_at == pytest.approx(completes_at)
    done = reconcile_replicated(svc, [old, new], all_ok, completes_at + 0.1)
    assert done.update_status is not None and done.update_status["State"] == "completed"


def test_failure_counts_only_within_the_monitor_period_after_running() -> None:
    """A new task that ran longer than the monitor period before failing does not stop the
    update; one that failed sooner, or was never seen running, does (SwarmKit's rule)."""
    svc, tasks = failing_update(None)  # bad1 failed after the update started; monitor 5 s
    late = reconcile_replicated(svc, tasks, all_ok, T0 + 10, TaskTimes(ran={"bad1": 7.5}))
    assert late.update_status is None
    soon = reconcile_replicated(svc, tasks, all_ok, T0 + 10, TaskTimes(ran={"bad1": 4.5}))
    assert soon.update_status is not None and soon.update_status["State"] == "paused"
    never_seen = reconcile_replicated(svc, tasks, all_ok, T0 + 10)
    assert never_seen.update_status is not None


def test_early_exit_zero_is_a_failure_of_the_update() -> None:
    svc, tasks = failing_update(None)
    tasks[-1].status.state = "complete"
    plan = reconcile_replicated(svc, tasks, all_ok, T0 + 3)
    assert plan.update_status is not None and plan.update_status["State"] == "paused"


def test_orchestrator_measures_how_long_tasks_ran() -> None:
    """The orchestrator notes when a task reaches running and, when it ends, how long it ran
    (its own clock); a task already running when the orchestrator started is not measured."""
    clock = [100.0]
    orch = Orchestrator(store=MemoryStore(), clock=lambda: clock[0])
    svc = service(replicas=1)

    def change(old: Task | None, new: Task) -> None:
        orch.handle([Event("tasks", new.id, old, new)])

    starting = task(svc, 1, "starting", tid="t1")
    running = task(svc, 1, "running", tid="t1")
    failed = task(svc, 1, "failed", tid="t1")
    change(None, starting)
    change(starting, running)
    clock[0] = 103.5
    change(running, running)  # a status message changes: still the same start
    clock[0] = 104.0
    change(running, failed)
    assert orch.times.ran == {"t1": 4.0} and not orch.times.running
    old = task(svc, 2, "running", tid="t2")
    change(old, task(svc, 2, "failed", tid="t2"))
    assert "t2" not in orch.times.ran
    orch.handle([Event("tasks", "t1", failed, None)])
    assert orch.times.ran == {}
