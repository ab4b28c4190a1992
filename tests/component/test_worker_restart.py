"""shoald restarts on a node: its agent adopts the containers of its tasks (no task is
restarted) and removes containers that belong to no task of the node."""

from __future__ import annotations

from shoal.api.models import Task
from shoal.testing.cluster import SimCluster


async def test_restarted_worker_adopts_its_tasks() -> None:
    async with SimCluster(workers=2) as c:
        await c.create("web", Mode={"Replicated": {"Replicas": 4}})
        await c.until(lambda: len(c.running("web")) == 4, what="4 running")
        engine = c.nodes["w1"].engine
        before = {n: ct.id for n, ct in engine.containers.items()}
        started = len(engine.starts)
        # A container of a task that no longer exists, left behind by an earlier life.
        stray = engine.create(
            Task(
                id="gone0000000000000000000000", service_id="old", slot=1, node_id=c.nodes["w1"].id
            ),
            "old",
        )
        await c.restart("w1")
        await c.until(lambda: c.nodes["w1"].connections == 2, what="w1 reconnected")
        await c.until(lambda: stray.name not in engine.containers, what="the stray removed")
        await c.sleep(10)
        assert {n: ct.id for n, ct in engine.containers.items()} == before
        assert len(engine.starts) == started  # nothing started again
        assert len(c.running("web")) == 4
        assert c.ready("w1")


async def test_a_restart_that_said_so_keeps_the_node_up() -> None:
    """SIGTERM tells the manager (`Stopping`): 2 s away is within the grace, the node stays
    up and no task moves. A SIGKILLed shoald says nothing: its node is down after 1 s."""
    async with SimCluster(workers=2) as c:
        await c.create("web", Mode={"Replicated": {"Replicas": 4}})
        await c.until(lambda: len(c.running("web")) == 4, what="4 running")
        before = {t.id for t in c.running("web")}
        await c.restart("w1", away=2.0)
        assert c.ready("w1")
        await c.until(lambda: c.nodes["w1"].connections == 2, what="w1 reconnected")
        await c.sleep(5)
        assert {t.id for t in c.running("web")} == before and c.ready("w1")
        await c.restart("w1", away=2.0, kill=True)
        assert c.down("w1")
