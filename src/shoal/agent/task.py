"""One task on this node: drive its container through the task states, one step at a time.

`decide()` is the pure state table (SwarmKit's `exec.Do`): from the task's observed state, its
desired state and what the engine reports, it names the one operation to make and the state
that follows. `TaskRunner` performs it and reports every status change.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from shoal.agent.controller import Controller, Observed
from shoal.api.errors import TaskFailed, TaskRejected
from shoal.api.models import ContainerStatus, PortStatus, Task, TaskStatus, timestamp
from shoal.api.states import TaskState

log = logging.getLogger(__name__)

S = TaskState
RECHECK = 30.0  # seconds between looks at a quiet container


@dataclass(frozen=True)
class Step:
    op: str  # none | wait | prepare | start | stop | adopt
    state: TaskState  # the state once `op` succeeded
    message: str = ""
    err: str | None = None


def decide(state: TaskState, desired: TaskState, seen: Observed) -> Step:
    """The next step for a task. `seen` is the container as the engine reports it now."""
    if state > S.RUNNING:
        return Step("none", state)  # terminal: nothing more to do
    if desired >= S.SHUTDOWN:
        if seen.running:
            return Step("stop", S.SHUTDOWN, "shutdown")
        return Step("none", S.SHUTDOWN, "shutdown")
    if state < S.ACCEPTED:
        return Step("none", S.ACCEPTED, "accepted")
    if state < S.READY:
        if seen.exists:
            return Step("none", S.READY, "prepared")
        return Step("prepare", S.READY, "prepared")
    if state < S.STARTING:
        if desired < S.RUNNING:
            return Step("wait", state)
        if seen.running or seen.started:
            return Step("none", S.STARTING, "starting")
        return Step("start", S.STARTING, "starting")
    # starting or running: follow the container
    if state == S.STARTING and seen.exists and not seen.running and not seen.started:
        return Step("start", S.STARTING, "starting")  # created, never started: start it
    if seen.exists and not seen.running and seen.started:
        code = seen.exit_code or 0
        if code == 0 and seen.health != "unhealthy":
            return Step("none", S.COMPLETE, "finished")
        err = f"task: non-zero exit ({code})"
        if seen.health == "unhealthy":
            err += ": dockerexec: unhealthy container"
        return Step("none", S.FAILED, "started", err)
    if not seen.exists:
        return Step("none", S.FAILED, "started", "task: container removed behind swarm's back")
    if seen.health == "unhealthy":
        return Step("stop", S.FAILED, "started", "task: dockerexec: unhealthy container")
    if state == S.STARTING and seen.health in (None, "healthy"):
        return Step("none", S.RUNNING, "started")
    return Step("wait", state)


Reporter = Callable[[str, TaskStatus], Awaitable[None] | None]


class TaskRunner:
    """Runs until the task is terminal and its desired state says so; `update()` delivers a
    newer copy of the task (desired-state changes); `poke()` says the container changed."""

    def __init__(
        self,
        task: Task,
        controller: Controller,
        report: Reporter,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.task = task
        self.clock = clock
        self.controller = controller
        self.report = report
        self.status = task.status.model_copy(deep=True)
        self._changed = asyncio.Event()
        self._stale = True
        self._looked_at = 0.0  # when the last inspect was sent (epoch seconds)

    def update(self, task: Task) -> None:
        self.task = task
        self._changed.set()

    def poke(self, at: float | None = None) -> None:
        """The container changed (an engine event, `at` its time): look at it again — unless
        the change came before our last look, which saw it (the events of our own create,
        start and stop calls, typically)."""
        if at is not None and at < self._looked_at:
            return
        self._stale = True
        self._changed.set()

    async def _look(self) -> Observed:
        self._stale = False
        self._looked_at = self.clock()
        return await self.controller.inspect()

    @property
    def state(self) -> TaskState:
        return self.status.state

    async def run(self) -> None:
        failures = 0
        seen: Observed | None = None
        while True:
            self._changed.clear()
            desired = self.task.desired_state
            try:
                if seen is None or self._stale:
                    seen = await self._look()
                step = decide(self.state, desired, seen)
                if step.op == "prepare":
                    await self._set(S.PREPARING, "preparing")
                    await self.controller.prepare()
                    seen = None
                elif step.op in ("start", "stop"):
                    await (
                        self.controller.start() if step.op == "start" else self.controller.stop()
                    )
                    seen = await self._look()
                failures = 0
            except TaskRejected as e:
                await self._set(S.REJECTED, "preparing", err=str(e))
                continue
            except TaskFailed as e:
                await self._set(S.FAILED, "starting", err=str(e))
                continue
            except Exception as e:  # noqa: BLE001 - engine trouble: retry with back-off
                failures += 1
                seen = None
                log.warning("task %s: %s", self.task.id, e)
                if failures >= 5 and self.state < S.RUNNING:
                    await self._set(S.FAILED, "error", err=str(e))
                    continue
                await asyncio.sleep(min(0.2 * 2**failures, 5))
                continue
            if step.state != self.state or step.err:
                if seen is None:
                    seen = await self._look()
                await self._set(step.state, step.message, err=step.err, seen=seen)
                continue
            if step.op == "none" and self.state > S.RUNNING:
                await self._release()
                return
            # Nothing to do until the task or its container changes (engine events wake us);
            # a running container is looked at again now and then in case one was missed.
            timeout = RECHECK * random.uniform(0.75, 1.25) if self.state >= S.STARTING else None
            try:
                await asyncio.wait_for(self._changed.wait(), timeout)
            except TimeoutError:
                self._stale = True

    async def _release(self) -> None:
        try:
            await self.controller.release()
        except Exception as e:  # noqa: BLE001 - what is left goes with the next full set
            log.warning("task %s: releasing: %s", self.task.id, e)

    async def _set(
        self, state: TaskState, message: str, err: str | None = None, seen: Observed | None = None
    ) -> None:
        if state < self.state:
            return
        status = TaskStatus(
            timestamp=timestamp(self.clock()), state=state, message=message, err=err
        )
        if seen is not None and seen.container_id:
            status.container_status = ContainerStatus(
                container_id=seen.container_id,
                pid=seen.pid if seen.running else 0,
                exit_code=seen.exit_code if not seen.running and seen.started else None,
            )
            if seen.ports:
                status.port_status = PortStatus(ports=seen.ports)
        elif self.status.container_status is not None:
            status.container_status = self.status.container_status
            status.port_status = self.status.port_status
        self.status = status
        log.debug("task %s: %s %s", self.task.id, status.state, err or "")
        result = self.report(self.task.id, status)
        if result is not None:
            await result
