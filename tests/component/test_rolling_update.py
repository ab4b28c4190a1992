"""Rolling updates on the mock clock: batches of `parallelism`, `delay` between them, order,
and what a failure does (pause, rollback)."""

from __future__ import annotations

from typing import Any

from shoal.api.states import TaskState
from shoal.testing.cluster import SimCluster

SEC = 1_000_000_000


def to_image(image: str) -> Any:
    def change(spec: dict[str, Any]) -> None:
        spec["TaskTemplate"]["ContainerSpec"]["Image"] = image

    return change


async def test_batches_of_parallelism_with_the_delay_between_them() -> None:
    async with SimCluster(workers=3) as c:
        update = {"Parallelism": 2, "Delay": 3 * SEC, "Order": "stop-first"}
        await c.create("web", "web:1", Mode={"Replicated": {"Replicas": 6}}, UpdateConfig=update)
        await c.until(lambda: len(c.running("web")) == 6, what="6 running")
        begun = c.now()
        await c.update("web", to_image("web:2"))
        await c.until(lambda: c.update_state("web") == "completed", 120, "update completed")
        starts = sorted(
            at for sim in c.nodes.values() for at, _ in sim.engine.starts if at >= begun
        )
        assert len(starts) == 6
        batches = [starts[i : i + 2] for i in range(0, 6, 2)]
        for batch in batches:
            assert batch[1] - batch[0] < 0.5, batches  # the two of a batch start together
        for prev, nxt in zip(batches, batches[1:], strict=False):
            assert 3.0 <= nxt[0] - prev[1] <= 3.5, batches  # then the delay
        images = {sim.engine.containers[n].image for sim in c.nodes.values() for n in
                  [x.name for x in sim.engine.running("web")]}  # fmt: skip
        assert images == {"web:2"}
        assert len(c.running("web")) == 6


async def test_failed_update_pauses() -> None:
    async with SimCluster(workers=2) as c:
        for sim in c.nodes.values():
            sim.engine.exits("web:bad", after=1.0, code=3)
        update = {
            "Parallelism": 1, "Delay": 2 * SEC, "FailureAction": "pause", "Monitor": 5 * SEC
        }  # fmt: skip
        await c.create("web", "web:1", Mode={"Replicated": {"Replicas": 4}}, UpdateConfig=update)
        await c.until(lambda: len(c.running("web")) == 4, what="4 running")
        await c.update("web", to_image("web:bad"))

        await c.until(lambda: c.update_state("web") == "paused", 60, "update paused")
        status = c.service("web").update_status
        assert status is not None and status.message is not None
        assert status.message.startswith("update paused due to failure or early termination")
        await c.sleep(30)
        bad = [t for t in c.tasks("web") if t.spec.container_spec.image == "web:bad"]  # type: ignore[union-attr]
        assert len({t.slot for t in bad}) == 1  # paused at the first slot (failed after 1 s)
        old = [t for t in c.running("web") if t.spec.container_spec.image == "web:1"]  # type: ignore[union-attr]
        assert len(old) == 3  # the other three keep running the old version


async def test_failed_update_rolls_back() -> None:
    async with SimCluster(workers=2) as c:
        for sim in c.nodes.values():
            sim.engine.exits("web:bad", after=1.0, code=3)
        update = {"Parallelism": 2, "FailureAction": "rollback", "Monitor": 5 * SEC}
        await c.create("web", "web:1", Mode={"Replicated": {"Replicas": 4}}, UpdateConfig=update)
        await c.until(lambda: len(c.running("web")) == 4, what="4 running")
        await c.update("web", to_image("web:bad"))

        await c.until(
            lambda: c.update_state("web") == "rollback_completed", 120, "rollback completed"
        )
        service = c.service("web")
        assert service.spec.task_template.container_spec.image == "web:1"  # type: ignore[union-attr]
        running = c.running("web")
        assert len(running) == 4
        assert {t.spec.container_spec.image for t in running} == {"web:1"}  # type: ignore[union-attr]
        assert all(t.status.state == TaskState.RUNNING for t in running)


async def test_a_changed_endpoint_rolls_the_tasks() -> None:
    """`--publish-add` / `--publish-rm` (host mode) change what the tasks carry: they are
    replaced like any other change, and the new tasks carry the new ports."""
    async with SimCluster(workers=2) as c:
        await c.create("web", "web:1", Mode={"Replicated": {"Replicas": 2}})
        await c.until(lambda: len(c.running("web")) == 2, what="2 running")
        first = {t.id for t in c.running("web")}
        port = {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8088, "PublishMode": "host"}

        def publish(spec: dict[str, Any]) -> None:
            spec["EndpointSpec"] = {"Mode": "vip", "Ports": [port]}

        await c.update("web", publish)
        await c.until(lambda: c.update_state("web") == "completed", 60, "update completed")
        second = c.running("web")
        assert len(second) == 2 and not first & {t.id for t in second}
        for t in second:
            assert t.endpoint is not None and t.endpoint.ports is not None
            assert [p.published_port for p in t.endpoint.ports] == [8088]

        def unpublish(spec: dict[str, Any]) -> None:
            spec["EndpointSpec"] = {"Mode": "vip"}

        await c.update("web", unpublish)
        await c.until(
            lambda: (
                len(c.running("web")) == 2
                and not {t.id for t in second} & {t.id for t in c.running("web")}
            ),
            60,
            "replaced again",
        )
        assert all(t.endpoint is not None and not t.endpoint.ports for t in c.running("web"))


async def test_a_scale_replaces_no_task() -> None:
    """`docker service scale` sends back the spec it read, with what Docker's API always
    shows (`Runtime`, `Isolation`, …): the same tasks, fewer of them."""
    async with SimCluster(workers=2) as c:
        await c.create("web", "web:1", Mode={"Replicated": {"Replicas": 6}})
        await c.until(lambda: len(c.running("web")) == 6, what="6 running")
        kept = {t.id for t in c.running("web") if t.slot in (1, 2, 3)}

        def scale(spec: dict[str, Any]) -> None:
            assert spec["TaskTemplate"]["Runtime"] == "container"  # as read from the API
            spec["Mode"] = {"Replicated": {"Replicas": 3}}

        await c.update("web", scale)
        await c.until(lambda: len(c.tasks("web")) == 3, 30, "3 tasks left")
        assert {t.id for t in c.running("web")} == kept
        assert c.update_state("web") is None
