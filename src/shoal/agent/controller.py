"""The engine side of one task: find, create, start, stop and remove its container.

`Controller` is the boundary the task runner drives; `EngineController` implements it on the
Docker Engine API, `shoal.testing.fakes.FakeController` in memory.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from shoal.agent import mounts
from shoal.agent.container import (
    create_body,
    endpoint_config,
    port_status,
    stop_timeout,
    task_addresses,
)
from shoal.agent.files import Payloads, TaskFiles, task_files
from shoal.agent.images import Puller
from shoal.agent.networks import EngineNetworks
from shoal.api import labels
from shoal.api.errors import EngineError, TaskFailed, TaskRejected
from shoal.api.models import NodeDescription, PortConfig, Task
from shoal.api.naming import container_name
from shoal.engine.client import Engine
from shoal.rpc.messages import ServiceInfo

log = logging.getLogger(__name__)


@dataclass
class Observed:
    """What the engine says about a task's container."""

    exists: bool = False
    running: bool = False
    exit_code: int | None = None
    health: str | None = None  # starting | healthy | unhealthy | None (no healthcheck)
    started: bool = False  # ever started
    container_id: str | None = None
    pid: int | None = None
    error: str | None = None
    ports: list[PortConfig] | None = None


class Controller(Protocol):
    async def inspect(self) -> Observed: ...
    async def prepare(self) -> None: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def release(self) -> None:
        """The task is over: free what its container had besides (its secret and config
        files)."""
        ...

    async def remove(self) -> None: ...


class EngineController:
    def __init__(
        self,
        engine: Engine,
        task: Task,
        service_name: str,
        ports: list[PortConfig] | None,
        puller: Puller,
        node: NodeDescription | None = None,
        service_labels: dict[str, str] | None = None,
        registry_auth: str | None = None,
        networks: EngineNetworks | None = None,
        payloads: Payloads | None = None,
        files: TaskFiles | None = None,
    ) -> None:
        self.networks = networks
        self.payloads = payloads or Payloads()
        self.files = files
        self.node = node
        self.service_labels = service_labels
        self.engine = engine
        self.puller = puller
        self.task = task
        self.name = container_name(task, service_name)
        self.service_name = service_name
        self.ports = ports
        self.registry_auth = registry_auth

    async def inspect(self) -> Observed:
        try:
            data: dict[str, Any] = await self.engine.request("GET", f"/containers/{self.name}/json")
        except EngineError as e:
            if e.status == 404:
                return Observed()
            raise
        if (data.get("Config") or {}).get("Labels", {}).get(labels.TASK_ID) != self.task.id:
            return Observed()
        st = data.get("State") or {}
        health = (st.get("Health") or {}).get("Status")
        started = st.get("StartedAt", "0001-01-01T00:00:00Z") != "0001-01-01T00:00:00Z"
        return Observed(
            exists=True,
            running=bool(st.get("Running")),
            exit_code=st.get("ExitCode"),
            health=health,
            started=started,
            container_id=data.get("Id"),
            pid=st.get("Pid") or None,
            error=st.get("Error") or None,
            ports=port_status(data, self.ports),
        )

    async def prepare(self) -> None:
        spec = self.task.spec.container_spec
        image = spec.image if spec else None
        if not image:
            raise TaskRejected("no image")
        refused = mounts.check(spec.mounts or []) if spec else None
        if refused:
            raise TaskRejected(refused)
        try:
            await self.puller.ensure(image, self.registry_auth)
        except EngineError as e:
            # The registry's own reason (no credentials, wrong ones, not reachable …): the
            # container create would only say "No such image" (moby's executor does the same).
            raise TaskRejected(e.message) from e
        await self._networks()
        body = create_body(
            self.task, self.service_name, self.ports, self.node, self.service_labels,
            await self._files(),
        )  # fmt: skip
        await self._volumes(body["HostConfig"].get("Mounts") or [])
        try:
            await self.engine.request(
                "POST", "/containers/create", params={"name": self.name}, body=body
            )
        except EngineError as e:
            if e.status == 409 and (await self.inspect()).exists:
                return  # created by an earlier attempt
            if e.status in (400, 404):
                raise TaskRejected(e.message) from e
            raise
        for name, ip in task_addresses(self.task)[1:]:
            await self.engine.request(
                "POST", f"/networks/{name}/connect",
                body={"Container": self.name, "EndpointConfig": endpoint_config(ip)},
            )  # fmt: skip

    async def _files(self) -> list[dict[str, Any]]:
        """Write the task's secret and config files; the container's mounts of them."""
        files = task_files(
            self.task, self.service_name, self.payloads, self.service_labels, self.node
        )
        if not files:
            return []
        if self.files is None:
            raise TaskRejected("this node cannot give tasks secrets or configs")
        try:
            return await asyncio.to_thread(self.files.write, self.task.id, files)
        except OSError as e:
            raise TaskRejected(f"writing the secret and config files: {e}") from e

    async def release(self) -> None:
        self.payloads = Payloads()  # nothing of them stays in memory either
        if self.files is not None:
            await asyncio.to_thread(self.files.remove, self.task.id)

    async def _networks(self) -> None:
        """The engine networks of the task's swarm networks exist before its container."""
        for att in self.task.networks_attachments or []:
            if self.networks is None:
                raise TaskRejected("this node cannot run tasks on swarm networks")
            try:
                await self.networks.ensure(att.network())
            except EngineError as e:
                raise TaskRejected(f"network {att.network().name}: {e.message}") from e

    async def _volumes(self, engine_mounts: list[dict[str, Any]]) -> None:
        """The task's named volumes with a driver config exist, with that driver, its
        options and labels, before its container (moby's `createVolumes`)."""
        for request in mounts.volume_requests(engine_mounts):
            try:
                volume = await self.engine.request("POST", "/volumes/create", body=request)
            except EngineError as e:
                raise TaskRejected(e.message) from e
            other = mounts.differs(request, volume if isinstance(volume, dict) else {})
            if other:
                log.warning("task %s: %s", self.task.id, other)

    async def start(self) -> None:
        try:
            await self.engine.request("POST", f"/containers/{self.name}/start")
        except EngineError as e:
            if e.status == 304:
                return
            if e.status in (400, 404, 500):
                raise TaskFailed(f"starting container failed: {e.message}") from e
            raise

    async def stop(self) -> None:
        spec = self.task.spec.container_spec
        timeout = stop_timeout(spec) if spec else 10
        try:
            await self.engine.request(
                "POST", f"/containers/{self.name}/stop", params={"t": str(timeout)},
                timeout=timeout + 30,
            )  # fmt: skip
        except EngineError as e:
            if e.status not in (304, 404):
                raise

    async def remove(self) -> None:
        """The container and its anonymous volumes (moby's executor removes them with it);
        named volumes stay."""
        try:
            await self.engine.request(
                "DELETE", f"/containers/{self.name}", params={"force": "1", "v": "1"}
            )
        except EngineError as e:
            if e.status != 404:
                raise
        await self.release()


class Controllers(Protocol):
    """Makes the controller of a task (the worker asks once per task), from what the
    assignment said of its service (name, labels, registry credentials) and the secrets and
    configs it refers to."""

    def __call__(
        self, task: Task, service: ServiceInfo, node: NodeDescription | None, payloads: Payloads
    ) -> Controller: ...

    def keep(self, task_ids: set[str]) -> None:
        """Free what is left of the tasks not in `task_ids` (after a restart)."""
        ...


class EngineControllers:
    """`Controllers` on the node's engine, sharing one image puller, the engine's swarm
    networks and the tasks' files."""

    def __init__(
        self,
        engine: Engine,
        networks: EngineNetworks | None = None,
        files: TaskFiles | None = None,
    ) -> None:
        self.engine = engine
        self.puller = Puller(engine)
        self.networks = networks
        self.files = files

    def __call__(
        self, task: Task, service: ServiceInfo, node: NodeDescription | None, payloads: Payloads
    ) -> Controller:
        ports = task.endpoint.ports if task.endpoint else None
        return EngineController(
            self.engine, task, service.name, ports, self.puller, node, service.labels,
            service.registry_auth, networks=self.networks, payloads=payloads, files=self.files,
        )  # fmt: skip

    def keep(self, task_ids: set[str]) -> None:
        if self.files is not None:
            self.files.keep(task_ids)
