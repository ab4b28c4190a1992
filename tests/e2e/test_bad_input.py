"""Bad input gets Docker's answer and loses nothing: status, message, and a daemon that
carries on."""

from __future__ import annotations

import json

import pytest
from support import NOT_MANAGER

pytestmark = pytest.mark.e2e


def api(daemon, method, path, body=None):  # type: ignore[no-untyped-def]
    raw = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    status, data = daemon.api(method, path, raw)
    return status, (json.loads(data) if data else None)


def test_swarm_commands_before_init(shoald, docker_cli):  # type: ignore[no-untyped-def]
    rc, out, err = docker_cli(shoald.host, "service", "ls")
    assert rc != 0
    assert NOT_MANAGER in err
    status, body = api(shoald, "GET", "/v1.44/nodes")
    assert status == 503 and body == {"message": NOT_MANAGER}


def test_bad_service_specs(swarm, docker_cli):  # type: ignore[no-untyped-def]
    status, body = api(
        swarm,
        "POST",
        "/v1.44/services/create",
        {"Name": "x", "TaskTemplate": {"ContainerSpec": {}}},
    )
    assert status == 400
    assert body["message"] == (
        "rpc error: code = InvalidArgument desc = ContainerSpec: image reference must be provided"
    )
    status, body = api(swarm, "POST", "/v1.44/services/create", b"{not json")
    assert status == 400 and "invalid JSON" in body["message"]
    status, body = api(swarm, "POST", "/v1.44/services/create", [1, 2])
    assert status == 400

    rc, _, err = docker_cli(
        swarm.host, "service", "create", "--name", "Bad_Name!", "shoal-test/whoami:1"
    )
    assert rc != 0 and "InvalidArgument" in err

    # A published port another service holds: refused in Docker's words, nothing made.
    rc, _, err = docker_cli(
        swarm.host, "service", "create", "-d", "--name", "mesh", "--publish", "8080:80",
        "shoal-test/whoami:1",
    )  # fmt: skip
    assert rc == 0, err
    rc, _, err = docker_cli(
        swarm.host, "service", "create", "-d", "--name", "mesh2", "--publish", "8080:80",
        "shoal-test/whoami:1",
    )  # fmt: skip
    assert rc != 0 and "InvalidArgument" in err, err
    assert "port '8080' is already in use by service 'mesh'" in err and "ingress port" in err
    rc, out, _ = docker_cli(swarm.host, "service", "ls", "--format", "{{.Name}}")
    assert out.split() == ["mesh"]
    rc, _, err = docker_cli(swarm.host, "service", "rm", "mesh")
    assert rc == 0, err


def test_unknown_objects_are_404(swarm, docker_cli):  # type: ignore[no-untyped-def]
    status, body = api(swarm, "GET", "/v1.44/services/nope")
    assert status == 404 and body == {"message": "service nope not found"}
    status, body = api(swarm, "GET", "/v1.44/nodes/nope")
    assert status == 404 and body == {"message": "node nope not found"}
    status, body = api(swarm, "GET", "/v1.44/tasks/nope")
    assert status == 404 and body == {"message": "task nope not found"}
    rc, out, err = docker_cli(swarm.host, "version", "--format", "{{.Client.Version}}")
    assert rc == 0, err
    # 28.x passes the daemon's 404 message through; 20.10 rewrites it.
    not_found = "No such service: nope" if out.startswith("20.") else "service nope not found"
    rc, _, err = docker_cli(swarm.host, "service", "rm", "nope")
    assert rc != 0 and not_found in err, err
    rc, _, err = docker_cli(swarm.host, "service", "inspect", "nope")
    assert rc != 0 and "no such service: nope" in err, err
    rc, _, err = docker_cli(swarm.host, "service", "scale", "nope=2")
    assert rc != 0 and "nope" in err, err
    # The daemon is still fine.
    rc, _, err = docker_cli(swarm.host, "service", "ls")
    assert rc == 0, err


def test_conflicts(swarm, docker_cli):  # type: ignore[no-untyped-def]
    rc, _, err = docker_cli(
        swarm.host, "service", "create", "-d", "--name", "dup", "shoal-test/whoami:1"
    )
    assert rc == 0, err
    try:
        rc, _, err = docker_cli(
            swarm.host, "service", "create", "-d", "--name", "dup", "shoal-test/whoami:1"
        )
        assert rc != 0
        assert "name conflicts with an existing object" in err, err

        # The existing service is still there.
        status, service = api(swarm, "GET", "/v1.44/services/dup")
        assert status == 200, service
        version = service["Version"]["Index"]
        spec = service["Spec"]
        spec["Labels"] = {"a": "b"}
        status, body = api(swarm, "POST", f"/v1.44/services/dup/update?version={version}", spec)
        assert status == 200 and body == {"Warnings": None}
        # The same (now stale) version again: out of sequence, nothing written.
        spec["Labels"] = {"a": "c"}
        status, body = api(swarm, "POST", f"/v1.44/services/dup/update?version={version}", spec)
        assert status == 409 and "update out of sequence" in body["message"]
        _, service = api(swarm, "GET", "/v1.44/services/dup")
        assert service["Spec"]["Labels"] == {"a": "b"}

        spec["Name"] = "renamed"
        version = service["Version"]["Index"]
        status, body = api(swarm, "POST", f"/v1.44/services/dup/update?version={version}", spec)
        assert status == 501 and "renaming services is not supported" in body["message"]
    finally:
        docker_cli(swarm.host, "service", "rm", "dup")


def test_daemon_survives_garbage(swarm):  # type: ignore[no-untyped-def]
    for method, path, body in [
        ("POST", "/v1.44/swarm/update?version=abc", b"{}"),
        ("POST", "/v1.44/nodes/self/update?version=1", b"[]"),
        ("GET", "/v1.44/tasks?filters=%7Bbad", None),
        ("GET", '/v1.44/services?filters={"nope":{"x":true}}', None),
        ("POST", "/v1.44/swarm/init", b"{}"),
    ]:
        status, data = swarm.api(method, path, body)
        assert 400 <= status < 600, (path, status)
        assert json.loads(data)["message"]
    status, _ = swarm.api("GET", "/_ping")
    assert status == 200
    status, data = swarm.api("GET", "/v1.44/services")
    assert status == 200 and json.loads(data) == []
