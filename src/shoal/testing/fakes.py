"""Fakes of a node's engine for component tests: `FakeEngine` (the `EngineAPI` the worker
uses: description, container list and removal, the event stream) and `FakeController` (the
`Controller` of one task's container), sharing the engine's containers in memory.

Containers start at once and run until stopped, unless the engine is told otherwise for their
image: `exits(image, after, code)` makes them exit by themselves `after` seconds after they
start (on the engine's clock, so on virtual time under looptime), `rejects(image)` makes
`prepare` fail as a missing image does, `requires_login(image, auth)` makes it fail as a
registry that wants a login does, unless the task's controller has those credentials.
Every prepare is recorded in `pulls` with the credentials it had, and the secret and config
files it would write in `files` (by task ID, until the task is over).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from shoal.agent.container import swarm_labels
from shoal.agent.controller import Controller, Observed
from shoal.agent.files import Payloads, TaskFile, task_files
from shoal.api import labels
from shoal.api.errors import EngineError, TaskRejected
from shoal.api.models import NodeDescription, Task
from shoal.api.naming import container_name
from shoal.rpc.messages import ServiceInfo

NO_CREDENTIALS = "no basic auth credentials"  # what a registry behind a login says
WRONG_CREDENTIALS = "unauthorized: authentication required"


@dataclass
class FakeContainer:
    id: str
    name: str
    image: str
    labels: dict[str, str]
    running: bool = False
    started: bool = False
    exit_code: int | None = None
    pid: int = 0
    exit_timer: asyncio.TimerHandle | None = field(default=None, repr=False)


class FakeEngine:
    def __init__(
        self,
        hostname: str,
        clock: Callable[[], float] = time.time,
        *,
        cpus: int = 2,
        memory: int = 4 * 1024**3,
        engine_labels: dict[str, str] | None = None,
    ) -> None:
        self.hostname = hostname
        self.clock = clock
        self.cpus = cpus
        self.memory = memory
        self.engine_labels = engine_labels or {}
        self.containers: dict[str, FakeContainer] = {}  # by name
        self.starts: list[tuple[float, str]] = []  # (when, container name) of every start
        self._ids = itertools.count(1)
        self._exits: dict[str, tuple[float, int]] = {}
        self._rejects: set[str] = set()
        self._logins: dict[str, str] = {}  # image → the registry credentials it needs
        self.pulls: list[tuple[str, str | None]] = []  # (image, credentials) of each prepare
        self._watchers: list[asyncio.Queue[dict[str, Any]]] = []
        # The secret and config files of each task that has them, as a real node writes them.
        self.files: dict[str, list[TaskFile]] = {}
        self.controllers = FakeControllers(self)  # the `Controllers` to give the worker

    # ------------------------------------------------------------------ behaviour

    def exits(self, image: str, after: float, code: int = 0) -> None:
        self._exits[image] = (after, code)

    def rejects(self, image: str) -> None:
        self._rejects.add(image)

    def requires_login(self, image: str, auth: str) -> None:
        self._logins[image] = auth

    def refusal(self, image: str, auth: str | None) -> str | None:
        """Why the registry refuses to give `image` with these credentials (None: it gives
        it)."""
        wanted = self._logins.get(image)
        if wanted is None or auth == wanted:
            return None
        return WRONG_CREDENTIALS if auth else NO_CREDENTIALS

    def running(self, service_name: str | None = None) -> list[FakeContainer]:
        return [
            c
            for c in self.containers.values()
            if c.running
            and (service_name is None or c.labels.get(labels.SERVICE_NAME) == service_name)
        ]

    # ------------------------------------------------------------------ EngineAPI

    async def info(self) -> dict[str, Any]:
        return {
            "Name": self.hostname,
            "NCPU": self.cpus,
            "MemTotal": self.memory,
            "OSType": "linux",
            "Architecture": "x86_64",
            "ServerVersion": "fake",
            "Labels": [f"{k}={v}" for k, v in self.engine_labels.items()],
            "Plugins": {"Volume": ["local"], "Network": ["bridge"], "Log": ["json-file"]},
        }

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        timeout: float | None = 60,
        headers: dict[str, str] | None = None,
    ) -> Any:
        if method == "GET" and path == "/containers/json":
            wanted = json.loads((params or {}).get("filters") or "{}").get("label", [])
            return [
                {"Id": c.id, "Names": ["/" + c.name], "Labels": c.labels}
                for c in self.containers.values()
                if all(_has_label(c.labels, f) for f in wanted)
            ]
        if method == "DELETE" and path.startswith("/containers/"):
            ref = path.rsplit("/", 1)[1]
            found = [c for c in self.containers.values() if ref in (c.id, c.name)]
            if not found:
                raise EngineError(404, f"No such container: {ref}")
            self.remove(found[0])
            return None
        raise EngineError(501, f"the fake engine does not answer {method} {path}")

    async def events(self, filters: dict[str, list[str]]) -> AsyncIterator[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._watchers.append(queue)
        wanted = filters.get("label", [])
        try:
            while True:
                ev = await queue.get()
                if all(_has_label(ev["Actor"]["Attributes"], f) for f in wanted):
                    yield ev
        finally:
            self._watchers.remove(queue)

    # ------------------------------------------------------------------ containers

    def create(self, task: Task, service_name: str) -> FakeContainer:
        name = container_name(task, service_name)
        image = (task.spec.container_spec.image if task.spec.container_spec else None) or ""
        c = FakeContainer(
            id=f"c{next(self._ids):06d}",
            name=name,
            image=image,
            labels=swarm_labels(task, service_name),
        )
        self.containers[name] = c
        self._emit(c, "create")
        return c

    def start(self, c: FakeContainer) -> None:
        c.running = c.started = True
        c.exit_code = None
        c.pid = 1000 + int(c.id[1:])
        self.starts.append((self.clock(), c.name))
        self._emit(c, "start")
        behaviour = self._exits.get(c.image)
        if behaviour is not None:
            after, code = behaviour
            c.exit_timer = asyncio.get_running_loop().call_later(after, self._exit, c, code)

    def stop(self, c: FakeContainer, code: int = 0) -> None:
        if c.running:
            self._exit(c, code)

    def remove(self, c: FakeContainer) -> None:
        if c.exit_timer is not None:
            c.exit_timer.cancel()
        self.containers.pop(c.name, None)
        self._emit(c, "destroy")

    def _exit(self, c: FakeContainer, code: int) -> None:
        if c.exit_timer is not None:
            c.exit_timer.cancel()
            c.exit_timer = None
        c.running = False
        c.exit_code = code
        c.pid = 0
        self._emit(c, "die")

    def _emit(self, c: FakeContainer, action: str) -> None:
        ev = {
            "Type": "container",
            "Action": action,
            "Actor": {"ID": c.id, "Attributes": dict(c.labels)},
            "timeNano": int(self.clock() * 1e9),
        }
        for q in self._watchers:
            q.put_nowait(ev)


class FakeControllers:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine

    def __call__(
        self, task: Task, service: ServiceInfo, node: NodeDescription | None, payloads: Payloads
    ) -> Controller:
        return FakeController(self.engine, task, service, payloads, node)

    def keep(self, task_ids: set[str]) -> None:
        for tid in [t for t in self.engine.files if t not in task_ids]:
            del self.engine.files[tid]


class FakeController:
    """One task's container on a `FakeEngine`."""

    def __init__(
        self,
        engine: FakeEngine,
        task: Task,
        service: ServiceInfo,
        payloads: Payloads | None = None,
        node: NodeDescription | None = None,
    ) -> None:
        self.engine = engine
        self.task = task
        self.service = service
        self.service_name = service.name
        self.registry_auth = service.registry_auth
        self.payloads = payloads or Payloads()
        self.node = node
        self.name = container_name(task, service.name)

    def _container(self) -> FakeContainer | None:
        c = self.engine.containers.get(self.name)
        return c if c is not None and c.labels.get(labels.TASK_ID) == self.task.id else None

    async def inspect(self) -> Observed:
        c = self._container()
        if c is None:
            return Observed()
        return Observed(
            exists=True,
            running=c.running,
            exit_code=c.exit_code,
            started=c.started,
            container_id=c.id,
            pid=c.pid or None,
        )

    async def prepare(self) -> None:
        image = self.task.spec.container_spec.image if self.task.spec.container_spec else None
        if not image or image in self.engine._rejects:
            raise TaskRejected(f"No such image: {image}")
        self.engine.pulls.append((image, self.registry_auth))
        refusal = self.engine.refusal(image, self.registry_auth)
        if refusal is not None:
            raise TaskRejected(refusal)
        files = task_files(self.task, self.service_name, self.payloads, self.service.labels,
                           self.node)  # fmt: skip
        if files:
            self.engine.files[self.task.id] = files
        if self._container() is None:
            self.engine.create(self.task, self.service_name)

    async def start(self) -> None:
        c = self._container()
        if c is None:
            raise EngineError(404, f"No such container: {self.name}")
        if not c.running:
            self.engine.start(c)

    async def stop(self) -> None:
        c = self._container()
        if c is not None:
            self.engine.stop(c)

    async def release(self) -> None:
        self.engine.files.pop(self.task.id, None)

    async def remove(self) -> None:
        c = self._container()
        if c is not None:
            self.engine.remove(c)
        await self.release()


def _has_label(attrs: dict[str, str], f: str) -> bool:
    key, eq, value = f.partition("=")
    return key in attrs and (not eq or attrs[key] == value)
