"""Secrets and configs on the simulated cluster: a payload goes only to the nodes that run a
task referring to it (never to the others, not even the manager's own agent), the task's
files are made from it there and go when the task is over, a template is expanded per task,
and a rotation (`--secret-rm s --secret-add source=s.v2,target=s`) is a rolling update."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from shoal.api.errors import InvalidArgument
from shoal.api.states import TaskState
from shoal.manager.controlapi import secrets
from shoal.testing.cluster import SimCluster

PLAIN = b"hush-0123456789"
WIRE = base64.b64encode(PLAIN).decode()  # how an assignment would carry it


def on(host: str) -> dict[str, Any]:
    return {"Constraints": [f"node.hostname=={host}"]}


async def create(c: SimCluster, kind: secrets.Kind, name: str, data: bytes, **spec: Any) -> Any:
    body = {"Name": name, "Data": base64.b64encode(data).decode(), **spec}
    return await secrets.create(c.store, kind, body)


def ref(secret: Any, target: str, **file: Any) -> dict[str, Any]:
    return {"SecretID": secret.id, "SecretName": secret.name,
            "File": {"Name": target, "UID": "0", "GID": "0", "Mode": 0o444, **file}}  # fmt: skip


def told(c: SimCluster, node: str, text: str) -> bool:
    return any(text in message for message in c.nodes[node].received)


def files(c: SimCluster, node: str) -> dict[str, bytes]:
    """Every task file on the node: container path → content."""
    return {f.path: f.data for fs in c.nodes[node].engine.files.values() for f in fs}


async def test_a_secret_goes_only_where_a_task_needs_it() -> None:
    async with SimCluster(workers=2) as c:
        secret = await create(c, secrets.SECRETS, "db", PLAIN)
        await c.create("app", ContainerSpec={"Secrets": [ref(secret, "db", Mode=0o400)]},
                       Placement=on("w1"))  # fmt: skip
        await c.create("other", Mode={"Global": {}})
        await c.until(lambda: len(c.running("app")) == 1 and len(c.running("other")) == 2,
                      what="app on w1, other everywhere")  # fmt: skip
        assert files(c, "w1") == {"/run/secrets/db": PLAIN}
        (f,) = next(iter(c.nodes["w1"].engine.files.values()))
        assert (f.uid, f.gid, f.mode) == (0, 0, 0o400)
        assert told(c, "w1", WIRE)
        assert c.nodes["w2"].received and not told(c, "w2", WIRE) and not files(c, "w2")
        assert not told(c, "m1", WIRE)

        # Moved to w2: the secret goes with the task; w1's files go with its old task.
        await c.update("app", lambda s: s["TaskTemplate"]["Placement"].update(on("w2")))
        await c.until(lambda: [t.node_id for t in c.running("app")] == [c.nodes["w2"].id],
                      what="app on w2")  # fmt: skip
        await c.until(lambda: not files(c, "w1"), what="w1's files gone")
        assert files(c, "w2") == {"/run/secrets/db": PLAIN}

        with pytest.raises(
            InvalidArgument, match="secret 'db' is in use by the following service: app"
        ):
            await secrets.remove(c.store, secrets.SECRETS, "db")
        await c.update("app", lambda s: s["TaskTemplate"]["ContainerSpec"].pop("Secrets"))
        await c.until(lambda: not files(c, "w2") and len(c.running("app")) == 1,
                      what="app without the secret")  # fmt: skip
        await secrets.remove(c.store, secrets.SECRETS, "db")
        assert not list(c.store.secrets())


async def test_rotation_is_a_rolling_update_and_templates_follow() -> None:
    async with SimCluster(workers=1) as c:
        old = await create(c, secrets.SECRETS, "pw", b"one")
        tmpl = await create(
            c, secrets.CONFIGS, "conf", b'{{.Service.Name}}.{{.Task.Slot}} pw={{secret "pw"}}',
            Templating={"Name": "golang"},
        )  # fmt: skip
        target = {"Name": "/etc/app.conf", "UID": "0", "GID": "0", "Mode": 0o444}
        conf = {"ConfigID": tmpl.id, "ConfigName": "conf", "File": target}
        await c.create("app", ContainerSpec={"Secrets": [ref(old, "pw")], "Configs": [conf]},
                       Mode={"Replicated": {"Replicas": 2}})  # fmt: skip
        await c.until(lambda: len(c.running("app")) == 2, what="2 running")
        first = {t.id for t in c.running("app")}
        contents = {fs[1].data for fs in c.nodes["w1"].engine.files.values()}
        assert contents == {b"app.1 pw=one", b"app.2 pw=one"}

        new = await create(c, secrets.SECRETS, "pw.v2", b"two")
        await c.update("app", lambda s: s["TaskTemplate"]["ContainerSpec"].update(
            Secrets=[ref(new, "pw")]))  # fmt: skip
        await c.until(lambda: c.update_state("app") == "completed", what="update completed")
        assert not first & {t.id for t in c.running("app")}
        assert {t.status.state for t in c.tasks("app") if t.id in first} == {TaskState.SHUTDOWN}
        contents = {fs[1].data for fs in c.nodes["w1"].engine.files.values()}
        assert contents == {b"app.1 pw=two", b"app.2 pw=two"}
