"""The Debian-built images through a `shoal lab` (1 manager, 1 worker): `shoal lab images push`
puts them in the lab registry, and swarm services run them as in seed J2's stack01 — postgres
and the FastAPI app on an overlay network (the app finds the database by service name), nginx
published through the routing mesh."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from support import lab_cli, wait_for
from swarmlab import Lab, lab_up

# A cold cache builds the images first (minutes): more than the default 300 s per test.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def lab(docker_cli: Callable[..., tuple[int, str, str]]) -> Iterator[Lab]:
    yield from lab_up("rimg", docker_cli, managers=1, workers=1)


def test_push_and_run_as_services(lab: Lab) -> None:
    push = lab_cli("images", "push", "nginx", "postgres", "items-api", "--name", lab.name,
                   timeout=900)  # fmt: skip
    assert push.returncode == 0, push.stderr
    reg = f"{lab.registry}/shoal-lab"
    assert push.stdout.split() == [f"{reg}/nginx:1.22", f"{reg}/postgres:15", f"{reg}/items-api:1"]
    # A second push finds everything in place.
    again = lab_cli("images", "push", "nginx", "--name", lab.name, timeout=300)
    assert again.returncode == 0 and "loaded" not in again.stderr, again.stderr

    m1 = lab.cli["m1"]
    m1.ok("network", "create", "--driver", "overlay", "app")
    pg_env = ["-e", "POSTGRES_PASSWORD=pw", "-e", "POSTGRES_USER=app", "-e", "POSTGRES_DB=app"]
    m1.ok("service", "create", "--detach", "--name", "db", "--network", "app",
          "--constraint", "node.role==worker", *pg_env, f"{reg}/postgres:15")  # fmt: skip
    m1.ok("service", "create", "--detach", "--name", "api", "--network", "app",
          "--publish", "8000:8000", "-e", "POSTGRES_HOST=db", *pg_env,
          f"{reg}/items-api:1")  # fmt: skip
    m1.ok("service", "create", "--detach", "--name", "web", "--replicas", "1",
          "--constraint", "node.role==worker", "--publish", "8080:80",
          f"{reg}/nginx:1.22")  # fmt: skip

    def answers(short: str, port: int, path: str, text: str) -> bool:
        try:
            return text in lab.http(short, port, path, to=lab.addr(short))
        except (OSError, AssertionError):
            return False

    # nginx runs on the worker; the manager answers for it (routing mesh).
    wait_for(lambda: answers("m1", 8080, "/", "Welcome to nginx!"), 180, what="nginx via the mesh")
    # The app reached postgres by its service name, over the overlay, with a password.
    wait_for(lambda: answers("w1", 8000, "/health", '"status":"ok"'), 180, what="api healthy")
    items = json.loads(lab.http("m1", 8000, "/items", to=lab.addr("m1")))
    assert items == []
