"""`docker node promote/demote` reaching the node: the dispatcher tells a node's session when
the store gives it another role (and a node whose certificate names another role when it
connects); the leader's role loop stops counting a demoted manager once its member is gone."""

from __future__ import annotations

import json

from shoal.api.models import ManagerStatus, Node
from shoal.manager.controlapi import nodes
from shoal.testing.cluster import SimCluster


def roles_heard(received: list[str]) -> list[str]:
    return [m["role"] for m in map(json.loads, received) if m.get("type") == "role"]


async def set_role(c: SimCluster, name: str, role: str) -> None:
    node = c.node(name)
    spec = node.spec.to_api() if hasattr(node.spec, "to_api") else node.spec.model_dump()
    spec["Role"] = role
    await nodes.update(c.store, node.id, node.version.index, spec)


async def test_promotion_and_demotion_reach_the_node_and_its_tasks_run_on() -> None:
    async with SimCluster(workers=2) as c:
        await c.create("web", Mode={"Replicated": {"Replicas": 4}})
        await c.until(lambda: len(c.running("web")) == 4, what="4 running")
        before = {t.id for t in c.running("web")}
        w1 = c.nodes["w1"]
        await set_role(c, "w1", "manager")
        t = await c.until(lambda: roles_heard(w1.received) == ["manager"], what="w1 told")
        print(f"promotion heard after {t:.2f} s (virtual)")
        assert roles_heard(c.nodes["w2"].received) == []
        assert c.node("w1").spec.role == "manager"
        assert c.node("w1").manager_status is None  # until its member is added
        await set_role(c, "w1", "worker")
        await c.until(lambda: roles_heard(w1.received) == ["manager", "worker"], what="demoted")
        await c.sleep(2)
        assert {t.id for t in c.running("web")} == before  # nothing restarted
        assert w1.connections == 1


async def test_a_node_connecting_with_the_old_role_is_told_at_once() -> None:
    async with SimCluster(workers=1) as c:
        w1 = c.nodes["w1"]
        await c.until(lambda: c.ready("w1"), what="w1 ready")
        session = await c.dispatcher.register(w1.id, c.node("w1").description, "w1", "worker")
        assert session.queue.empty() or all(
            getattr(m, "type", "") != "role"
            for m in list(session.queue._queue)  # noqa: SLF001
        )
        await set_role(c, "w1", "manager")
        await c.sleep(0.1)
        again = await c.dispatcher.register(w1.id, c.node("w1").description, "w1", "worker")
        first = again.queue.get_nowait()
        assert getattr(first, "type", "") == "role" and first.role == "manager"


async def test_the_leader_stops_counting_a_demoted_manager() -> None:
    async with SimCluster(workers=1) as c:
        await c.until(lambda: c.ready("w1"), what="w1 ready")
        w1 = c.node("w1")

        def member(n: Node) -> bool:
            n.spec.role = "manager"
            n.manager_status = ManagerStatus(leader=False, reachability="unreachable", addr="x")
            return True

        await c.store.modify(Node, {w1.id: member})
        await set_role(c, "w1", "worker")  # unreachable: allowed, the cluster shrinks
        t = await c.until(lambda: c.node("w1").manager_status is None, what="not a manager")
        print(f"manager status cleared after {t:.2f} s (virtual)")
        assert c.node("w1").spec.role == "worker"
