"""A node that dies or goes silent: it is marked down and its tasks run elsewhere."""

from __future__ import annotations

from shoal.testing.cluster import SimCluster


async def test_killed_node_is_down_and_its_tasks_move() -> None:
    async with SimCluster(workers=3) as c:
        await c.create("web", Mode={"Replicated": {"Replicas": 6}})
        await c.until(lambda: len(c.running("web")) == 6, what="6 running")
        assert c.where("web") == {"m1": 0, "w1": 2, "w2": 2, "w3": 2}
        killed_at = c.now()
        await c.kill("w1")
        down = await c.until(lambda: c.down("w1"), what="w1 down")
        assert down <= 1.5  # one heartbeat period (1 s) after the connection dropped
        await c.until(lambda: sum(c.where("web").values()) == 6, what="6 containers again")
        assert c.where("web") == {"m1": 0, "w1": 0, "w2": 3, "w3": 3}
        assert c.now() - killed_at < 5  # DESIGN §4: a dead node's tasks run elsewhere in 5 s


async def test_silent_node_is_down_after_the_grace_period() -> None:
    async with SimCluster(workers=2) as c:
        await c.create("web", Mode={"Replicated": {"Replicas": 4}})
        await c.until(lambda: len(c.running("web")) == 4, what="4 running")
        c.partition("w2")
        down = await c.until(lambda: c.down("w2"), what="w2 down")
        assert 3 <= down <= 4.5  # 3 heartbeat periods + 0.5 s of slack, checked every 0.5 s
        await c.until(lambda: c.where("web")["w1"] == 4, what="all 4 on w1")
        c.heal("w2")
        await c.until(lambda: c.ready("w2"), what="w2 ready again")
        # Its superseded tasks are stopped: never two live tasks per slot.
        await c.until(lambda: c.where("web")["w2"] == 0, what="w2's old containers stopped")
        assert c.where("web") == {"m1": 0, "w1": 4, "w2": 0}
