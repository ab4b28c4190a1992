"""Registry credentials (`docker service create|update --with-registry-auth`) on the
simulated cluster: stored sealed with the service, handed only to the nodes that run its
tasks and used for their pulls; a refused pull leaves the registry's reason in the task; an
update that sends none keeps them, a rollback takes the previous spec's, new ones restart no
task."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from shoal.agent.worker import Worker
from shoal.api.errors import DaemonError
from shoal.api.models import ContainerSpec, Task, TaskSpec
from shoal.api.states import TaskState
from shoal.manager.controlapi import services
from shoal.rpc.messages import Assignment, ServiceInfo
from shoal.store.kinds import key_of
from shoal.testing.cluster import SimCluster
from shoal.testing.fakes import NO_CREDENTIALS, WRONG_CREDENTIALS, FakeEngine

SEC = 1_000_000_000
PRIVATE = "reg:5001/private/app:1"
ON_W1 = {"Constraints": ["node.hostname==w1"]}


def auth(password: str) -> str:
    """What the docker CLI sends as `X-Registry-Auth` after `docker login reg:5001`."""
    config = {"username": "alice", "password": password, "serveraddress": "reg:5001"}
    return base64.urlsafe_b64encode(json.dumps(config).encode()).decode()


OLD, NEW = auth("old-secret"), auth("new-secret")


def to_image(image: str) -> Any:
    def change(spec: dict[str, Any]) -> None:
        spec["TaskTemplate"]["ContainerSpec"]["Image"] = image

    return change


def told(c: SimCluster, node: str, secret: str) -> bool:
    """Some assignment sent to the node carries `secret`."""
    return any(secret in message for message in c.nodes[node].received)


async def test_credentials_go_only_to_the_node_that_pulls() -> None:
    async with SimCluster(workers=2) as c:
        for sim in c.nodes.values():
            sim.engine.requires_login(PRIVATE, OLD)
        await c.create("private", PRIVATE, registry_auth=OLD, Placement=ON_W1)
        await c.until(lambda: len(c.running("private")) == 1, what="private running on w1")
        assert c.nodes["w1"].engine.pulls == [(PRIVATE, OLD)]
        assert told(c, "w1", OLD)
        # w2 runs tasks of another service meanwhile, and learns nothing of this one.
        await c.create("public", "busybox:1", Mode={"Global": {}})
        await c.until(lambda: len(c.running("public")) == 2, what="public on w1 and w2")
        assert c.nodes["w2"].received and not told(c, "w2", OLD)
        assert not told(c, "m1", OLD)
        assert c.nodes["w2"].engine.pulls == [("busybox:1", None)]
        # The public service's tasks on w1 pull without them too: they are that service's.
        assert ("busybox:1", None) in c.nodes["w1"].engine.pulls
        # Moved to w2, the task brings them along: w2 has a task of the service now.
        await c.update(
            "private",
            lambda s: s["TaskTemplate"]["Placement"].update(Constraints=["node.hostname==w2"]),
        )
        await c.until(
            lambda: [t.node_id for t in c.running("private")] == [c.nodes["w2"].id],
            what="private running on w2",
        )
        assert told(c, "w2", OLD) and c.nodes["w2"].engine.pulls[-1] == (PRIVATE, OLD)


async def test_a_refused_pull_leaves_the_registry_reason() -> None:
    async with SimCluster(workers=1) as c:
        engine = c.nodes["w1"].engine
        engine.requires_login(PRIVATE, NEW)
        for name, credentials, reason in (
            ("anonymous", None, NO_CREDENTIALS),
            ("stale", OLD, WRONG_CREDENTIALS),
        ):
            await c.create(name, PRIVATE, registry_auth=credentials)
            await c.until(
                lambda name=name: any(t.status.state == TaskState.REJECTED for t in c.tasks(name)),
                what=f"{name} rejected",
            )
            rejected = [t for t in c.tasks(name) if t.status.state == TaskState.REJECTED]
            assert {t.status.err for t in rejected} == {reason}
        assert not engine.running()


async def test_new_credentials_restart_no_task_and_serve_the_next_pulls() -> None:
    async with SimCluster(workers=1) as c:
        engine = c.nodes["w1"].engine
        engine.requires_login(PRIVATE, OLD)
        await c.create("web", PRIVATE, registry_auth=OLD, Mode={"Replicated": {"Replicas": 2}})
        await c.until(lambda: len(c.running("web")) == 2, what="2 running")
        first = {t.id for t in c.tasks("web")}

        engine.requires_login(PRIVATE, NEW)  # the password changed, and the user logged in again
        await c.update("web", lambda spec: None, registry_auth=NEW)
        await c.sleep(30)
        assert {t.id for t in c.tasks("web")} == first and len(c.running("web")) == 2
        service = c.service("web")
        assert (service.registry_auth, service.previous_registry_auth) == (NEW, OLD)

        # An update that sends none keeps them: the replaced tasks pull with the new ones.
        engine.requires_login("reg:5001/private/app:2", NEW)
        await c.update("web", to_image("reg:5001/private/app:2"))
        await c.until(
            lambda: len(c.running("web")) == 2 and not {t.id for t in c.running("web")} & first,
            what="2 new tasks running",
        )
        assert engine.pulls[-2:] == [("reg:5001/private/app:2", NEW)] * 2
        assert c.service("web").registry_auth == NEW


async def test_a_rollback_takes_the_previous_specs_credentials() -> None:
    async with SimCluster(workers=2) as c:
        for sim in c.nodes.values():
            sim.engine.exits("reg:5001/private/app:bad", after=1.0, code=3)
        update = {"Parallelism": 2, "FailureAction": "rollback", "Monitor": 5 * SEC}
        await c.create(
            "web", PRIVATE, registry_auth=OLD, Mode={"Replicated": {"Replicas": 2}},
            UpdateConfig=update,
        )  # fmt: skip
        await c.until(lambda: len(c.running("web")) == 2, what="2 running")
        # The failed update rolls back by itself: to the spec and the credentials of before.
        await c.update("web", to_image("reg:5001/private/app:bad"), registry_auth=NEW)
        await c.until(lambda: c.update_state("web") == "rollback_completed", 120, "rolled back")
        service = c.service("web")
        assert (service.registry_auth, service.previous_registry_auth) == (OLD, NEW)
        # `docker service rollback` does the same, whatever credentials it sends.
        await c.update("web", lambda spec: None, rollback=True, registry_auth=auth("other"))
        service = c.service("web")
        assert (service.registry_auth, service.previous_registry_auth) == (NEW, OLD)


async def test_registry_auth_from() -> None:
    """`registryAuthFrom` of an update that sends no credentials: `spec` (the default) keeps
    the current ones, `previous-spec` takes those of the previous spec (moby's errors for a
    service without one and for any other value)."""
    async with SimCluster(workers=1) as c:
        created = await c.create("web", "app:1", registry_auth=OLD)

        def update(auth_from: str, registry_auth: str | None = None) -> Any:
            current = c.service("web")
            body = current.spec.to_api()
            return services.update(
                c.store, current.id, current.version.index, body,
                registry_auth=registry_auth, auth_from=auth_from,
            )  # fmt: skip

        with pytest.raises(DaemonError, match="^service does not have a previous spec$"):
            await update("previous-spec")
        await update("spec", NEW)
        await update("spec")
        assert c.service("web").registry_auth == NEW
        await update("previous-spec")
        assert c.service("web").registry_auth == NEW  # the previous spec had NEW too
        await update("spec", OLD)
        await update("previous-spec")
        assert c.service("web").registry_auth == NEW
        with pytest.raises(DaemonError, match="^unsupported registryAuthFrom value$"):
            await update("nowhere")
        assert c.service("web").id == created.id


async def test_credentials_are_sealed_in_the_store_and_never_shown() -> None:
    async with SimCluster(workers=1) as c:
        service = await c.create("web", "app:1", registry_auth=OLD)
        await c.update("web", to_image("app:2"), registry_auth=NEW)
        stored = c.store.memory.data[key_of("services", service.id)].value
        assert stored is not None and b"Sealed" in stored
        assert OLD.encode() not in stored and NEW.encode() not in stored
        assert b"old-secret" not in stored and b"new-secret" not in stored
        shown = json.dumps(c.service("web").to_api())
        assert OLD not in shown and NEW not in shown and "RegistryAuth" not in shown


async def test_a_worker_forgets_the_credentials_with_the_last_task() -> None:
    engine = FakeEngine("w1")
    worker = Worker(engine, "node-1", engine.controllers)
    task = Task(
        id="t1", service_id="s1", slot=1, node_id="node-1",
        spec=TaskSpec(container_spec=ContainerSpec(image="app:1")),
    )  # fmt: skip
    info = ServiceInfo(name="web", registry_auth=OLD)
    try:
        await worker.apply(Assignment(full=True, tasks=[task], services={"s1": info}))
        assert worker.services == {"s1": info}
        assert OLD not in repr(worker.services)  # nor in any log line
        await worker.apply(Assignment(full=False, removed=["t1"]))
        assert worker.services == {}
    finally:
        await worker.stop()
