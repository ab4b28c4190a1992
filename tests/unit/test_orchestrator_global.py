"""reconcile_global and the node eligibility it is fed (`eligible.py`)."""

from __future__ import annotations

import pytest
from test_orchestrator_helpers import (
    T0,
    all_ok,
    apply,
    node,
    nodes_ok,
    service,
    task,
)

from shoal.manager.orchestrator.eligible import eligible_nodes, node_usable
from shoal.manager.orchestrator.global_ import reconcile_global

# ---------------------------------------------------------------- eligibility


@pytest.mark.parametrize(
    ("state", "availability", "usable"),
    [
        ("ready", "active", True),
        ("ready", "pause", True),  # paused: no new tasks, but its tasks stay
        ("ready", "drain", False),
        ("down", "active", False),
        ("down", "drain", False),
        ("unknown", "active", True),
        ("disconnected", "active", True),
    ],
)
def test_node_usable(state: str, availability: str, usable: bool) -> None:
    assert node_usable(node("n1", state=state, availability=availability)) is usable


def test_eligible_nodes_exclude_drained_and_down() -> None:
    svc = service(mode="global")
    nodes = [
        node("n1"),
        node("n2", availability="drain"),
        node("n3", state="down"),
        node("n4", availability="pause"),
    ]
    assert eligible_nodes(svc, nodes) == {"n1", "n4"}


def test_eligible_nodes_apply_placement_constraints() -> None:
    svc = service(mode="global", constraints=["node.labels.zone==a", "node.role!=manager"])
    nodes = [
        node("n1", labels={"zone": "a"}),
        node("n2", labels={"zone": "b"}),
        node("n3", labels={"zone": "a"}, role="manager"),
        node("n4"),
    ]
    assert eligible_nodes(svc, nodes) == {"n1"}


# ---------------------------------------------------------------- reconcile_global


def test_one_task_per_eligible_node() -> None:
    svc = service(mode="global")
    plan = reconcile_global(svc, [], {"n1", "n2", "n3"}, all_ok, T0)
    assert sorted(t.node_id for t in plan.create) == ["n1", "n2", "n3"]
    for t in plan.create:
        assert t.slot is None
        assert t.desired_state == "running"
        assert t.service_id == svc.id
    assert plan.desired == {}


def test_no_eligible_nodes_no_tasks() -> None:
    assert not reconcile_global(service(mode="global"), [], set(), all_ok, T0)


def test_converged_global_service_gives_empty_plan() -> None:
    svc = service(mode="global")
    tasks = [task(svc, None, node=n) for n in ("n1", "n2")]
    assert not reconcile_global(svc, tasks, {"n1", "n2"}, all_ok, T0)


def test_new_node_gets_a_task() -> None:
    svc = service(mode="global")
    tasks = [task(svc, None, node=n) for n in ("n1", "n2")]
    plan = reconcile_global(svc, tasks, {"n1", "n2", "n3"}, all_ok, T0)
    assert [t.node_id for t in plan.create] == ["n3"]
    assert plan.desired == {}


def test_no_task_on_a_drained_node_and_its_task_is_shut_down() -> None:
    svc = service(mode="global")
    nodes = [node("n1"), node("n2", availability="drain")]
    tasks = [task(svc, None, node=n) for n in ("n1", "n2")]
    plan = reconcile_global(svc, tasks, eligible_nodes(svc, nodes), nodes_ok("n2"), T0)
    assert plan.desired == {tasks[1].id: "shutdown"}
    assert plan.create == []  # not replaced anywhere


def test_drained_node_never_gets_a_task() -> None:
    svc = service(mode="global")
    nodes = [node("n1"), node("n2", availability="drain")]
    plan = reconcile_global(svc, [], eligible_nodes(svc, nodes), nodes_ok("n2"), T0)
    assert [t.node_id for t in plan.create] == ["n1"]


def test_task_on_node_that_no_longer_matches_constraints_is_shut_down() -> None:
    svc = service(mode="global", constraints=["node.labels.zone==a"])
    nodes = [node("n1", labels={"zone": "a"}), node("n2", labels={"zone": "b"})]
    tasks = [task(svc, None, node=n) for n in ("n1", "n2")]
    plan = reconcile_global(svc, tasks, eligible_nodes(svc, nodes), all_ok, T0)
    assert plan.desired == {tasks[1].id: "shutdown"}
    assert plan.create == []


def test_task_on_down_node_shut_down_not_replaced_elsewhere() -> None:
    svc = service(mode="global")
    nodes = [node("n1"), node("n2", state="down")]
    tasks = [task(svc, None, node=n) for n in ("n1", "n2")]
    plan = reconcile_global(svc, tasks, eligible_nodes(svc, nodes), nodes_ok("n2"), T0)
    assert plan.desired == {tasks[1].id: "shutdown"}
    assert plan.create == []


def test_shut_down_tasks_on_ineligible_nodes_are_left_alone() -> None:
    svc = service(mode="global")
    tasks = [task(svc, None, node="n1"), task(svc, None, "shutdown", desired="shutdown", node="n2")]
    assert not reconcile_global(svc, tasks, {"n1"}, nodes_ok("n2"), T0)


def test_failed_global_task_restarts_on_the_same_node_after_delay() -> None:
    svc = service(mode="global")
    tasks = [task(svc, None, node="n1"), task(svc, None, "failed", node="n2", ended=T0)]
    plan = reconcile_global(svc, tasks, {"n1", "n2"}, all_ok, T0 + 1)
    assert plan.desired == {tasks[1].id: "shutdown"}
    assert len(plan.create) == 1
    new = plan.create[0]
    assert new.node_id == "n2" and new.slot is None
    assert new.desired_state == "ready"
    assert plan.wake_at == pytest.approx(T0 + 5)
    tasks = apply(tasks, plan, now=T0 + 1)
    assert reconcile_global(svc, tasks, {"n1", "n2"}, all_ok, T0 + 4).desired == {}
    assert reconcile_global(svc, tasks, {"n1", "n2"}, all_ok, T0 + 5).desired == {new.id: "running"}


def test_global_restart_condition_none() -> None:
    svc = service(mode="global", restart={"Condition": "none"})
    tasks = [task(svc, None, "failed", node="n1", ended=T0)]
    plan = reconcile_global(svc, tasks, {"n1"}, all_ok, T0 + 1)
    assert plan.desired == {tasks[0].id: "shutdown"}
    assert plan.create == []
    tasks = apply(tasks, plan, now=T0 + 1)
    assert not reconcile_global(svc, tasks, {"n1"}, all_ok, T0 + 100)


def test_global_max_attempts_per_node() -> None:
    svc = service(mode="global", restart={"Condition": "any", "MaxAttempts": 1})
    tasks = [
        task(svc, None, "failed", node="n1", desired="shutdown", created=T0, ended=T0 + 1),
        task(svc, None, "failed", node="n1", created=T0 + 10, ended=T0 + 11),
        task(svc, None, "failed", node="n2", created=T0 + 10, ended=T0 + 11),
    ]
    plan = reconcile_global(svc, tasks, {"n1", "n2"}, all_ok, T0 + 20)
    # n1 used its one restart; n2's history is its own.
    assert [t.node_id for t in plan.create] == ["n2"]
