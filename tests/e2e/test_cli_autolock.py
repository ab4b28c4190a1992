"""Autolock end to end with the stock docker CLI, against a real shoald, dockerd and etcd:
`swarm init --autolock`, a restarted manager that stays locked until `swarm unlock` is given
its key, `unlock-key [--rotate]`, `swarm update --autolock=false`. Every message is the one
Docker's own swarm mode gives in the same place (recorded with Docker 20.10's engine).

The tests run in order, on one swarm. Run with ``SHOAL_TEST_DOCKER_CLI=/usr/bin/docker`` for
Debian's 20.10 client.
"""

from __future__ import annotations

import base64
import json
import re
import sys
from typing import Any

import pytest
from support import NOT_MANAGER, WHOAMI, Cli, engine_containers, wait_for

from shoal.store.seal import unwrap

pytestmark = pytest.mark.e2e

DAEMON = "Error response from daemon: "
LOCKED = (
    'Swarm is encrypted and needs to be unlocked before it can be used. Please use "docker '
    'swarm unlock" to unlock it.'
)
PLUGIN_ACTIVATE = (  # `POST /Plugin.Activate` on the plugin socket, as dockerd asks it
    "import socket; s = socket.socket(socket.AF_UNIX); "
    "s.connect('/run/docker/plugins/shoal.sock'); "
    "s.sendall(b'POST /Plugin.Activate HTTP/1.0\\r\\nContent-Length: 0\\r\\n\\r\\n'); "
    "print(b''.join(iter(lambda: s.recv(4096), b'')).split(b'\\r\\n\\r\\n', 1)[1].decode())"
)
INVALID = f"{DAEMON}swarm could not be unlocked: invalid key provided\n"
KEY = re.compile(r"^SWMKEY-1-[A-Za-z0-9+/]{43}$")


def shows_key(out: str, key: str) -> bool:
    """The CLI printed an unlock key (`swarm init --autolock`, `unlock-key`; the words
    around it are the CLI's own, a little different in 20.10 and 28.x)."""
    return (
        "To unlock a swarm manager after it restarts, run the `docker swarm unlock`\n"
        f"command and provide the following key:\n\n    {key}\n\n" in out
    )


@pytest.fixture(scope="module")
def cli(shoald: Any, docker_cli: Any) -> Cli:
    return Cli(docker_cli, shoald.host, lambda: shoald.log_tail(60))


@pytest.fixture(scope="module")
def keys(cli: Cli) -> list[str]:
    """`swarm init --autolock`; the unlock keys the swarm has had (the current one last)."""
    before = cli.run("swarm", "unlock-key")
    assert before == (1, "", f"could not fetch unlock key: {DAEMON}{NOT_MANAGER}\n")
    assert cli.run("swarm", "unlock", input="SWMKEY-1-x\n")[2] == (
        "Error: This node is not part of a swarm\n"
    )
    out = cli.ok("swarm", "init", "--autolock", "--advertise-addr", "127.0.0.1")
    key = cli.ok("swarm", "unlock-key", "-q").strip()
    assert KEY.match(key), key
    assert shows_key(out, key), out
    return [key]


def restart(shoald: Any) -> None:
    shoald.stop()  # SIGTERM, as `systemctl restart` would
    shoald.start()


def state(cli: Cli) -> str:
    return cli.ok("info", "--format", "{{.Swarm.LocalNodeState}}").strip()


def unlock(cli: Cli, key: str) -> tuple[int, str, str]:
    """`docker swarm unlock`, the key typed at its prompt."""
    return cli.run("swarm", "unlock", input=key + "\n")


def task_containers(engine: Any, service: str) -> list[tuple[str, str]]:
    rows = engine_containers(engine, f"com.docker.swarm.service.name={service}")
    return sorted((c["Id"], c["State"]) for c in rows)


def test_init_autolock_shows_the_key_and_is_not_locked_yet(cli: Cli, keys: list[str]) -> None:
    assert shows_key(cli.ok("swarm", "unlock-key"), keys[-1])
    spec = json.loads(cli.ok("info", "--format", "{{json .Swarm.Cluster.Spec}}"))
    assert spec["EncryptionConfig"] == {"AutoLockManagers": True}
    assert state(cli) == "active"
    assert unlock(cli, keys[-1])[1:] == ("", "Error: swarm is not locked\n")


def test_not_locked_refuses_unlock_in_dockers_words(shoald: Any, keys: list[str]) -> None:
    status, body = shoald.api("POST", "/swarm/unlock", json.dumps({"UnlockKey": keys[-1]}).encode())
    assert (status, json.loads(body)) == (409, {"message": "swarm is not locked"})


def test_the_data_key_is_never_on_disk_in_the_clear(shoald: Any, keys: list[str]) -> None:
    swarm_dir = shoald.state_dir / "swarm"
    data_key = unwrap((swarm_dir / "data.key").read_bytes(), keys[-1])
    forms = [data_key, base64.b64encode(data_key), data_key.hex().encode()]
    files = [f for f in shoald.state_dir.rglob("*") if f.is_file()]
    assert any(f.name == "db" for f in files), files  # etcd's database is among them
    for f in files:
        content = f.read_bytes()
        for form in forms:
            assert form not in content, f"the data key in the clear in {f}"
    assert b"ENCRYPTED PRIVATE KEY" in (swarm_dir / "certs" / "node.key").read_bytes()


def test_a_restarted_manager_is_locked_until_unlocked(
    shoald: Any, cli: Cli, engine: Any, keys: list[str]
) -> None:
    cli.create("kept", "--replicas", "2", WHOAMI)
    token = cli.ok("swarm", "join-token", "-q", "worker")  # sealed in etcd
    secret = cli.ok("secret", "create", "kept-secret", "-", input="s3cret").strip()  # sealed too
    wait_for(lambda: cli.service_row("kept")["Replicas"] == "2/2", 60, what="kept converged")
    tasks = sorted(t["ID"] for t in cli.tasks("kept") if t["State"] == "Running")
    containers = task_containers(engine, "kept")
    restart(shoald)

    assert state(cli) == "locked"
    assert "\n Swarm: locked\n" in cli.ok("info")
    info = json.loads(cli.ok("info", "--format", "{{json .Swarm}}"))
    assert (info["Error"], info["ControlAvailable"], info["NodeID"]) == (LOCKED, False, "")
    for args in (["service", "ls"], ["node", "ls"], ["secret", "ls"], ["swarm", "join-token",
                 "worker"], ["swarm", "update", "--autolock=false"]):  # fmt: skip
        assert cli.run(*args) == (1, "", f"{DAEMON}{LOCKED}\n"), args
    assert cli.run("swarm", "unlock-key")[2] == f"could not fetch unlock key: {DAEMON}{LOCKED}\n"
    assert cli.run("swarm", "leave")[2] == (
        f"{DAEMON}Swarm is encrypted and locked. Please unlock it first or use `--force` to "
        "ignore this message.\n"
    )
    status, body = shoald.api("GET", "/services")
    assert (status, json.loads(body)) == (503, {"message": LOCKED})
    # dockerd still has its network plugin (it waits for it when it starts).
    activate = engine.run_in_ns([sys.executable, "-c", PLUGIN_ACTIVATE], check=True).stdout
    assert json.loads(activate) == {"Implements": ["NetworkDriver", "IpamDriver"]}, activate

    wrong = "SWMKEY-1-" + base64.b64encode(b"w" * 32).decode().rstrip("=")
    assert unlock(cli, wrong) == (1, "", INVALID)
    assert unlock(cli, "garbage") == (1, "", f"{DAEMON}invalid key string\n")
    status, body = shoald.api("POST", "/swarm/unlock", json.dumps({"UnlockKey": wrong}).encode())
    assert status == 401
    assert state(cli) == "locked"

    assert unlock(cli, keys[-1]) == (0, "", "")
    assert state(cli) == "active"
    assert [r["Name"] for r in cli.json_lines("service", "ls")] == ["kept"]
    assert cli.ok("swarm", "join-token", "-q", "worker") == token  # opens again
    assert cli.ok("secret", "ls", "-q").split() == [secret]
    wait_for(lambda: cli.service_row("kept")["Replicas"] == "2/2", 60, what="kept running again")
    assert sorted(t["ID"] for t in cli.tasks("kept") if t["State"] == "Running") == tasks
    assert task_containers(engine, "kept") == containers  # the same containers, still running


def test_rotation_retires_the_old_key(shoald: Any, cli: Cli, keys: list[str]) -> None:
    out = cli.ok("swarm", "unlock-key", "--rotate")
    new = cli.ok("swarm", "unlock-key", "-q").strip()
    assert KEY.match(new) and new != keys[-1]
    assert out.startswith("Successfully rotated manager unlock key.\n") and shows_key(out, new)
    keys.append(new)
    restart(shoald)
    assert state(cli) == "locked"
    assert unlock(cli, keys[-2]) == (1, "", INVALID)
    assert unlock(cli, keys[-1]) == (0, "", "")
    assert state(cli) == "active"


def test_autolock_off_stores_the_key_unwrapped(shoald: Any, cli: Cli) -> None:
    assert cli.ok("swarm", "update", "--autolock=false") == "Swarm updated.\n"
    assert cli.run("swarm", "unlock-key") == (1, "", "no unlock key is set\n")
    assert cli.run("swarm", "unlock-key", "--rotate")[2] == (
        "cannot rotate because autolock is not turned on\n"
    )
    restart(shoald)
    assert state(cli) == "active"
    assert [r["Name"] for r in cli.json_lines("service", "ls")] == ["kept"]
    out = cli.ok("swarm", "update", "--autolock=true")  # on again: a new key, printed
    key = cli.ok("swarm", "unlock-key", "-q").strip()
    assert out.startswith("Swarm updated.\n") and shows_key(out, key)
    assert cli.ok("swarm", "update", "--autolock=true") == "Swarm updated.\n"
    restart(shoald)
    assert state(cli) == "locked"
    assert cli.run("swarm", "leave", "--force") == (0, "Node left the swarm.\n", "")
    assert state(cli) == "inactive"
