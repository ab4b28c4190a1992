"""`--with-registry-auth` end to end, on a `shoal lab` (1 manager, 2 workers) and its registry
behind a login (`shoal lab registry --auth`: htpasswd, private copies of whoami:1 and :2).

The docker CLI (its own `DOCKER_CONFIG`) logs in through m1's shoald, then: a service created
with `--with-registry-auth` runs on a worker, pinned to the registry's digest (no "could not
be accessed" warning); the same image without credentials, on the other worker, is rejected
with the registry's reason (and that worker never got the first service's credentials);
after a password change an update that sends no credentials keeps the stale ones (the
registry says so), and `service update --with-registry-auth` after a new login works. The
credentials are never shown and never in plaintext in etcd's data directory.

One lab for the module; the tests run in file order and build on each other.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import Cli, lab_cli, wait_for

from shoal.lab.state import base_dir

pytestmark = pytest.mark.e2e

NODES = ("m1", "w1", "w2")
WARNING = "could not be accessed on a registry to record"
NO_CREDENTIALS = "no basic auth credentials"
WRONG_CREDENTIALS = "unauthorized: authentication required"
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def lab(*args: str) -> str:
    proc = lab_cli(*args)
    assert proc.returncode == 0, f"`shoal lab {shlex.join(args)}`:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


class Lab:
    def __init__(self, name: str, config: Path) -> None:
        self.name, self.config = name, config
        self.dir = base_dir() / name
        self.hosts = {s: self._env(s) for s in NODES}
        self.engines = {s: self._env(s, "--engine") for s in NODES}
        self.registry, self.user, self.password = self.auth_registry()
        self.manager = Cli(self.docker, self.hosts["m1"], lambda: self.logs())
        self.secrets: list[str] = []  # every password the registry had

    def _env(self, short: str, *flags: str) -> str:
        return lab("env", f"{self.name}-{short}", *flags).strip().split("=", 1)[1]

    def auth_registry(self, *flags: str) -> tuple[str, str, str]:
        reg, user, password = lab("registry", "--name", self.name, "--auth", *flags).split()
        return reg, user, password

    def docker(
        self, host: str, *args: str, input: str | None = None, timeout: float = 120.0
    ) -> tuple[int, str, str]:
        """The docker CLI with this module's own config directory (its logins)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env.update(DOCKER_HOST=host, DOCKER_CONFIG=str(self.config))
        proc = subprocess.run(
            [os.environ.get("SHOAL_TEST_DOCKER_CLI", "docker"), *args],
            env=env, input=input, stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        return proc.returncode, proc.stdout, proc.stderr

    def engine(self, short: str, *args: str) -> str:
        rc, out, err = self.docker(self.engines[short], *args)
        assert rc == 0, err
        return out

    def image(self, tag: str) -> str:
        return f"{self.registry}/shoal-lab/whoami:{tag}"

    def login(self) -> None:
        out = self.manager.ok(
            "login", "--username", self.user, "--password-stdin", self.registry,
            input=self.password + "\n",
        )  # fmt: skip
        assert "Login Succeeded" in out, out

    def logs(self, lines: int = 40) -> str:
        out = []
        for s in NODES:
            path = self.dir / f"{self.name}-{s}" / "shoald.log"
            text = path.read_text(errors="replace") if path.exists() else ""
            out.append(f"--- {path.parent.name}/shoald.log ---\n" + "\n".join(
                text.splitlines()[-lines:]))  # fmt: skip
        return "\n".join(out)

    def tasks(self, service: str) -> list[dict[str, Any]]:
        return self.manager.tasks(service)

    def node(self, short: str) -> str:
        return f"{self.name}-{short}"


@pytest.fixture(scope="module")
def the_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    name = "ra" + secrets.token_hex(3)
    config = tmp_path_factory.mktemp("docker-config")
    try:
        up = lab_cli("up", "--name", name, "--managers", "1", "--workers", "2")
        assert up.returncode == 0, f"up failed (rc={up.returncode}):\n{up.stdout}\n{up.stderr}"
        the = Lab(name, config)
        the.secrets.append(the.password)
        # The manager built and pushed the images: it has them all. Tasks go to the workers.
        the.manager.ok("node", "update", "--availability", "drain", the.node("m1"))
        yield the
    finally:
        keep = tmp_path_factory.mktemp(f"{name}-logs")
        for log in (base_dir() / name).glob("*/shoald.log"):
            shutil.copy(log, keep / f"{log.parent.name}.shoald.log")
        down = lab_cli("down", "--name", name)
        assert down.returncode == 0, f"down failed:\n{down.stdout}\n{down.stderr}"


def rows(the: Lab, service: str, state: str) -> Callable[[], list[dict[str, Any]]]:
    return lambda: [r for r in the.tasks(service) if r["State"] == state]


def test_login_through_the_manager(the_lab: Lab) -> None:
    rc, _, err = the_lab.docker(the_lab.hosts["m1"], "pull", the_lab.image("1"))
    assert rc != 0 and NO_CREDENTIALS in err, err  # it really wants a login
    the_lab.login()
    config = json.loads((the_lab.config / "config.json").read_text())
    assert the_lab.registry in config["auths"]


def test_with_registry_auth_runs_pinned_to_the_registry_digest(the_lab: Lab) -> None:
    rc, out, err = the_lab.manager.run(
        "service", "create", "--name", "private", "--with-registry-auth",
        "--constraint", "node.hostname==" + the_lab.node("w1"), "--update-monitor", "1s",
        the_lab.image("1"),
    )  # fmt: skip
    assert rc == 0 and "converged" in out + err, f"{out}\n{err}\n{the_lab.logs()}"
    assert WARNING not in err, err
    image = the_lab.manager.ok(
        "service", "inspect", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}", "private"
    ).strip()
    assert image.startswith(the_lab.image("1") + "@") and DIGEST.search(image), image
    (task,) = rows(the_lab, "private", "Running")()
    assert task["Node"] == the_lab.node("w1") and task["Image"] == image
    # w1 runs exactly that image, pulled from the registry behind the login.
    digests = the_lab.engine("w1", "image", "inspect", "--format", "{{json .RepoDigests}}",
                             image)  # fmt: skip
    assert image.split("@")[1] in digests, digests


def test_without_credentials_the_registry_reason_is_shown(the_lab: Lab) -> None:
    """The same image on w2, without `--with-registry-auth`: the CLI cannot record its digest
    (the registry refuses), and w2 — which never got the other service's credentials — is
    refused the pull, which the task's error says."""
    rc, out, err = the_lab.manager.run(
        "service", "create", "-d", "--name", "anonymous",
        "--constraint", "node.hostname==" + the_lab.node("w2"), the_lab.image("1"),
    )  # fmt: skip
    assert rc == 0, err
    assert WARNING in err, err  # the registry really can't be accessed without a login
    (rejected, *_) = wait_for(
        rows(the_lab, "anonymous", "Rejected"), timeout=60, what="a rejected task",
        log=the_lab.logs,
    )  # fmt: skip
    assert rejected["Node"] == the_lab.node("w2")
    assert NO_CREDENTIALS in rejected["Error"] and the_lab.registry in rejected["Error"], rejected
    assert "No such image" not in rejected["Error"], rejected
    rc, _, _ = the_lab.docker(the_lab.engines["w2"], "image", "inspect", the_lab.image("1"))
    assert rc != 0  # w2 has not got it by other means
    the_lab.manager.rm("anonymous")


def test_update_after_a_password_change(the_lab: Lab) -> None:
    _, _, password = the_lab.auth_registry("--password", "pw-" + secrets.token_urlsafe(12))
    the_lab.secrets.append(password)
    # An update that sends no credentials keeps the service's: now stale, the registry says.
    rc, _, err = the_lab.manager.run("service", "update", "-d", "--image", the_lab.image("2"),
                                     "private")  # fmt: skip
    assert rc == 0, err
    stale = wait_for(rows(the_lab, "private", "Rejected"), timeout=60, what="a rejected task",
                     log=the_lab.logs)  # fmt: skip
    assert {WRONG_CREDENTIALS in r["Error"] for r in stale} == {True}, stale
    # Logged in again, `--with-registry-auth` hands the service the new ones: it runs :2.
    the_lab.password = password
    the_lab.login()
    rc, out, err = the_lab.manager.run(
        "service", "update", "--with-registry-auth", "--image", the_lab.image("2"), "private"
    )
    assert rc == 0, f"{out}\n{err}\n{the_lab.logs()}"
    assert WARNING not in err, err

    def running_2() -> list[dict[str, Any]]:
        return [r for r in rows(the_lab, "private", "Running")() if ":2@sha256:" in r["Image"]]

    wait_for(running_2, timeout=60, what="private running whoami:2", log=the_lab.logs)


def b64_fragments(secret: bytes) -> list[bytes]:
    """The parts of `secret`'s base64 (both alphabets) that are the same wherever it stands in
    a longer base64-encoded text."""
    out = []
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + secret)
        start, end = 4 * -(-shift // 3), 4 * ((shift + len(secret)) // 3)
        part = encoded[start:end]
        out += [part, part.replace(b"+", b"-").replace(b"/", b"_")]
    return out


def test_credentials_never_shown_nor_in_plaintext_in_etcd(the_lab: Lab) -> None:
    inspect = the_lab.manager.ok("service", "inspect", "private")
    listed = the_lab.manager.ok("service", "ls", "--format", "{{json .}}")
    etcd = the_lab.dir / the_lab.node("m1") / "shoald" / "swarm" / "etcd"
    files = [f for f in etcd.rglob("*") if f.is_file()]
    assert any(f.suffix == ".wal" for f in files) and any(f.name == "db" for f in files)
    blob = b"".join(f.read_bytes() for f in files)
    service_id = the_lab.manager.ok("service", "inspect", "--format", "{{.ID}}", "private")
    assert service_id.strip().encode() in blob  # the search can find things
    for password in the_lab.secrets:
        for text in (inspect, listed):
            assert password not in text and "RegistryAuth" not in text
        for needle in (password.encode(), *b64_fragments(f'"password":"{password}"'.encode()),
                       *b64_fragments(f"{the_lab.user}:{password}".encode())):  # fmt: skip
            assert needle not in blob, needle
