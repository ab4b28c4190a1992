"""reconcile_job: replicated jobs (MaxConcurrent, TotalCompletions, slots 0..N-1), global jobs
(one run per eligible node), restarts and job iterations."""

from __future__ import annotations

from collections import Counter

import pytest
from test_orchestrator_helpers import (
    T0,
    all_ok,
    apply,
    nodes_ok,
    service,
    set_state,
    task,
)

from shoal.api.models import Task
from shoal.manager.orchestrator.jobs import iteration_of, job_counts, reconcile_job
from shoal.manager.orchestrator.restart import restart_condition, should_restart

ACTIVE = {"new", "pending", "assigned", "accepted", "preparing", "ready", "starting", "running"}


def job(**kw):  # noqa: ANN003, ANN201
    return service(mode="replicated-job", **kw)


def active(tasks: list[Task]) -> list[Task]:
    return [
        t
        for t in tasks
        if t.desired_state in ("complete", "running", "ready") and t.status.state in ACTIVE
    ]


# ---------------------------------------------------------------- counts and defaults


@pytest.mark.parametrize(
    ("max_concurrent", "total", "expected"),
    [(None, None, (1, 1)), (3, None, (3, 3)), (2, 5, (2, 5)), (None, 4, (1, 4))],
)
def test_job_counts_defaults(max_concurrent, total, expected) -> None:  # noqa: ANN001
    svc = job(max_concurrent=max_concurrent, total_completions=total)
    assert job_counts(svc) == expected


def test_job_restart_condition_any_means_on_failure() -> None:
    assert restart_condition(job()) == "on-failure"
    assert restart_condition(job(restart={"Condition": "any"})) == "on-failure"
    assert restart_condition(job(restart={"Condition": "none"})) == "none"
    assert restart_condition(service(replicas=1)) == "any"


# ---------------------------------------------------------------- replicated jobs


def test_replicated_job_starts_max_concurrent_tasks_in_slots_from_zero() -> None:
    svc = job(max_concurrent=2, total_completions=4)
    plan = reconcile_job(svc, [], all_ok, T0)
    assert sorted(t.slot for t in plan.create) == [0, 1]
    for t in plan.create:
        assert t.desired_state == "complete"  # run to completion, as SwarmKit's
        assert t.job_iteration is not None and t.job_iteration.index == 0
        assert t.node_id is None
        assert t.service_id == svc.id


def test_replicated_job_never_more_than_total() -> None:
    svc = job(max_concurrent=10, total_completions=3)
    plan = reconcile_job(svc, [], all_ok, T0)
    assert sorted(t.slot for t in plan.create) == [0, 1, 2]


def test_running_job_tasks_block_new_ones() -> None:
    svc = job(max_concurrent=2, total_completions=4)
    tasks = [task(svc, 0, iteration=0), task(svc, 1, "starting", iteration=0)]
    assert not reconcile_job(svc, tasks, all_ok, T0)


def test_completed_task_keeps_its_desired_state_and_frees_a_place() -> None:
    svc = job(max_concurrent=2, total_completions=4)
    done = task(svc, 0, "complete", desired="complete", iteration=0, exit_code=0)
    tasks = [done, task(svc, 1, desired="complete", iteration=0)]
    plan = reconcile_job(svc, tasks, all_ok, T0)
    assert plan.desired == {}
    assert [t.slot for t in plan.create] == [2]


def test_job_stops_at_total_completions() -> None:
    svc = job(max_concurrent=2, total_completions=3)
    tasks = [task(svc, s, "complete", desired="shutdown", iteration=0) for s in (0, 1, 2)]
    assert not reconcile_job(svc, tasks, all_ok, T0)


def test_replicated_job_runs_to_completion_with_bounded_concurrency() -> None:
    svc = job(max_concurrent=2, total_completions=5)
    tasks: list[Task] = []
    now = T0
    peak = 0
    for _ in range(40):
        tasks = apply(tasks, reconcile_job(svc, tasks, all_ok, now), now=now)
        peak = max(peak, len(active(tasks)))
        assert len(active(tasks)) <= 2
        now += 1
        # The agent: running tasks finish, new tasks start.
        for t in tasks:
            if t.status.state == "running":
                set_state(tasks, t.id, "complete", at=now)
            elif t.status.state == "new" and t.desired_state == "complete":
                set_state(tasks, t.id, "running", at=now)
        now += 1
    completed = [t for t in tasks if t.status.state == "complete"]
    assert sorted(t.slot for t in completed) == [0, 1, 2, 3, 4]
    assert len(tasks) == 5  # no task beyond TotalCompletions
    assert peak == 2
    assert all(t.desired_state == "complete" for t in tasks)


def test_failed_job_task_restarts_in_same_slot_after_delay() -> None:
    svc = job(max_concurrent=1, total_completions=2)
    failed = task(svc, 0, "failed", iteration=0, ended=T0, exit_code=1)
    plan = reconcile_job(svc, [failed], all_ok, T0 + 1)
    assert plan.desired == {failed.id: "shutdown"}
    assert len(plan.create) == 1
    new = plan.create[0]
    assert new.slot == 0
    assert new.desired_state == "ready"
    assert new.job_iteration is not None and new.job_iteration.index == 0
    tasks = apply([failed], plan, now=T0 + 1)
    early = reconcile_job(svc, tasks, all_ok, T0 + 3)
    assert early.desired == {} and early.create == []  # the restart holds the only place
    assert early.wake_at == pytest.approx(T0 + 5)
    assert reconcile_job(svc, tasks, all_ok, T0 + 5).desired == {new.id: "complete"}


def test_failed_job_task_with_condition_none_is_not_restarted() -> None:
    svc = job(max_concurrent=1, total_completions=1, restart={"Condition": "none"})
    failed = task(svc, 0, "failed", iteration=0, ended=T0, exit_code=1)
    plan = reconcile_job(svc, [failed], all_ok, T0 + 10)
    assert plan.desired == {failed.id: "shutdown"}
    assert plan.create == []
    tasks = apply([failed], plan, now=T0 + 10)
    assert not reconcile_job(svc, tasks, all_ok, T0 + 20)


def test_completed_job_task_is_never_restarted_even_with_condition_any() -> None:
    svc = job(max_concurrent=1, total_completions=1, restart={"Condition": "any"})
    done = task(svc, 0, "complete", iteration=0, ended=T0, exit_code=0)
    plan = reconcile_job(svc, [done], all_ok, T0 + 10)
    assert plan.create == []


def test_job_max_attempts() -> None:
    svc = job(max_concurrent=1, total_completions=1, restart={"MaxAttempts": 1})
    tasks = [
        task(svc, 0, "failed", desired="shutdown", iteration=0, created=T0, ended=T0 + 1),
        task(svc, 0, "failed", iteration=0, created=T0 + 10, ended=T0 + 11),
    ]
    assert should_restart(svc, tasks[1], tasks, T0 + 20) is False
    plan = reconcile_job(svc, tasks, all_ok, T0 + 20)
    assert plan.desired == {tasks[1].id: "shutdown"}
    assert plan.create == []


def test_job_task_on_lost_node_is_replaced_in_its_slot() -> None:
    svc = job(max_concurrent=2, total_completions=2)
    tasks = [task(svc, 0, node="n1", iteration=0), task(svc, 1, node="n2", iteration=0)]
    plan = reconcile_job(svc, tasks, nodes_ok("n2"), T0)
    assert plan.desired == {tasks[1].id: "shutdown"}
    assert [t.slot for t in plan.create] == [1]


# ---------------------------------------------------------------- iterations


def test_iteration_of() -> None:
    assert iteration_of(job(iteration=3)) == 3
    assert iteration_of(job()) == 0


def test_new_iteration_shuts_down_old_iteration_tasks_and_starts_over() -> None:
    svc = job(max_concurrent=2, total_completions=2, iteration=1)
    running_old = task(svc, 0, desired="complete", iteration=0)
    done_old = task(svc, 1, "complete", desired="complete", iteration=0)  # left as it is
    plan = reconcile_job(svc, [running_old, done_old], all_ok, T0)
    assert plan.desired == {running_old.id: "shutdown"}
    assert sorted(t.slot for t in plan.create) == [0, 1]
    assert {t.job_iteration.index for t in plan.create} == {1}


def test_old_iteration_completions_do_not_count() -> None:
    svc = job(max_concurrent=1, total_completions=1, iteration=2)
    old = [task(svc, 0, "complete", desired="shutdown", iteration=i) for i in (0, 1)]
    plan = reconcile_job(svc, old, all_ok, T0)
    assert len(plan.create) == 1
    assert plan.create[0].job_iteration.index == 2


def test_tasks_without_iteration_count_as_iteration_zero() -> None:
    svc = job(max_concurrent=1, total_completions=1)
    plan = reconcile_job(svc, [task(svc, 0, iteration=None)], all_ok, T0)
    assert not plan


# ---------------------------------------------------------------- global jobs


def gjob(**kw):  # noqa: ANN003, ANN201
    return service(mode="global-job", **kw)


def test_global_job_one_task_per_eligible_node() -> None:
    svc = gjob()
    plan = reconcile_job(svc, [], all_ok, T0, eligible={"n1", "n2", "n3"})
    assert sorted(t.node_id for t in plan.create) == ["n1", "n2", "n3"]
    for t in plan.create:
        assert t.slot is None
        assert t.desired_state == "complete"
        assert t.job_iteration is not None and t.job_iteration.index == 0


def test_global_job_does_not_rerun_on_nodes_that_completed() -> None:
    svc = gjob()
    tasks = [
        task(svc, None, "complete", desired="complete", node="n1", iteration=0),
        task(svc, None, "complete", desired="shutdown", node="n2", iteration=0),  # older shoal
    ]
    plan = reconcile_job(svc, tasks, all_ok, T0, eligible={"n1", "n2"})
    assert plan.desired == {}
    assert plan.create == []


def test_global_job_runs_on_a_node_that_joins_later() -> None:
    svc = gjob()
    tasks = [task(svc, None, "complete", desired="shutdown", node="n1", iteration=0)]
    plan = reconcile_job(svc, tasks, all_ok, T0, eligible={"n1", "n2"})
    assert [t.node_id for t in plan.create] == ["n2"]


def test_global_job_failed_task_restarts_on_its_node() -> None:
    svc = gjob()
    failed = task(svc, None, "failed", node="n1", iteration=0, ended=T0)
    plan = reconcile_job(svc, [failed], all_ok, T0 + 1, eligible={"n1"})
    assert plan.desired == {failed.id: "shutdown"}
    assert [(t.node_id, t.desired_state) for t in plan.create] == [("n1", "ready")]


def test_global_job_new_iteration() -> None:
    svc = gjob(iteration=1)
    tasks = [
        task(svc, None, "complete", desired="shutdown", node=n, iteration=0) for n in ("n1", "n2")
    ]
    plan = reconcile_job(svc, tasks, all_ok, T0, eligible={"n1", "n2"})
    assert sorted(t.node_id for t in plan.create) == ["n1", "n2"]
    assert {t.job_iteration.index for t in plan.create} == {1}


def test_global_job_task_on_lost_node_is_not_recreated_there() -> None:
    """A global job's task on a node that went down (and so left the eligible set) is shut
    down; no replacement is pinned to that node."""
    svc = gjob()
    tasks = [task(svc, None, node="n1", iteration=0), task(svc, None, node="n2", iteration=0)]
    plan = reconcile_job(svc, tasks, nodes_ok("n2"), T0, eligible={"n1"})
    assert plan.desired == {tasks[1].id: "shutdown"}
    assert [t.node_id for t in plan.create] == []


def test_global_job_adds_only_missing_nodes() -> None:
    svc = gjob()
    tasks = [task(svc, None, node="n1", iteration=0)]
    plan = reconcile_job(svc, tasks, all_ok, T0, eligible={"n1", "n2"})
    assert Counter(t.node_id for t in plan.create) == {"n2": 1}


# ---------------------------------------------------------------- wanted, downstream


def test_a_job_task_desired_complete_is_wanted_downstream() -> None:
    """The allocator and the scheduler take a job's task (desired `complete`) as wanted; the
    agent runs it to the end."""
    from shoal.agent.controller import Observed
    from shoal.agent.task import decide
    from shoal.api.states import TaskState
    from shoal.manager.scheduler.scheduler import unassigned

    svc = job(max_concurrent=1, total_completions=1)
    (new,) = reconcile_job(svc, [], all_ok, T0).create
    new.status.state = TaskState.PENDING
    assert unassigned(new)
    new.desired_state = TaskState.SHUTDOWN
    assert not unassigned(new)
    running = Observed(exists=True, running=True, started=True, container_id="c")
    assert decide(TaskState.RUNNING, TaskState.COMPLETE, running).op == "wait"
    exited = Observed(exists=True, started=True, exit_code=0, container_id="c")
    assert decide(TaskState.RUNNING, TaskState.COMPLETE, exited).state == TaskState.COMPLETE
    assert decide(TaskState.READY, TaskState.COMPLETE, Observed(exists=True)).op == "start"
