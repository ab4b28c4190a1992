"""Scheduler filters, constraints, NodeInfo accounting and the pipeline's explanations."""

from __future__ import annotations

import pytest
from test_scheduler_helpers import CPU, GB, node, task

from shoal.manager.scheduler import NodeInfo, Pipeline, no_suitable_node
from shoal.manager.scheduler.filters import (
    ConstraintFilter,
    HostPortFilter,
    MaxReplicasFilter,
    PlatformFilter,
    PluginFilter,
    ReadyFilter,
    ResourceFilter,
)
from shoal.manager.scheduler.nodeinfo import MONITOR_FAILURES

# ---------------------------------------------------------------- NodeInfo


def test_nodeinfo_resources_counts_and_ports():
    ni = NodeInfo(node("n1", cpus=4, mem=8 * GB))
    assert ni.available_nano_cpus == 4 * CPU
    t1 = task("t1", "a", cpus=1, mem=GB, host_ports=[8080], state="running")
    t2 = task("t2", "b", cpus=0.5, state="assigned")
    assert ni.add_task(t1) and ni.add_task(t2)
    assert ni.available_nano_cpus == int(2.5 * CPU)
    assert ni.available_memory_bytes == 7 * GB
    assert ni.active_tasks_count == 2
    assert ni.active_tasks_count_by_service == {"a": 1, "b": 1}
    assert ni.used_host_ports == {("tcp", 8080)}
    assert not ni.add_task(t1)  # same task again: nothing changes
    assert ni.remove_task(t1)
    assert not ni.remove_task(t1)
    assert ni.available_nano_cpus == int(3.5 * CPU)
    assert ni.available_memory_bytes == 8 * GB
    assert ni.used_host_ports == set()
    assert ni.active_tasks_count_by_service == {"a": 0, "b": 1}


def test_nodeinfo_desired_state_changes_active_count_only():
    ni = NodeInfo(node("n1"))
    ni.add_task(task("t1", cpus=1, state="running"))
    assert ni.active_tasks_count == 1
    # desired shutdown while still running: resources held, no longer active
    assert ni.add_task(task("t1", cpus=1, state="running", desired="shutdown"))
    assert ni.active_tasks_count == 0
    assert ni.available_nano_cpus == 3 * CPU
    # a tracked task past running is removed
    assert ni.add_task(task("t1", cpus=1, state="shutdown", desired="shutdown"))
    assert ni.tasks == {}
    assert ni.available_nano_cpus == 4 * CPU
    # an untracked task past running is ignored
    assert not ni.add_task(task("t2", state="failed"))
    # job tasks (desired complete) are active, as in swarmkit
    ni.add_task(task("j1", desired="complete", state="running"))
    assert ni.active_tasks_count == 1


def test_nodeinfo_update_node_recomputes_available():
    ni = NodeInfo(node("n1", cpus=4), [task("t1", cpus=1, state="running")])
    ni.update_node(node("n1", cpus=2))
    assert ni.available_nano_cpus == 1 * CPU


def test_nodeinfo_recent_failures_window():
    ni = NodeInfo(node("n1"), now=0.0)
    for i in range(5):
        ni.task_failed(task(f"f{i}", "a"), now=100.0 + i)
    assert ni.count_recent_failures("a", 110.0) == 5
    assert ni.count_recent_failures("b", 110.0) == 0
    assert ni.count_recent_failures("a", 101.5 + MONITOR_FAILURES) == 3
    assert ni.count_recent_failures("a", 1000.0) == 0
    ni.task_failed("a", now=1000.0)  # old ones are dropped when a new one is recorded
    assert ni.recent_failures["a"] == [1000.0]


def test_nodeinfo_generic_resources():
    ni = NodeInfo(
        node(
            "n1",
            generic=[
                {"DiscreteResourceSpec": {"Kind": "ssd", "Value": 2}},
                {"NamedResourceSpec": {"Kind": "gpu", "Value": "GPU-1"}},
                {"NamedResourceSpec": {"Kind": "gpu", "Value": "GPU-2"}},
            ],
        )
    )
    assert ni.available_generic == {"ssd": 2, "gpu": 2}
    ni.add_task(task("t1", generic=[{"DiscreteResourceSpec": {"Kind": "gpu", "Value": 2}}]))
    assert ni.available_generic == {"ssd": 2, "gpu": 0}
    f = ResourceFilter()
    assert f.set_task(task("t2", generic=[{"DiscreteResourceSpec": {"Kind": "gpu", "Value": 1}}]))
    assert not f.check(ni)
    assert f.set_task(task("t3", generic=[{"DiscreteResourceSpec": {"Kind": "ssd", "Value": 2}}]))
    assert f.check(ni)


# ---------------------------------------------------------------- filters


def test_ready_filter():
    f = ReadyFilter()
    assert f.set_task(task("t"))
    assert f.check(NodeInfo(node("n")))
    assert not f.check(NodeInfo(node("n", state="down")))
    assert not f.check(NodeInfo(node("n", state="unknown")))
    assert not f.check(NodeInfo(node("n", availability="drain")))
    assert not f.check(NodeInfo(node("n", availability="pause")))
    assert f.explain(1) == "1 node not available for new tasks"
    assert f.explain(3) == "3 nodes not available for new tasks"


def test_resource_filter():
    f = ResourceFilter()
    assert not f.set_task(task("t"))
    assert f.set_task(task("t", cpus=2, mem=GB))
    assert f.check(NodeInfo(node("n", cpus=2, mem=GB)))
    assert not f.check(NodeInfo(node("n", cpus=1, mem=8 * GB)))
    assert not f.check(NodeInfo(node("n", cpus=8, mem=GB - 1)))
    full = NodeInfo(node("n", cpus=2), [task("x", cpus=1, state="running")])
    assert not f.check(full)
    assert f.explain(1) == "insufficient resources on 1 node"
    assert f.explain(2) == "insufficient resources on 2 nodes"


def _constrained_node() -> NodeInfo:
    return NodeInfo(
        node(
            "abc",
            labels={"zone": "eu-1", "Disk": "ssd"},
            engine_labels={"kernel": "6"},
            hostname="web1",
            role="manager",
            addr="10.1.2.3",
        )
    )


@pytest.mark.parametrize(
    "expr",
    [
        "node.id==abc",
        "node.hostname==WEB1",
        "node.hostname!=web2",
        "node.role==manager",
        "node.ROLE == Manager",
        "node.platform.os==linux",
        "node.platform.arch==x86_64",
        "node.labels.zone==eu-1",
        "node.labels.Disk==SSD",
        "node.labels.disk!=ssd",  # label names are case sensitive
        "node.labels.missing!=x",
        "engine.labels.kernel==6",
        "node.ip==10.1.2.3",
        "node.ip==10.1.0.0/16",
        "node.ip!=192.168.0.0/24",
    ],
    ids=str,
)
def test_constraint_filter_accepts(expr):
    f = ConstraintFilter()
    assert f.set_task(task("t", constraints=[expr]))
    assert f.check(_constrained_node())


@pytest.mark.parametrize(
    "expr",
    [
        "node.id==abd",
        "node.role==worker",
        "node.labels.zone!=eu-1",
        "node.labels.missing==x",
        "engine.labels.kernel==5",
        "node.ip==10.9.9.9",
        "node.ip!=10.1.0.0/16",
        "node.ip==not-an-ip",
        "node.unknown==x",
    ],
    ids=str,
)
def test_constraint_filter_rejects(expr):
    f = ConstraintFilter()
    assert f.set_task(task("t", constraints=[expr]))
    assert not f.check(_constrained_node())


def test_constraint_filter():
    f = ConstraintFilter()
    assert not f.set_task(task("t"))
    assert not f.set_task(task("t", constraints=["node.labels.x ~ y"]))  # invalid: disabled
    assert f.set_task(task("t", constraints=["node.role==manager", "node.labels.zone==eu-2"]))
    assert not f.check(_constrained_node())
    assert f.explain(1) == "scheduling constraints not satisfied on 1 node"
    assert f.explain(4) == "scheduling constraints not satisfied on 4 nodes"


def test_platform_filter():
    f = PlatformFilter()
    assert not f.set_task(task("t"))
    assert f.set_task(task("t", platforms=[{"Architecture": "amd64", "OS": "linux"}]))
    assert f.check(NodeInfo(node("n", arch="x86_64")))
    assert not f.check(NodeInfo(node("n", arch="aarch64")))
    assert not f.check(NodeInfo(node("n", os="windows")))
    assert f.set_task(task("t", platforms=[{"Architecture": "arm64"}, {"OS": "windows"}]))
    assert f.check(NodeInfo(node("n", arch="aarch64")))
    assert f.check(NodeInfo(node("n", os="windows")))
    assert not f.check(NodeInfo(node("n")))
    assert f.explain(1) == "unsupported platform on 1 node"
    assert f.explain(2) == "unsupported platform on 2 nodes"


def test_host_port_filter():
    f = HostPortFilter()
    assert not f.set_task(task("t"))
    assert f.set_task(task("t", host_ports=[80]))
    n = NodeInfo(node("n"))
    assert f.check(n)
    n.add_task(task("other", "svc2", host_ports=[80], state="running"))
    assert not f.check(n)
    assert f.set_task(task("t", host_ports=[81]))
    assert f.check(n)
    assert f.explain(1) == "host-mode port already in use on 1 node"
    assert f.explain(2) == "host-mode port already in use on 2 nodes"


def test_max_replicas_filter():
    f = MaxReplicasFilter()
    assert not f.set_task(task("t"))
    assert f.set_task(task("t", "s", max_replicas=2))
    n = NodeInfo(node("n"))
    n.add_task(task("a", "s", state="running"))
    assert f.check(n)
    n.add_task(task("b", "s", state="running"))
    assert not f.check(n)
    n.add_task(task("c", "other", state="running"))
    assert f.explain(1) == f.explain(5) == "max replicas per node limit exceed"


def test_plugin_filter():
    f = PluginFilter()
    assert not f.set_task(task("t"))
    assert f.set_task(task("t", log_driver="gelf"))
    with_log = [{"Type": "Log", "Name": "json-file"}, {"Type": "Log", "Name": "gelf"}]
    assert f.check(NodeInfo(node("n", plugins=with_log)))
    assert not f.check(NodeInfo(node("n", plugins=[{"Type": "Log", "Name": "json-file"}])))
    assert f.check(NodeInfo(node("n", plugins=[])))  # no log drivers listed: old engine
    assert f.explain(2) == "missing plugin on 2 nodes"


# ---------------------------------------------------------------- pipeline


def test_pipeline_counts_first_failure_and_orders_by_count():
    p = Pipeline()
    p.set_task(task("t", cpus=2, constraints=["node.labels.zone==a"]))
    nodes = [
        node("n1", state="down", labels={"zone": "b"}),  # ready fails first
        node("n2", labels={"zone": "b"}),
        node("n3", labels={"zone": "c"}),
        node("n4", labels={"zone": "b"}),
        node("n5", cpus=1, labels={"zone": "a"}),
    ]
    assert not any(p.process(NodeInfo(n)) for n in nodes)
    assert p.explain() == (
        "scheduling constraints not satisfied on 3 nodes; "
        "1 node not available for new tasks; insufficient resources on 1 node"
    )
    assert no_suitable_node(p.explain()).startswith("no suitable node (scheduling constraints")


def test_pipeline_ties_keep_filter_order_and_success_resets():
    p = Pipeline()
    p.set_task(task("t", cpus=2, constraints=["node.labels.zone==a"]))
    p.process(NodeInfo(node("n1", labels={"zone": "b"})))
    p.process(NodeInfo(node("n2", cpus=1, labels={"zone": "a"})))
    p.process(NodeInfo(node("n3", state="down")))
    assert p.explain() == (
        "1 node not available for new tasks; insufficient resources on 1 node; "
        "scheduling constraints not satisfied on 1 node"
    )
    assert p.process(NodeInfo(node("n4", labels={"zone": "a"})))
    assert p.explain() == ""


def test_no_suitable_node_text():
    assert no_suitable_node("") == "no suitable node"
    assert (
        no_suitable_node("insufficient resources on 1 node")
        == "no suitable node (insufficient resources on 1 node)"
    )


def test_disabled_filters_never_fail():
    p = Pipeline()
    p.set_task(task("t"))
    assert p.process(NodeInfo(node("n", cpus=0, mem=0)))
