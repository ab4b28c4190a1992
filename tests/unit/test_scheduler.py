"""schedule_group: spreading, preferences, limits, failure penalty and explanations."""

from __future__ import annotations

from collections import Counter

from test_scheduler_helpers import GB, infos, node, task, tasks

from shoal.manager.scheduler import (
    NodeInfo,
    fit_preassigned,
    group_tasks,
    node_rank,
    schedule_group,
)

NOW = 1_000_000.0


def spread_of(assigned: dict[str, str]) -> dict[str, int]:
    return dict(Counter(assigned.values()))


def test_spreads_evenly_over_nodes():
    nodes = infos(node("n1"), node("n2"), node("n3"))
    assigned, errors = schedule_group(tasks(10), nodes, NOW)
    assert errors == {}
    assert sorted(spread_of(assigned).values()) == [3, 3, 4]
    assert {n.active_tasks_count_by_service["svc"] for n in nodes.values()} == {3, 4}


def test_fills_up_nodes_with_fewer_tasks_of_the_service_first():
    nodes = infos(node("n1"), node("n2"), node("n3"))
    for i in range(4):
        nodes["n1"].add_task(task(f"old{i}", state="running", node_id="n1"))
    nodes["n2"].add_task(task("old9", state="running", node_id="n2"))
    assigned, _ = schedule_group(tasks(5), nodes, NOW)
    # water filling: 4/1/0 + 5 → 4/3/3
    assert spread_of(assigned) == {"n2": 2, "n3": 3}


def test_total_task_count_breaks_ties():
    nodes = infos(node("n1"), node("n2"), node("n3"))
    nodes["n1"].add_task(task("x1", "other", state="running"))
    nodes["n2"].add_task(task("x2", "other", state="running"))
    nodes["n2"].add_task(task("x3", "other", state="running"))
    assigned, _ = schedule_group(tasks(1), nodes, NOW)
    assert assigned == {"t0": "n3"}
    assigned, _ = schedule_group(tasks(2, prefix="u"), nodes, NOW)
    # n3 now has one task of svc; n1 (1 total) is preferred over n2 (2 total)
    assert assigned == {"u0": "n1", "u1": "n2"}


def test_single_replica_services_spread_over_nodes():
    nodes = infos(*(node(f"n{i}") for i in range(4)))
    placed = [schedule_group([task(f"t{s}", f"s{s}")], nodes, NOW)[0] for s in range(4)]
    assert sorted(next(iter(a.values())) for a in placed) == ["n0", "n1", "n2", "n3"]


def test_recent_failures_push_node_last():
    nodes = infos(node("n1"), node("n2"))
    for i in range(5):
        nodes["n1"].task_failed(task(f"f{i}"), now=NOW - 10)
    # n2 already has 3 tasks of the service and is still preferred
    for i in range(3):
        nodes["n2"].add_task(task(f"old{i}", state="running"))
    assigned, _ = schedule_group(tasks(3), nodes, NOW)
    assert spread_of(assigned) == {"n2": 3}
    assert node_rank(nodes["n1"], "svc", NOW)[0] == 5
    # four failures are not enough; failures of another service do not count
    nodes = infos(node("n1"), node("n2"))
    for i in range(4):
        nodes["n1"].task_failed(task(f"f{i}"), now=NOW - 10)
    for i in range(9):
        nodes["n2"].task_failed(task(f"g{i}", "other"), now=NOW - 10)
    assigned, _ = schedule_group(tasks(2), nodes, NOW)
    assert spread_of(assigned) == {"n1": 1, "n2": 1}
    # failures older than five minutes are forgotten
    nodes = infos(node("n1"), node("n2"))
    for i in range(6):
        nodes["n1"].task_failed(task(f"f{i}"), now=NOW - 400)
    nodes["n2"].add_task(task("old", state="running"))
    assigned, _ = schedule_group(tasks(1), nodes, NOW)
    assert assigned == {"t0": "n1"}


def test_penalised_nodes_still_used_when_nothing_else_fits():
    nodes = infos(node("n1"), node("n2", state="down"))
    for i in range(5):
        nodes["n1"].task_failed(task(f"f{i}"), now=NOW)
    assigned, errors = schedule_group(tasks(2), nodes, NOW)
    assert spread_of(assigned) == {"n1": 2} and errors == {}


def test_resources_are_consumed_within_the_batch():
    nodes = infos(node("n1", cpus=2, mem=8 * GB), node("n2", cpus=1, mem=8 * GB))
    group = tasks(5, cpus=1)
    assigned, errors = schedule_group(group, nodes, NOW)
    assert spread_of(assigned) == {"n1": 2, "n2": 1}
    assert errors == {
        "t3": "no suitable node (insufficient resources on 2 nodes)",
        "t4": "no suitable node (insufficient resources on 2 nodes)",
    }
    assert nodes["n1"].available_nano_cpus == 0
    # the next tick sees the same NodeInfos: still no room
    assigned, errors = schedule_group(group[3:], nodes, NOW)
    assert assigned == {} and len(errors) == 2


def test_explanation_matches_swarmkit_format():
    nodes = infos(
        node("n1", labels={"zone": "b"}),
        node("n2", labels={"zone": "b"}),
        node("n3", labels={"zone": "c"}),
        node("n4", cpus=1, labels={"zone": "a"}),
    )
    _, errors = schedule_group(tasks(1, cpus=2, constraints=["node.labels.zone==a"]), nodes, NOW)
    assert errors == {
        "t0": "no suitable node (scheduling constraints not satisfied on 3 nodes; "
        "insufficient resources on 1 node)"
    }


def test_no_nodes_at_all():
    assert schedule_group(tasks(1), {}, NOW) == ({}, {"t0": "no suitable node"})


def test_unavailable_nodes_are_skipped():
    nodes = infos(
        node("n1", state="down"),
        node("n2", availability="drain"),
        node("n3", availability="pause"),
        node("n4"),
    )
    assigned, errors = schedule_group(tasks(3), nodes, NOW)
    assert spread_of(assigned) == {"n4": 3} and errors == {}
    nodes.pop("n4")
    _, errors = schedule_group(tasks(1, prefix="u"), nodes, NOW)
    assert errors == {"u0": "no suitable node (3 nodes not available for new tasks)"}


def test_max_replicas_per_node():
    nodes = infos(node("n1"), node("n2"), node("n3", state="down"))
    assigned, errors = schedule_group(tasks(5, max_replicas=2), nodes, NOW)
    assert spread_of(assigned) == {"n1": 2, "n2": 2}
    assert errors == {
        "t4": "no suitable node (max replicas per node limit exceed; "
        "1 node not available for new tasks)"
    }


def test_host_mode_ports_one_task_per_node():
    nodes = infos(node("n1"), node("n2"), node("n3"))
    nodes["n3"].add_task(task("web-old", "other", host_ports=[8080], state="running"))
    assigned, errors = schedule_group(tasks(3, host_ports=[8080]), nodes, NOW)
    assert spread_of(assigned) == {"n1": 1, "n2": 1}
    assert errors == {"t2": "no suitable node (host-mode port already in use on 3 nodes)"}


def test_constraints_restrict_nodes():
    nodes = infos(
        node("m1", role="manager"), node("w1"), node("w2"), node("w3", labels={"gpu": "yes"})
    )
    assigned, _ = schedule_group(tasks(4, constraints=["node.role==worker"]), nodes, NOW)
    assert set(assigned.values()) == {"w1", "w2", "w3"}
    assigned, _ = schedule_group(tasks(2, "g", constraints=["node.labels.gpu==yes"]), nodes, NOW)
    assert spread_of(assigned) == {"w3": 2}


def test_platform_restricts_nodes():
    nodes = infos(node("amd", arch="x86_64"), node("arm", arch="aarch64"))
    assigned, _ = schedule_group(
        tasks(3, platforms=[{"Architecture": "arm64", "OS": "linux"}]), nodes, NOW
    )
    assert spread_of(assigned) == {"arm": 3}


# ---------------------------------------------------------------- placement preferences


def zone_nodes() -> dict[str, NodeInfo]:
    # zone a: 1 node, zone b: 3 nodes, one node without the label
    return infos(
        node("a1", labels={"zone": "a"}),
        node("b1", labels={"zone": "b"}),
        node("b2", labels={"zone": "b"}),
        node("b3", labels={"zone": "b"}),
        node("x1"),
    )


def test_spread_preference_evens_out_label_values():
    nodes = zone_nodes()
    assigned, _ = schedule_group(tasks(9, spread=["node.labels.zone"]), nodes, NOW)
    per_node = spread_of(assigned)
    # three branches (a, b, and "" for the node without the label): 3 tasks each
    assert per_node["a1"] == 3 and per_node["x1"] == 3
    assert [per_node[b] for b in ("b1", "b2", "b3")] == [1, 1, 1]


def test_spread_preference_accounts_for_existing_tasks():
    nodes = zone_nodes()
    for i in range(4):
        nodes["a1"].add_task(task(f"old{i}", state="running"))
    assigned, _ = schedule_group(tasks(5, spread=["node.labels.zone"]), nodes, NOW)
    per_node = spread_of(assigned)
    # a has 4 already: b and "" get to 4 and 5 (or 5 and 4) before a gets more
    assert "a1" not in per_node
    assert sum(per_node.get(b, 0) for b in ("b1", "b2", "b3")) in (2, 3)
    assert per_node.get("x1", 0) in (2, 3)


def test_spread_preference_full_branch_gives_way():
    nodes = infos(
        node("a1", cpus=1, labels={"zone": "a"}),
        node("b1", cpus=8, labels={"zone": "b"}),
    )
    assigned, errors = schedule_group(tasks(6, cpus=1, spread=["node.labels.zone"]), nodes, NOW)
    assert spread_of(assigned) == {"a1": 1, "b1": 5} and errors == {}


def test_spread_preference_branch_with_no_fitting_node():
    nodes = infos(
        node("a1", labels={"zone": "a"}, state="down"),
        node("b1", labels={"zone": "b"}),
        node("c1", labels={"zone": "c"}),
    )
    assigned, errors = schedule_group(tasks(4, spread=["node.labels.zone"]), nodes, NOW)
    assert spread_of(assigned) == {"b1": 2, "c1": 2} and errors == {}


def test_nested_spread_preferences_and_engine_labels():
    nodes = infos(
        node("n1", labels={"dc": "east"}, engine_labels={"rack": "r1"}),
        node("n2", labels={"dc": "east"}, engine_labels={"rack": "r2"}),
        node("n3", labels={"dc": "east"}, engine_labels={"rack": "r2"}),
        node("n4", labels={"dc": "west"}, engine_labels={"rack": "r1"}),
    )
    assigned, _ = schedule_group(
        tasks(8, spread=["node.labels.dc", "engine.labels.rack"]), nodes, NOW
    )
    per_node = spread_of(assigned)
    assert per_node["n4"] == 4  # west: half of the tasks
    assert per_node["n1"] == 2  # east/r1: half of east
    assert per_node["n2"] + per_node["n3"] == 2 and per_node["n2"] == 1


def test_unsupported_spread_descriptor_is_ignored():
    nodes = infos(node("n1"), node("n2"))
    assigned, _ = schedule_group(tasks(4, spread=["node.hostname"]), nodes, NOW)
    assert spread_of(assigned) == {"n1": 2, "n2": 2}


def test_spread_and_max_replicas_together():
    nodes = zone_nodes()
    assigned, errors = schedule_group(
        tasks(8, spread=["node.labels.zone"], max_replicas=2), nodes, NOW
    )
    per_node = spread_of(assigned)
    # a and "" are capped at 2 by MaxReplicas; b takes the rest over its three nodes
    assert per_node["a1"] == 2 and per_node["x1"] == 2
    assert sorted(per_node[b] for b in ("b1", "b2", "b3")) == [1, 1, 2]
    assert errors == {}


# ---------------------------------------------------------------- other entry points


def test_fit_preassigned():
    ni = NodeInfo(node("n1", cpus=1))
    t = task("g1", "global", cpus=1, node_id="n1")
    assert fit_preassigned(t, ni) is None
    assert ni.available_nano_cpus == 0
    assert fit_preassigned(task("g2", "global", cpus=1, node_id="n1"), ni) == (
        "insufficient resources on 1 node"
    )
    down = NodeInfo(node("n2", state="down"))
    assert fit_preassigned(task("g3", node_id="n2"), down) == "1 node not available for new tasks"


def test_group_tasks_by_service_and_spec():
    a1, a2 = task("a1", "a"), task("a2", "a")
    a3 = task("a3", "a", cpus=1)
    b1 = task("b1", "b")
    groups = group_tasks([a1, b1, a2, a3])
    assert [[t.id for t in g] for g in groups] == [["a1", "a2"], ["b1"], ["a3"]]


def test_assignment_is_recognised_when_the_store_reports_it():
    nodes = infos(node("n1"))
    t = task("t1", cpus=1)
    assigned, _ = schedule_group([t], nodes, NOW)
    assert assigned == {"t1": "n1"}
    stored = task("t1", cpus=1, state="assigned", node_id="n1")
    assert not nodes["n1"].add_task(stored)  # already counted
    assert nodes["n1"].available_nano_cpus == 3 * 10**9
