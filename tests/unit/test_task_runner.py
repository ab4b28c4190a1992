"""TaskRunner against a fake engine controller: how often it looks at the container.

Engine events of the runner's own create/start calls come before its next inspect, which saw
them: they must not cost another inspect; a later event must."""

from __future__ import annotations

import asyncio
import time

from test_orchestrator_helpers import service, task

from shoal.agent.controller import Observed
from shoal.agent.task import TaskRunner


class FakeController:
    def __init__(self) -> None:
        self.seen = Observed()
        self.inspects = 0
        self.events: list[float] = []  # when the "engine" changed the container

    async def inspect(self) -> Observed:
        self.inspects += 1
        return self.seen

    async def prepare(self) -> None:
        self.seen = Observed(exists=True, container_id="c1")
        self.events.append(time.time())

    async def start(self) -> None:
        self.seen = Observed(exists=True, running=True, started=True, container_id="c1", pid=7)
        self.events.append(time.time())

    async def stop(self) -> None:
        self.seen = Observed(exists=True, started=True, exit_code=0, container_id="c1")

    async def release(self) -> None:
        self.released = True

    async def remove(self) -> None:
        self.seen = Observed()


def test_own_events_cost_no_inspect_later_ones_do() -> None:
    async def scenario() -> None:
        ctl = FakeController()
        states: list[str] = []
        t = task(service(replicas=1), 1, "assigned", node="n1")
        report = lambda _tid, st: states.append(st.state or "")  # noqa: E731
        runner = TaskRunner(t, ctl, report)  # type: ignore[arg-type]
        job = asyncio.create_task(runner.run())
        for _ in range(200):
            await asyncio.sleep(0.005)
            for at in ctl.events:  # the engine's events arrive after the calls returned
                runner.poke(at)
            ctl.events.clear()
            if states and states[-1] == "running":
                break
        assert states == ["accepted", "preparing", "ready", "starting", "running"]
        assert ctl.inspects == 3  # first look, after create, after start
        runner.poke(time.time() - 60)  # an old event: already seen
        await asyncio.sleep(0.02)
        assert ctl.inspects == 3
        ctl.seen = Observed(exists=True, started=True, exit_code=2, container_id="c1")
        runner.poke(time.time() + 1)  # the container died after our last look
        await asyncio.sleep(0.05)
        assert ctl.inspects == 4 and states[-1] == "failed"
        job.cancel()

    asyncio.run(scenario())
