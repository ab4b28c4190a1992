"""The same scenario twice gives the same history: every container start at the same
(virtual) time on the same node for the same slot, however loaded the machine is."""

from __future__ import annotations

from typing import Any

from shoal.testing.cluster import SimCluster

SEC = 1_000_000_000


async def scenario() -> list[tuple[float, str, str]]:
    async with SimCluster(workers=3) as c:
        begin = c.now()
        update = {"Parallelism": 2, "Delay": 1 * SEC}
        await c.create("web", "web:1", Mode={"Replicated": {"Replicas": 9}}, UpdateConfig=update)
        await c.until(lambda: len(c.running("web")) == 9, what="9 running")
        await c.kill("w2")
        await c.until(lambda: sum(c.where("web").values()) == 9, what="9 again")

        def to_v2(spec: dict[str, Any]) -> None:
            spec["TaskTemplate"]["ContainerSpec"]["Image"] = "web:2"

        await c.update("web", to_v2)
        await c.until(lambda: c.update_state("web") == "completed", 120, "update completed")
        return sorted(
            (round(at - begin, 3), node, name.split(".")[1])  # web.<slot>.<task id>
            for node, sim in c.nodes.items()
            for at, name in sim.engine.starts
        )


async def test_same_run_same_history() -> None:
    first = await scenario()
    second = await scenario()
    assert len(first) == 9 + 3 + 9  # the first 9, w2's 3 again elsewhere, 9 updated
    assert first == second
