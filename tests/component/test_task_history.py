"""The task reaper keeps `TaskHistoryRetentionLimit` tasks per slot, whatever the churn, and
deletes the tasks of a removed service once they stopped."""

from __future__ import annotations

from shoal.manager.controlapi import services
from shoal.testing.cluster import SimCluster

SEC = 1_000_000_000


async def test_history_is_kept_to_the_retention_limit() -> None:
    async with SimCluster(workers=1) as c:
        engine = c.nodes["w1"].engine
        engine.exits("crash:1", after=1.0, code=1)
        await c.create("crash", "crash:1", Mode={"Replicated": {"Replicas": 2}},
                       RestartPolicy={"Delay": 0})  # fmt: skip
        await c.until(lambda: len(engine.starts) >= 40, timeout=120, what="40 starts")
        await c.sleep(1)
        per_slot: dict[int, int] = {}
        for t in c.tasks("crash"):
            per_slot[t.slot or 0] = per_slot.get(t.slot or 0, 0) + 1
        assert sorted(per_slot) == [1, 2]
        assert all(n <= 5 for n in per_slot.values()), per_slot  # Docker's default limit


async def test_a_removed_services_tasks_go() -> None:
    async with SimCluster(workers=2) as c:
        service = await c.create("web", Mode={"Replicated": {"Replicas": 3}})
        await c.until(lambda: len(c.running("web")) == 3, what="3 running")
        await services.remove(c.store, "web")
        await c.until(lambda: not list(c.store.tasks_of(service.id)), what="tasks deleted")
        assert all(not sim.engine.containers for sim in c.nodes.values())
