"""reconcile_replicated: slots 1..N, scaling, node loss, restarts with their delay, and the
plan's bookkeeping. Every call gets an explicit `now`."""

from __future__ import annotations

from collections import Counter

import pytest
from test_orchestrator_helpers import (
    SEC,
    T0,
    all_ok,
    apply,
    by_id,
    live,
    nodes_ok,
    service,
    set_state,
    task,
)

from shoal.api.defaults import RESTART_DELAY as DEFAULT_RESTART_DELAY
from shoal.api.states import TaskState
from shoal.manager.orchestrator.plan import Plan
from shoal.manager.orchestrator.replicated import reconcile_replicated, replicas_of


def slots_of(tasks) -> list[int]:  # noqa: ANN001
    return sorted(t.slot for t in tasks)


# ---------------------------------------------------------------- create and scale


def test_create_makes_slots_one_to_n_desired_running() -> None:
    svc = service(replicas=3)
    plan = reconcile_replicated(svc, [], all_ok, T0)
    assert slots_of(plan.create) == [1, 2, 3]
    for t in plan.create:
        assert t.service_id == svc.id
        assert t.desired_state == "running"
        assert t.status.state == "new"
        assert t.node_id is None  # the scheduler's field
        assert t.spec == svc.spec.task_template
        assert t.spec is not svc.spec.task_template  # a copy, not shared
        assert t.job_iteration is None
    assert len({t.id for t in plan.create}) == 3
    assert plan.desired == {}
    assert plan.wake_at is None


def test_replicas_default_to_one() -> None:
    svc = service(replicas=None)  # "Mode":{"Replicated":{}} as the CLI sends without --replicas
    assert replicas_of(svc) == 1
    plan = reconcile_replicated(svc, [], all_ok, T0)
    assert slots_of(plan.create) == [1]


def test_zero_replicas_creates_nothing() -> None:
    plan = reconcile_replicated(service(replicas=0), [], all_ok, T0)
    assert not plan
    assert plan.create == []


def test_converged_service_gives_empty_plan() -> None:
    svc = service(replicas=3)
    tasks = [task(svc, s) for s in (1, 2, 3)]
    plan = reconcile_replicated(svc, tasks, all_ok, T0)
    assert not plan
    assert plan.create == [] and plan.desired == {} and plan.update_status is None


def test_tasks_not_yet_running_count_as_filling_their_slot() -> None:
    svc = service(replicas=3)
    tasks = [
        task(svc, 1, "new", node=None),
        task(svc, 2, "pending", node=None),
        task(svc, 3, "starting"),
    ]
    assert not reconcile_replicated(svc, tasks, all_ok, T0)


def test_scale_up_reuses_free_slot_numbers() -> None:
    svc = service(replicas=5)
    tasks = [task(svc, s) for s in (1, 2, 5)]
    plan = reconcile_replicated(svc, tasks, all_ok, T0)
    assert slots_of(plan.create) == [3, 4]
    assert plan.desired == {}


def test_scale_up_after_scale_down_reuses_removed_slots() -> None:
    svc = service(replicas=4)
    tasks = [task(svc, s) for s in (1, 2)] + [
        task(svc, s, "shutdown", desired="remove") for s in (3, 4, 5)
    ]
    plan = reconcile_replicated(svc, tasks, all_ok, T0)
    assert slots_of(plan.create) == [3, 4]


def test_scale_up_does_not_duplicate_a_slot_whose_task_is_replaced() -> None:
    svc = service(replicas=3)
    # slot 2's old task failed and was shut down; its replacement waits in `ready`.
    tasks = [
        task(svc, 1),
        task(svc, 2, "failed", desired="shutdown", created=T0 - 10, ended=T0 - 1),
        task(svc, 2, "new", desired="ready", node=None),
        task(svc, 3),
    ]
    plan = reconcile_replicated(svc, tasks, all_ok, T0)
    assert plan.create == []


def test_scale_down_removes_highest_slots_with_desired_remove() -> None:
    svc = service(replicas=3)
    tasks = [task(svc, s) for s in (1, 2, 3, 4, 5)]
    ids = {t.slot: t.id for t in tasks}
    plan = reconcile_replicated(svc, tasks, all_ok, T0)
    assert plan.desired == {ids[4]: "remove", ids[5]: "remove"}
    assert plan.create == []


def test_scale_to_zero_removes_everything() -> None:
    svc = service(replicas=0)
    tasks = [task(svc, s) for s in (1, 2, 3)]
    plan = reconcile_replicated(svc, tasks, all_ok, T0)
    assert set(plan.desired) == {t.id for t in tasks}
    assert set(plan.desired.values()) == {"remove"}


def test_scale_down_removes_non_running_tasks_first() -> None:
    svc = service(replicas=4)
    tasks = [task(svc, s) for s in (1, 3, 4, 5)] + [task(svc, 2, "starting")]
    plan = reconcile_replicated(svc, tasks, all_ok, T0)
    assert [by_id(tasks)[i].slot for i in plan.desired] == [2]
    assert plan.desired[next(iter(plan.desired))] == "remove"


def test_scale_down_removes_unscheduled_pending_tasks_first() -> None:
    svc = service(replicas=2)
    tasks = [task(svc, 1), task(svc, 2, "pending", node=None), task(svc, 3)]
    plan = reconcile_replicated(svc, tasks, all_ok, T0)
    assert [by_id(tasks)[i].slot for i in plan.desired] == [2]


def test_scale_down_takes_from_the_most_loaded_node_first() -> None:
    svc = service(replicas=4)
    tasks = [task(svc, s, node="n1") for s in (1, 2, 3)] + [task(svc, s, node="n2") for s in (4, 5)]
    plan = reconcile_replicated(svc, tasks, all_ok, T0)
    removed = [by_id(tasks)[i] for i in plan.desired]
    assert [(t.slot, t.node_id) for t in removed] == [(3, "n1")]


def test_scale_down_leaves_nodes_balanced() -> None:
    """SwarmKit ranks each task as the n-th copy on its node and removes the highest ranks,
    so 4 + 3 tasks scaled to 4 leave 2 + 2 (moby/swarmkit replicated/services.go)."""
    svc = service(replicas=4)
    tasks = [task(svc, s, node="n1") for s in (1, 2, 3, 4)] + [
        task(svc, s, node="n2") for s in (5, 6, 7)
    ]
    plan = reconcile_replicated(svc, tasks, all_ok, T0)
    assert len(plan.desired) == 3
    kept = Counter(t.node_id for t in tasks if t.id not in plan.desired)
    assert kept == {"n1": 2, "n2": 2}


def test_removed_tasks_are_not_recreated_or_touched_again() -> None:
    svc = service(replicas=3)
    tasks = [task(svc, s) for s in (1, 2, 3, 4, 5)]
    plan = reconcile_replicated(svc, tasks, all_ok, T0)
    tasks = apply(tasks, plan, now=T0)
    # The removed tasks are still running on the node: the slots stay gone.
    plan = reconcile_replicated(svc, tasks, all_ok, T0 + 1)
    assert not plan


# ---------------------------------------------------------------- node loss


def test_task_on_down_node_is_replaced_at_once_desired_running() -> None:
    svc = service(replicas=2)
    tasks = [task(svc, 1, node="n1"), task(svc, 2, node="n2")]
    lost = tasks[1]
    plan = reconcile_replicated(svc, tasks, nodes_ok("n2"), T0)
    assert plan.desired == {lost.id: "shutdown"}
    assert len(plan.create) == 1
    new = plan.create[0]
    assert new.slot == 2
    assert new.desired_state == "running"  # no restart delay for a lost node
    assert new.node_id is None  # the scheduler picks a node
    assert plan.wake_at is None


def test_replacement_for_lost_node_is_not_duplicated_on_the_next_pass() -> None:
    svc = service(replicas=2)
    tasks = [task(svc, 1, node="n1"), task(svc, 2, node="n2")]
    plan = reconcile_replicated(svc, tasks, nodes_ok("n2"), T0)
    tasks = apply(tasks, plan, now=T0, node="n1")
    plan = reconcile_replicated(svc, tasks, nodes_ok("n2"), T0 + 1)
    assert not plan


def test_ready_task_is_not_blocked_by_live_task_on_a_lost_node() -> None:
    """A replacement waiting in `ready` does not wait for a task whose node is gone."""
    svc = service(replicas=1)
    old = task(svc, 1, "running", desired="shutdown", node="n2", created=T0 - 10)
    new = task(svc, 1, "new", desired="ready", node="n1", created=T0)
    plan = reconcile_replicated(svc, [old, new], nodes_ok("n2"), T0 + 1)
    assert plan.desired == {new.id: "running"}


def test_ready_task_is_not_blocked_by_a_task_shut_down_before_scheduling() -> None:
    """A restart created just before a rollback is shut down while still pending: it will
    never run, so the slot's next task does not wait for it."""
    svc = service(replicas=1)
    pending = task(svc, 1, "pending", desired="shutdown", node=None, created=T0 - 1)
    new = task(svc, 1, "new", desired="ready", node=None, created=T0)
    plan = reconcile_replicated(svc, [pending, new], all_ok, T0 + 1)
    assert plan.desired == {new.id: "running"}
    assigned = task(svc, 1, "assigned", desired="shutdown", node="n1", created=T0 - 1)
    plan = reconcile_replicated(svc, [assigned, new], all_ok, T0 + 1)
    assert not plan.desired  # on a node: wait for its agent to say it stopped


def test_all_tasks_on_a_drained_node_are_replaced() -> None:
    svc = service(replicas=3)
    tasks = [task(svc, 1, node="n1"), task(svc, 2, node="n2"), task(svc, 3, node="n2")]
    plan = reconcile_replicated(svc, tasks, nodes_ok("n2"), T0)
    assert plan.desired == {tasks[1].id: "shutdown", tasks[2].id: "shutdown"}
    assert slots_of(plan.create) == [2, 3]
    assert all(t.desired_state == "running" for t in plan.create)


# ---------------------------------------------------------------- restarts


def test_failed_task_is_shut_down_and_replaced_in_same_slot_desired_ready() -> None:
    svc = service(replicas=2)
    failed = task(svc, 2, "failed", ended=T0)
    tasks = [task(svc, 1), failed]
    plan = reconcile_replicated(svc, tasks, all_ok, T0 + 1)
    assert plan.desired == {failed.id: "shutdown"}
    assert len(plan.create) == 1
    new = plan.create[0]
    assert new.slot == 2
    assert new.desired_state == "ready"
    # The orchestrator must come back when the default 5 s restart delay has run out.
    assert plan.wake_at == pytest.approx(T0 + DEFAULT_RESTART_DELAY / SEC)
    assert DEFAULT_RESTART_DELAY == 5 * SEC


def test_replacement_promoted_to_running_only_after_restart_delay() -> None:
    svc = service(replicas=1)
    tasks = [task(svc, 1, "failed", ended=T0)]
    plan = reconcile_replicated(svc, tasks, all_ok, T0 + 0.5)
    tasks = apply(tasks, plan, now=T0 + 0.5)
    new = [t for t in tasks if t.desired_state == "ready"][0]

    early = reconcile_replicated(svc, tasks, all_ok, T0 + 4.9)
    assert new.id not in early.desired
    assert early.create == []
    assert early.wake_at == pytest.approx(T0 + 5)

    due = reconcile_replicated(svc, tasks, all_ok, T0 + 5)
    assert due.desired == {new.id: "running"}
    assert due.create == []


def test_restart_delay_from_the_policy() -> None:
    svc = service(replicas=1, restart={"Condition": "any", "Delay": 2 * SEC})
    tasks = [task(svc, 1, "failed", ended=T0)]
    tasks = apply(tasks, reconcile_replicated(svc, tasks, all_ok, T0), now=T0)
    new = [t for t in tasks if t.desired_state == "ready"][0]
    assert reconcile_replicated(svc, tasks, all_ok, T0 + 1.9).desired == {}
    assert reconcile_replicated(svc, tasks, all_ok, T0 + 2).desired == {new.id: "running"}


def test_restart_delay_zero_promotes_in_the_same_pass() -> None:
    svc = service(replicas=1, restart={"Condition": "any", "Delay": 0})
    failed = task(svc, 1, "failed", ended=T0)
    plan = reconcile_replicated(svc, [failed], all_ok, T0)
    assert len(plan.create) == 1
    new = plan.create[0]
    assert plan.desired == {failed.id: "shutdown", new.id: "running"}


def test_delay_counts_from_when_the_task_ended_not_from_now() -> None:
    svc = service(replicas=1)
    failed = task(svc, 1, "failed", ended=T0)
    # The orchestrator only sees the failure 10 s later: no further wait.
    plan = reconcile_replicated(svc, [failed], all_ok, T0 + 10)
    new = plan.create[0]
    assert plan.desired == {failed.id: "shutdown", new.id: "running"}


def test_failed_task_replaced_only_once() -> None:
    svc = service(replicas=1)
    tasks = [task(svc, 1, "failed", ended=T0)]
    tasks = apply(tasks, reconcile_replicated(svc, tasks, all_ok, T0), now=T0)
    again = reconcile_replicated(svc, tasks, all_ok, T0 + 1)
    assert again.create == []
    assert len(live(tasks)) == 1


def test_ready_replacement_waits_for_old_task_still_live() -> None:
    """A stopping task (desired shutdown, still running) blocks its slot's `ready` task."""
    svc = service(replicas=1)
    old = task(svc, 1, "running", desired="shutdown", created=T0 - 10)
    new = task(svc, 1, "new", desired="ready", created=T0)
    plan = reconcile_replicated(svc, [old, new], all_ok, T0 + 60)
    assert plan.desired == {}
    assert plan.create == []


@pytest.mark.parametrize(
    ("condition", "end_state", "restarts"),
    [
        ("any", "failed", True),
        ("any", "complete", True),
        ("any", "rejected", True),
        ("on-failure", "failed", True),
        ("on-failure", "rejected", True),
        ("on-failure", "complete", False),
        ("none", "failed", False),
        ("none", "complete", False),
    ],
)
def test_restart_condition(condition: str, end_state: str, restarts: bool) -> None:
    svc = service(replicas=1, restart={"Condition": condition})
    ended = task(svc, 1, end_state, ended=T0)
    plan = reconcile_replicated(svc, [ended], all_ok, T0 + 1)
    assert plan.desired.get(ended.id) == "shutdown"
    assert len(plan.create) == (1 if restarts else 0)
    if restarts:
        assert plan.create[0].slot == 1
        assert plan.create[0].desired_state == "ready"


def test_no_restart_policy_means_condition_any() -> None:
    svc = service(replicas=1)
    done = task(svc, 1, "complete", ended=T0)
    plan = reconcile_replicated(svc, [done], all_ok, T0 + 1)
    assert len(plan.create) == 1


def test_slot_that_ended_for_good_stays_empty_on_later_passes() -> None:
    svc = service(replicas=2, restart={"Condition": "none"})
    tasks = [task(svc, 1), task(svc, 2, "failed", ended=T0)]
    tasks = apply(tasks, reconcile_replicated(svc, tasks, all_ok, T0), now=T0)
    for now in (T0 + 1, T0 + 10, T0 + 3600):
        plan = reconcile_replicated(svc, tasks, all_ok, now)
        assert not plan, now


def test_spec_change_revives_a_slot_that_ended_for_good() -> None:
    svc = service(replicas=1, restart={"Condition": "none"}, image="busybox:2")
    old = task(svc, 1, "failed", desired="shutdown", ended=T0, image="busybox:1")
    plan = reconcile_replicated(svc, [old], all_ok, T0 + 1)
    assert len(plan.create) == 1
    assert plan.create[0].slot == 1
    assert plan.create[0].spec.container_spec.image == "busybox:2"


def _failed_chain(svc, n: int, *, spacing: float = 1.0, image: str | None = None):  # noqa: ANN001, ANN202
    """n failed tasks in slot 1, created `spacing` s apart; the last still desired running."""
    return [
        task(
            svc,
            1,
            "failed",
            desired="running" if i == n - 1 else "shutdown",
            created=T0 + i * spacing,
            ended=T0 + i * spacing + 0.5,
            image=image,
        )
        for i in range(n)
    ]


def test_max_attempts_reached_stops_restarting() -> None:
    svc = service(replicas=1, restart={"Condition": "any", "MaxAttempts": 2})
    chain = _failed_chain(svc, 3)  # the first run and 2 restarts, all failed
    plan = reconcile_replicated(svc, chain, all_ok, T0 + 100)
    assert plan.desired == {chain[-1].id: "shutdown"}
    assert plan.create == []
    # … and the slot is not refilled later either.
    after = apply(chain, plan, now=T0 + 100)
    assert not reconcile_replicated(svc, after, all_ok, T0 + 200)


def test_max_attempts_not_yet_reached_restarts() -> None:
    svc = service(replicas=1, restart={"Condition": "any", "MaxAttempts": 2})
    chain = _failed_chain(svc, 2)  # the first run and 1 restart
    plan = reconcile_replicated(svc, chain, all_ok, T0 + 100)
    assert len(plan.create) == 1


def test_max_attempts_window_only_counts_recent_restarts() -> None:
    restart = {"Condition": "any", "MaxAttempts": 2, "Window": 10 * SEC}
    svc = service(replicas=1, restart=restart)
    chain = _failed_chain(svc, 3, spacing=30)  # 30 s apart: only the last is in the window
    plan = reconcile_replicated(svc, chain, all_ok, T0 + 61)
    assert len(plan.create) == 1
    # The same history without a window gives up.
    svc2 = service(replicas=1, restart={"Condition": "any", "MaxAttempts": 2})
    chain2 = _failed_chain(svc2, 3, spacing=30)
    assert reconcile_replicated(svc2, chain2, all_ok, T0 + 61).create == []


def test_max_attempts_window_counts_restarts_inside_it() -> None:
    restart = {"Condition": "any", "MaxAttempts": 2, "Window": 60 * SEC}
    svc = service(replicas=1, restart=restart)
    chain = _failed_chain(svc, 3, spacing=5)
    assert reconcile_replicated(svc, chain, all_ok, T0 + 20).create == []


def test_max_attempts_restart_count_resets_with_a_new_spec() -> None:
    svc = service(replicas=1, restart={"Condition": "any", "MaxAttempts": 1}, image="busybox:2")
    chain = _failed_chain(svc, 3, image="busybox:1")
    chain[-1].desired_state = "shutdown"
    current = task(svc, 1, "failed", created=T0 + 10, ended=T0 + 11)
    plan = reconcile_replicated(svc, [*chain, current], all_ok, T0 + 20)
    assert len(plan.create) == 1  # the first failure of the new spec: one restart allowed


# ---------------------------------------------------------------- a full restart cycle


def test_restart_cycle_end_to_end() -> None:
    """failed → shutdown + ready replacement → (delay) → running → the agent runs it."""
    svc = service(replicas=1)
    tasks = [task(svc, 1, "running", created=T0 - 60)]
    set_state(tasks, tasks[0].id, "failed", at=T0)
    now = T0 + 0.1
    tasks = apply(tasks, reconcile_replicated(svc, tasks, all_ok, now), now=now)
    assert Counter(t.desired_state for t in tasks) == {"shutdown": 1, "ready": 1}
    new = next(t for t in tasks if t.desired_state == "ready")
    for now in (T0 + 1, T0 + 3, T0 + 4.99):
        assert reconcile_replicated(svc, tasks, all_ok, now).desired == {}
    now = T0 + 5.0
    tasks = apply(tasks, reconcile_replicated(svc, tasks, all_ok, now), now=now)
    assert by_id(tasks)[new.id].desired_state == "running"
    set_state(tasks, new.id, "running", at=now + 1)
    assert not reconcile_replicated(svc, tasks, all_ok, now + 2)


def test_plan_wake_keeps_the_earliest_time() -> None:
    plan = Plan()
    plan.wake(T0 + 5)
    plan.wake(T0 + 3)
    plan.wake(T0 + 9)
    assert plan.wake_at == T0 + 3
    assert not plan  # a wake-up alone is not work to write


def test_plan_set_desired_never_moves_backwards() -> None:
    svc = service()
    t = task(svc, 1, desired="shutdown")
    plan = Plan()
    plan.set_desired(t, TaskState.RUNNING)
    plan.set_desired(t, TaskState.SHUTDOWN)
    assert plan.desired == {}
    plan.set_desired(t, TaskState.REMOVE)
    assert plan.desired == {t.id: "remove"}
