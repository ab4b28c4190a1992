"""The worker: turns assignment sets into one `TaskRunner` per task, watches the engine for
container changes, batches status reports, adopts its tasks' containers after a restart and
removes containers that belong to no task of this node."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from shoal.agent.controller import Controllers
from shoal.agent.files import Payloads
from shoal.agent.networks import NetworkHandler, report_names
from shoal.agent.session import Session
from shoal.agent.task import TaskRunner
from shoal.api import labels
from shoal.api.models import NodeDescription, TaskStatus
from shoal.engine.client import EngineAPI
from shoal.rpc.messages import Assignment, NetworkState, ServiceInfo

log = logging.getLogger(__name__)

REPORT_INTERVAL = 0.01  # gathers a burst; a report in flight gathers the next


class Worker:
    def __init__(
        self,
        engine: EngineAPI,
        node_id: str,
        controllers: Controllers,
        clock: Callable[[], float] = time.time,
        networks: NetworkHandler | None = None,
    ) -> None:
        self.networks = networks
        self.engine = engine
        self.node_id = node_id
        self.controllers = controllers
        self.clock = clock
        self.runners: dict[str, TaskRunner] = {}
        self.runner_tasks: dict[str, asyncio.Task[None]] = {}
        self.services: dict[str, ServiceInfo] = {}
        self.payloads = Payloads()  # the secrets and configs of this node's tasks
        self._pending: dict[str, TaskStatus] = {}
        self._pending_event = asyncio.Event()
        self.description: NodeDescription | None = None  # set by the agent

    async def run(self, session: Session) -> None:
        # A new session (another manager, perhaps) hears every task's status again: reports
        # sent into a session as it died may never have reached anyone.
        for tid, runner in self.runners.items():
            self._pending.setdefault(tid, runner.status)
        if self._pending:
            self._pending_event.set()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._report_loop(session))
            tg.create_task(self._watch_engine())
            if self.networks is not None:
                tg.create_task(report_names(self.engine, session))
            async for message in session.assignments():
                if isinstance(message, NetworkState):
                    await self._network_state(message)
                    await session.applied(message.version)
                elif isinstance(message, Assignment):
                    await self.apply(message)  # a RoleChange is the node's, not the worker's

    async def apply(self, a: Assignment) -> None:
        self.services.update(a.services)
        self.payloads.update(a.secrets, a.configs)
        if a.full:
            keep = {t.id for t in a.tasks}
            for tid in list(self.runners):
                if tid not in keep:
                    await self._forget(tid)
            await self._remove_strays(keep)
            self.controllers.keep(keep)
        for tid in a.removed:
            await self._forget(tid)
        for task in a.tasks:
            runner = self.runners.get(task.id)
            if runner is not None:
                runner.update(task)
                continue
            info = self.services.get(task.service_id) or ServiceInfo(name=task.service_id)
            controller = self.controllers(task, info, self.description, self.payloads.of(task))
            runner = TaskRunner(task, controller, self._report, self.clock)
            self.runners[task.id] = runner
            job = self.runner_tasks[task.id] = asyncio.create_task(runner.run())
            job.add_done_callback(lambda _: self._keep_payloads())
        # What the node knows of a service (its registry credentials among that), and the
        # secrets and configs of its tasks, last only as long as the node has tasks needing them.
        live = {r.task.service_id for r in self.runners.values()}
        for sid in [sid for sid in self.services if sid not in live]:
            del self.services[sid]
        self._keep_payloads()

    def _keep_payloads(self) -> None:
        """Forget the secrets and configs no task still to run here refers to."""
        self.payloads.keep(
            r.task for tid, r in self.runners.items()
            if tid in self.runner_tasks and not self.runner_tasks[tid].done()
        )  # fmt: skip

    async def _network_state(self, state: NetworkState) -> None:
        if self.networks is None:
            return
        try:
            await self.networks.apply(state)
        except Exception as e:  # noqa: BLE001 - the next state is applied in full anyway
            log.warning("applying the network state: %s", e)

    async def _forget(self, task_id: str) -> None:
        """The task was deleted from the cluster: stop running it and remove its container."""
        runner = self.runners.pop(task_id, None)
        job = self.runner_tasks.pop(task_id, None)
        if job is not None:
            job.cancel()
        self._pending.pop(task_id, None)
        if runner is not None:
            try:
                await runner.controller.remove()
            except Exception as e:  # noqa: BLE001 - retried by the stray sweep
                log.warning("removing container of task %s: %s", task_id, e)

    async def _remove_strays(self, keep: set[str]) -> None:
        filters = f'{{"label":["{labels.NODE_ID}={self.node_id}"]}}'
        try:
            containers = await self.engine.request(
                "GET", "/containers/json", params={"all": "1", "filters": filters}
            )
        except Exception as e:  # noqa: BLE001
            log.warning("listing containers: %s", e)
            return
        for c in containers or []:
            tid = (c.get("Labels") or {}).get(labels.TASK_ID)
            if tid and tid not in keep:
                log.info("removing stray container %s", c.get("Names"))
                try:
                    await self.engine.request(
                        "DELETE", f"/containers/{c['Id']}", params={"force": "1", "v": "1"}
                    )
                except Exception as e:  # noqa: BLE001
                    log.warning("removing stray %s: %s", c.get("Id"), e)

    def _report(self, task_id: str, status: TaskStatus) -> None:
        self._pending[task_id] = status
        self._pending_event.set()

    async def _report_loop(self, session: Session) -> None:
        while True:
            await self._pending_event.wait()
            await asyncio.sleep(REPORT_INTERVAL)
            self._pending_event.clear()
            batch, self._pending = self._pending, {}
            try:
                await session.report(batch)
            except Exception as e:  # noqa: BLE001 - keep them for the next try
                log.warning("reporting task status: %s", e)
                self._pending = {**batch, **self._pending}
                self._pending_event.set()
                await asyncio.sleep(0.5)

    async def _watch_engine(self) -> None:
        """Container events wake the runner of their task."""
        filters = {"type": ["container"], "label": [f"{labels.NODE_ID}={self.node_id}"]}
        while True:
            try:
                async for ev in self.engine.events(filters):
                    attrs = (ev.get("Actor") or {}).get("Attributes") or {}
                    runner = self.runners.get(attrs.get(labels.TASK_ID, ""))
                    if runner is not None:
                        nano = ev.get("timeNano")
                        runner.poke(nano / 1e9 if isinstance(nano, int) else None)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - engine restarting: look again later
                log.warning("engine events: %s", e)
            for runner in self.runners.values():
                runner.poke()
            await asyncio.sleep(1)

    async def stop(self) -> None:
        for job in self.runner_tasks.values():
            job.cancel()
        await asyncio.gather(*self.runner_tasks.values(), return_exceptions=True)
