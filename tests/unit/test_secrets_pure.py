"""The pure parts of secrets and configs: their JSON, their sealing in the store, payload
templates, and a task's files made from its references."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from shoal.agent.files import Payloads, task_files
from shoal.api import template
from shoal.api.errors import TaskRejected
from shoal.api.models import (
    Config,
    ConfigSpec,
    Driver,
    Secret,
    SecretSpec,
    Task,
    TaskSpec,
    config_path,
    secret_path,
)
from shoal.store.kinds import decode, encode
from shoal.store.seal import Sealer


def test_a_secret_never_shows_its_data_a_config_does() -> None:
    secret = Secret(id="s", spec=SecretSpec(name="pw", data=b"\xffhush"))
    assert secret.to_api() == {"ID": "s", "Version": {}, "Spec": {"Name": "pw", "Labels": {}}}
    assert "hush" not in repr(secret)
    config = Config.from_api({"ID": "c", "Spec": {"Name": "conf", "Data": "aGk="}})
    assert config.spec.data == b"hi"
    assert config.to_api()["Spec"] == {"Name": "conf", "Labels": {}, "Data": "aGk="}


@pytest.mark.parametrize("kind", ["secrets", "configs"])
def test_payloads_are_sealed_in_the_store(kind: str) -> None:
    sealer = Sealer.new()[0]
    cls = Secret if kind == "secrets" else Config
    spec = SecretSpec if kind == "secrets" else ConfigSpec
    obj = cls(id="x1", spec=spec(name="n", data=b"plain-payload", labels={"a": "b"}))
    stored = encode(obj, sealer)
    assert b"plain-payload" not in stored and b"cGxhaW4tcGF5bG9hZA" not in stored
    assert set(json.loads(stored)["Spec"]["Data"]) == {"Sealed"}
    back = decode(kind, "x1", stored, 7, sealer)
    assert back.spec.data == b"plain-payload" and back.spec.labels == {"a": "b"}
    with pytest.raises(Exception, match="does not open"):
        decode(kind, "x2", stored, 7, sealer)  # sealed for another key


def test_paths_in_the_container() -> None:
    assert secret_path("db") == "/run/secrets/db"
    assert secret_path("/etc/db") == "/etc/db"
    assert config_path("nginx.conf") == "/nginx.conf"
    assert config_path("/etc/nginx.conf") == "/etc/nginx.conf"


CTX = template.context("t1", "web.1.t1", 1, "s1", "web", {"tier": "front"}, "n1", "host-a")


@pytest.mark.parametrize(
    ("text", "out"),
    [
        ("{{.Service.Name}}-{{ .Task.Slot }}@{{.Node.Hostname}}", "web-1@host-a"),
        ('{{ index .Service.Labels "tier" }}', "front"),
        ('home={{ env "HOME" }} none={{env "NOPE"}}', "home=/root none="),
        ('pw={{ secret "db" }}', "pw=hush"),
        ("a  {{- .Task.Slot -}}  b", "a1b"),
        ('{{/* a comment */}}{{ "literal" }}', "literal"),
        ("no actions", "no actions"),
    ],
)
def test_render(text: str, out: str) -> None:
    funcs = {"env": lambda name: {"HOME": "/root"}.get(name, ""), "secret": {"db": "hush"}.get}
    assert template.render(text, CTX, funcs) == out


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('{{ nope "x" }}', 'function "nope" not defined'),
        ("{{ .Service.Nope }}", "can't evaluate field Nope"),
        ("{{ if .Task.Slot }}x{{ end }}", 'function "if" not defined'),
        ('{{ secret "missing" }}', "error calling secret: 'missing'"),
    ],
)
def test_render_refuses_what_it_cannot_do(text: str, error: str) -> None:
    with pytest.raises(template.TemplateError) as e:
        template.render(text, CTX, {"secret": {}.__getitem__})
    assert str(e.value) == error


def task(**container: object) -> Task:
    spec = TaskSpec.from_api({"ContainerSpec": {"Image": "busybox", **container}})
    return Task(id="t1", service_id="s1", slot=2, node_id="n1", spec=spec)


def file_ref(target: str, **more: object) -> dict[str, object]:
    return {"Name": target, "UID": "0", "GID": "0", "Mode": 0o444, **more}


SECRET = Secret(id="sid", spec=SecretSpec(name="db", data=b"hush"))
TMPL = Config(id="cid", spec=ConfigSpec(
    name="conf", data=b'{{.Service.Name}}.{{.Task.Slot}} {{env "MODE"}} {{secret "pw"}}',
    templating=Driver(name="golang"),
))  # fmt: skip


def test_task_files_from_references() -> None:
    t = task(
        Env=["MODE=prod-{{.Task.Slot}}"],
        Secrets=[{"SecretID": "sid", "SecretName": "db",
                  "File": file_ref("pw", UID="1000", GID="50", Mode=0o400)}],
        Configs=[{"ConfigID": "cid", "ConfigName": "conf", "File": file_ref("/etc/app.conf")}],
    )  # fmt: skip
    payloads = Payloads({"sid": SECRET}, {"cid": TMPL})
    secret, config = task_files(t, "web", payloads.of(t))
    assert (secret.path, secret.data, secret.uid, secret.gid, secret.mode) == (
        "/run/secrets/pw", b"hush", 1000, 50, 0o400
    )  # fmt: skip
    assert (config.path, config.data, config.mode) == (
        "/etc/app.conf", b"web.2 prod-2 hush", 0o444
    )  # fmt: skip
    # What a node keeps: only what its tasks still refer to.
    payloads.keep([task()])
    assert payloads.secrets == {} and payloads.configs == {}


@pytest.mark.parametrize(
    ("container", "payloads", "error"),
    [
        ({"Secrets": [{"SecretID": "sid", "SecretName": "db",
                       "File": file_ref("db", UID="abc")}]},
         Payloads({"sid": SECRET}), "secret db: invalid UID 'abc', not a number"),
        ({"Secrets": [{"SecretID": "sid", "SecretName": "db", "File": file_ref("db")}]},
         Payloads(), "secret db not found on this node"),
        ({"Configs": [{"ConfigID": "cid", "ConfigName": "conf", "File": file_ref("c")}]},
         Payloads(configs={"cid": TMPL}),
         "unable to get config from config store: failed to expand templated config cid: "
         "error calling secret: secret target pw not found"),
        ({"Configs": [{"ConfigID": "x", "ConfigName": "odd", "File": file_ref("c")}]},
         Payloads(configs={"x": Config(id="x", spec=ConfigSpec(
             name="odd", data=b"x", templating=Driver(name="jinja")))}),
         "unable to get config from config store: failed to expand templated config x: "
         "unrecognized template type"),
    ],
)  # fmt: skip
def test_task_files_refused(container: dict[str, object], payloads: Payloads, error: str) -> None:
    with pytest.raises(TaskRejected) as e:
        task_files(task(**container), "web", payloads)
    assert str(e.value) == error


def test_an_invalid_message_is_logged_without_its_values() -> None:
    import pydantic

    from shoal.rpc import messages

    bad = '{"type": "assignment", "full": "maybe", "secrets": [{"Spec": {"Data": "aHVzaA=="}}]}'
    with pytest.raises(pydantic.ValidationError) as e:
        messages.to_agent(bad)
    assert "aHVzaA" not in messages.invalid(e.value) and "full" in messages.invalid(e.value)


def test_tasks_starting_together_mount_one_tmpfs(tmp_path: Any, monkeypatch: Any) -> None:
    """Each task writes its files from a thread of its own: the first mounts the tmpfs, the
    others find it (a second mount on top would hide the files written before it)."""
    import threading
    import time

    from shoal.agent import files as module

    mounted: list[str] = []

    def mount(root: Any) -> None:
        time.sleep(0.05)  # as slow as a real mount, so the threads overlap
        mounted.append(str(root))

    monkeypatch.setattr(module, "_mount_tmpfs", mount)
    monkeypatch.setattr(module, "_is_mountpoint", lambda path: bool(mounted))
    store = module.TaskFiles(tmp_path / "files")
    f = module.TaskFile("sid", "/run/secrets/x", b"data", os.getuid(), os.getgid())
    threads = [threading.Thread(target=store.write, args=(f"t{i}", [f])) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert mounted == [str(tmp_path / "files")]
    assert sorted(p.name for p in (tmp_path / "files").iterdir()) == [f"t{i}" for i in range(8)]
