"""`docker secret` and `docker config` with the stock CLI and docker-py on a one-node swarm:
the objects and their refusals in Docker's words, the files in a task's container (content,
owner, mode, templates), rotation by `--secret-rm`/`--secret-add`, the files gone when the
task is, and no plaintext anywhere in shoald's state directory (etcd's data among it).
What only a second node shows (need to know) is in `test_secrets_lab.py`.
"""

from __future__ import annotations

import base64
import json
import secrets as random
from pathlib import Path
from typing import Any

import docker
import pytest
from docker_scenarios import IDLE
from support import BUSYBOX, Cli, wait_for

from shoal.lab.api import api_json

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cli(swarm: Any, docker_cli: Any) -> Cli:
    return Cli(docker_cli, swarm.host, lambda: swarm.log_tail(60))


def fails(cli: Cli, *args: str, input: str | None = None) -> str:
    rc, _, err = cli.run(*args, input=input)
    assert rc != 0, args
    return err.strip()


def api(swarm: Any, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    return api_json(swarm.host, method, f"/v1.41{path}", body)


def container_of(cli: Cli, service: str) -> str:
    """The running container of the service's one running task."""

    def found() -> str:
        for t in cli.tasks(service, "--filter", "desired-state=running"):
            if t["State"] == "Running":
                return t["ID"]
        return ""

    task_id = wait_for(found, what=f"a running task of {service}")
    inspect = json.loads(cli.ok("inspect", "--type", "task", task_id))[0]
    return str(inspect["Status"]["ContainerStatus"]["ContainerID"])


def in_container(cli: Cli, cid: str, *cmd: str) -> str:
    return cli.ok("exec", cid, *cmd)


def test_secret_objects_and_refusals(swarm: Any, cli: Cli) -> None:
    sid = cli.ok("secret", "create", "--label", "team=a", "s-objects", "-", input="hush\n").strip()
    try:
        obj = json.loads(cli.ok("secret", "inspect", "s-objects"))[0]
        assert obj["ID"] == sid and obj["Spec"] == {"Name": "s-objects", "Labels": {"team": "a"}}
        assert "Data" not in json.dumps(obj)  # never shown
        assert obj["CreatedAt"] == obj["UpdatedAt"] and obj["Version"]["Index"] > 0
        rows = cli.json_lines("secret", "ls", "--filter", "label=team=a")
        assert [r["Name"] for r in rows] == ["s-objects"]
        assert cli.ok("secret", "ls", "-q", "--filter", "name=s-obj").split() == [sid]
        assert "Name:              s-objects" in cli.ok("secret", "inspect", "--pretty", sid[:6])

        assert fails(cli, "secret", "create", "s-objects", "-", input="x") == (
            "Error response from daemon: rpc error: code = AlreadyExists desc = "
            "secret s-objects already exists"
        )
        assert "invalid name, only 64 [a-zA-Z0-9-_.] characters allowed" in fails(
            cli, "secret", "create", "bad/name", "-", input="x"
        )
        assert fails(cli, "secret", "inspect", "nope") == (
            "Error response from daemon: secret nope not found"
        )
        big = base64.b64encode(b"x" * 512000).decode()
        status, answer = api(swarm, "POST", "/secrets/create", {"Name": "big", "Data": big})
        assert (status, answer["message"]) == (400, (
            "rpc error: code = InvalidArgument desc = secret data must be larger than 0 and "
            "less than 512000 bytes"
        )), answer  # fmt: skip
        status, answer = api(swarm, "POST", "/secrets/create", {"Name": "empty"})
        assert status == 400 and "larger than 0" in answer["message"]
        status, answer = api(swarm, "POST", "/secrets/create", {"Name": "b64", "Data": "!!"})
        assert (status, answer["message"]) == (400, "illegal base64 data at input byte 0")
        assert "big" not in cli.ok("secret", "ls", "--format", "{{.Name}}").split()

        # Labels may change; nothing else.
        version = obj["Version"]["Index"]
        status, _ = api(swarm, "POST", f"/secrets/{sid}/update?version={version}",
                        {"Name": "s-objects", "Labels": {"team": "b"}})  # fmt: skip
        assert status == 200
        obj = json.loads(cli.ok("secret", "inspect", sid))[0]
        assert obj["Spec"]["Labels"] == {"team": "b"} and obj["Version"]["Index"] > version
        status, answer = api(swarm, "POST", f"/secrets/{sid}/update?version={version}",
                             {"Name": "s-objects"})  # fmt: skip
        assert (status, answer["message"]) == (
            500, "rpc error: code = Unknown desc = update out of sequence"
        )  # fmt: skip
        status, answer = api(swarm, "POST",
                             f"/secrets/{sid}/update?version={obj['Version']['Index']}",
                             {"Name": "renamed"})  # fmt: skip
        assert (status, answer["message"]) == (
            400, "rpc error: code = InvalidArgument desc = only updates to Labels are allowed"
        )  # fmt: skip
    finally:
        cli.run("secret", "rm", "s-objects")
    assert fails(cli, "secret", "rm", "s-objects") == (
        "Error response from daemon: secret s-objects not found"
    )


def test_config_shows_its_data(cli: Cli) -> None:
    cid = cli.ok("config", "create", "c-objects", "-", input="port: 80\n").strip()
    try:
        obj = json.loads(cli.ok("config", "inspect", cid))[0]
        assert obj["Spec"]["Name"] == "c-objects" and obj["Spec"]["Labels"] == {}
        assert obj["Spec"]["Data"] == "cG9ydDogODAK"  # base64 of the payload
        assert "port: 80" in cli.ok("config", "inspect", "--pretty", "c-objects")
    finally:
        cli.ok("config", "rm", "c-objects")


def test_files_in_the_container(swarm: Any, cli: Cli, cleanup: list[str]) -> None:
    """Content, owner and mode of secrets and configs in a task's container; a template; the
    refusal to remove one in use; rotation; the files gone with the task."""
    plain = "s3cr3t-" + random.token_hex(8)
    cli.ok("secret", "create", "db-pass", "-", input=plain)
    cli.ok("secret", "create", "api-key", "-", input="key-1")
    cli.ok("config", "create", "app-conf", "-", input="listen 80\n")
    cli.ok("config", "create", "--template-driver", "golang", "app-tmpl", "-", input=(
        'svc={{ .Service.Name }} slot={{.Task.Slot}} home={{ env "APP_HOME" }} '
        'pass={{ secret "db-pass" }} conf={{ config "/etc/app.conf" }}'
    ))  # fmt: skip
    cleanup.append("files")
    try:
        cli.converge(
            "files", "--secret", "db-pass",
            "--secret", "source=api-key,target=key,uid=1000,gid=1001,mode=0400",
            "--config", "source=app-conf,target=/etc/app.conf",
            "--config", "source=app-tmpl,target=/etc/app.tmpl,mode=0440",
            "--env", "APP_HOME=/srv", BUSYBOX, *IDLE,
        )  # fmt: skip
        ctr = container_of(cli, "files")
        assert in_container(cli, ctr, "cat", "/run/secrets/db-pass") == plain
        paths = "/run/secrets/db-pass /run/secrets/key /etc/app.conf /etc/app.tmpl"
        assert in_container(
            cli, ctr, "sh", "-c", f"stat -c '%n %u %g %a' {paths}"
        ).splitlines() == [
            "/run/secrets/db-pass 0 0 444",
            "/run/secrets/key 1000 1001 400",
            "/etc/app.conf 0 0 444",
            "/etc/app.tmpl 0 0 440",
        ]
        assert in_container(cli, ctr, "cat", "/etc/app.tmpl") == (
            f"svc=files slot=1 home=/srv pass={plain} conf=listen 80\n"
        )
        mounts = in_container(cli, ctr, "cat", "/proc/mounts")
        assert "tmpfs /run/secrets/db-pass tmpfs ro" in mounts, mounts

        assert fails(cli, "secret", "rm", "db-pass") == (
            "Error response from daemon: rpc error: code = InvalidArgument desc = "
            "secret 'db-pass' is in use by the following service: files"
        )
        assert "config 'app-conf' is in use by the following service: files" in fails(
            cli, "config", "rm", "app-conf"
        )

        # Rotation, the Docker way: a new secret under the old target is a rolling update.
        cli.ok("secret", "create", "db-pass.v2", "-", input="rotated")
        cli.ok("service", "update", "--update-monitor", "1s", "--secret-rm", "db-pass",
               "--secret-add", "source=db-pass.v2,target=db-pass", "files")  # fmt: skip
        new = container_of(cli, "files")
        assert new != ctr
        assert in_container(cli, new, "cat", "/run/secrets/db-pass") == "rotated"
        # The template named the secret by its target: it follows the rotation.
        assert "pass=rotated" in in_container(cli, new, "cat", "/etc/app.tmpl")
        cli.ok("secret", "rm", "db-pass")  # no longer in use

        # The files go with the tasks.
        files_root = Path(swarm.exec_root) / "files"
        assert swarm.engine.run_in_ns(["ls", str(files_root)], check=True).stdout.split()
        cli.ok("service", "rm", "files")
        wait_for(
            lambda: not swarm.engine.run_in_ns(["ls", str(files_root)], check=True).stdout.split(),
            what="the task files removed",
        )
    finally:
        cli.rm("files")
        cli.run("secret", "rm", "db-pass", "db-pass.v2", "api-key")
        cli.run("config", "rm", "app-conf", "app-tmpl")


def test_references_refused_in_dockers_words(swarm: Any, cli: Cli) -> None:
    assert fails(cli, "service", "create", "--secret", "nope", BUSYBOX) == "secret not found: nope"
    cli.ok("secret", "create", "refs", "-", input="x")
    try:
        sid = cli.ok("secret", "inspect", "--format", "{{.ID}}", "refs").strip()

        def create(*refs: dict[str, Any]) -> tuple[int, Any]:
            spec = {"Name": "refs", "TaskTemplate": {"ContainerSpec": {
                "Image": BUSYBOX, "Secrets": list(refs)}}}  # fmt: skip
            return api(swarm, "POST", "/services/create", spec)

        def ref(target: str, name: str = "refs", id: str = sid) -> dict[str, Any]:
            return {"SecretID": id, "SecretName": name,
                    "File": {"Name": target, "UID": "0", "GID": "0", "Mode": 292}}  # fmt: skip

        status, answer = create(ref("a", name="n1", id="x1"), ref("b", name="n2", id="x2"))
        assert (status, answer["message"]) == (
            400, "rpc error: code = InvalidArgument desc = secrets not found: n1, n2"
        )  # fmt: skip
        status, answer = create(ref("same"), ref("same"))
        assert status == 400 and "have a conflicting target: 'same'" in answer["message"]
        status, answer = create(ref("../../etc/passwd"))
        assert status == 400 and "leaves /run/secrets" in answer["message"], answer
        assert "refs" not in cli.ok("service", "ls", "--format", "{{.Name}}").split()
    finally:
        cli.ok("secret", "rm", "refs")


def test_no_plaintext_in_the_state_directory(swarm: Any, cli: Cli) -> None:
    """Payloads are sealed before they reach etcd: neither the secret's nor the config's
    plaintext is anywhere in shoald's state directory (etcd's data, its WAL and snapshots)."""
    secret_plain = ("never-on-disk-" + random.token_hex(12)).encode()
    config_plain = ("config-sealed-" + random.token_hex(12)).encode()
    cli.ok("secret", "create", "sealed-s", "-", input=secret_plain.decode())
    cli.ok("config", "create", "sealed-c", "-", input=config_plain.decode())
    try:
        state = Path(swarm.state_dir)
        searched = 0
        for path in state.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                searched += len(data)
                assert secret_plain not in data, path
                assert config_plain not in data, path
        assert searched > 100_000, searched  # etcd's data files were there to search
    finally:
        cli.run("secret", "rm", "sealed-s")
        cli.run("config", "rm", "sealed-c")


def test_docker_py_secrets_and_configs(swarm: Any, cli: Cli) -> None:
    client = docker.DockerClient(base_url=swarm.host)
    secret = client.secrets.create(name="py-secret", data=b"py-data", labels={"k": "v"})
    config = client.configs.create(
        name="py-config", data=b"{{.Service.Name}}", templating={"name": "golang"}
    )
    try:
        assert client.secrets.get("py-secret").id == secret.id
        assert [s.name for s in client.secrets.list(filters={"label": "k=v"})] == ["py-secret"]
        assert client.configs.get(config.id).name == "py-config"
        service = client.services.create(
            BUSYBOX, list(IDLE), name="py-files",
            secrets=[docker.types.SecretReference(secret.id, "py-secret", filename="custom")],
            configs=[docker.types.ConfigReference(config.id, "py-config", filename="/py.conf")],
        )  # fmt: skip
        ctr = container_of(cli, "py-files")
        assert in_container(cli, ctr, "cat", "/run/secrets/custom", "/py.conf") == "py-datapy-files"
        service.remove()
    finally:
        cli.rm("py-files")
        wait_for(lambda: not cli.ok("service", "ls", "-q").strip(), what="services gone")
        secret.remove()
        config.remove()
    with pytest.raises(docker.errors.NotFound):
        client.secrets.get("py-secret")
