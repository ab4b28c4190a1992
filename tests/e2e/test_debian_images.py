"""The lab's real images (``shoal.lab.debian``), built from Debian packages (or taken from
their cache, ``$SHOAL_IMAGE_CACHE``) and run for real on the session's isolated dockerd:

* nginx answers its default page on :80 and logs the request to stdout;
* postgres initialises an empty data directory from POSTGRES_*, takes a password login over
  TCP (and refuses a wrong one), refuses to initialise without a password, stops cleanly;
* the FastAPI app writes a row to that postgres and reads it back; ``/docs`` and the JS/CSS
  it loads answer from the app itself (the engine's network has no way out);
* mariadb + wordpress (the wp-blog stack of seed 001): WordPress's install page answers and
  has reached the database — only with ``SHOAL_TEST_HEAVY_IMAGES=1`` (two more images, about
  a minute and a half more to build cold and 750 MB more to load into the engine).

A cold build takes minutes (README); later runs load the cached tarballs.
"""

from __future__ import annotations

import http.client
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from shoal.lab.debian import publish, recipes
from shoal.testing.dockerd import IsolatedEngine

# A cold cache builds the images first (minutes): more than the default 300 s per test.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

HEAVY = bool(os.environ.get("SHOAL_TEST_HEAVY_IMAGES"))
heavy = pytest.mark.skipif(not HEAVY, reason="mariadb + wordpress: SHOAL_TEST_HEAVY_IMAGES=1")

NGINX = recipes.NGINX.ref()
POSTGRES = recipes.POSTGRES.ref()
ITEMS_API = recipes.ITEMS_API.ref()
MARIADB = recipes.MARIADB.ref()
WORDPRESS = recipes.WORDPRESS.ref()


class Box:
    """Containers of this module on one user-defined network of the engine."""

    def __init__(self, engine: IsolatedEngine, docker_cli: Callable[..., tuple[int, str, str]]):
        self.engine = engine
        self.cli = docker_cli
        self.tag = uuid.uuid4().hex[:6]
        self.network = f"dimg-{self.tag}"
        self.names: list[str] = []

    def docker(self, *args: str, check: bool = True, timeout: float = 120.0) -> str:
        rc, out, err = self.cli(self.engine.host, *args, timeout=timeout)
        if check:
            assert rc == 0, f"docker {' '.join(args)}: {err}"
        return out

    def run(self, short: str, image: str, *args: str, env: dict[str, str] | None = None) -> str:
        name = f"{short}-{self.tag}"
        self.names.append(name)
        envs = [a for k, v in (env or {}).items() for a in ("-e", f"{k}={v}")]
        self.docker("run", "-d", "--name", name, "--network", self.network, *envs, image, *args)
        return name

    def ip(self, name: str) -> str:
        out = self.docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", name)
        return str(json.loads(out)[self.network]["IPAddress"])

    def logs(self, name: str) -> str:
        rc, out, err = self.cli(self.engine.host, "logs", name)
        return out + err

    def wait_log(self, name: str, text: str, after: str = "", timeout: float = 60.0) -> None:
        """Until the container's log says text (after the first line saying after)."""
        deadline = time.monotonic() + timeout
        while text not in (self.logs(name).partition(after)[2] if after else self.logs(name)):
            state = self.docker("inspect", "-f", "{{.State.Status}}", name).strip()
            if state == "exited" or time.monotonic() > deadline:
                raise AssertionError(f"{name} ({state}) never logged {text!r}:\n{self.logs(name)}")
            time.sleep(0.2)

    def http(self, name: str, port: int, path: str = "/", timeout: float = 60.0) -> tuple[int, str]:
        """GET from the engine's netns, retried until the container answers at all."""
        ip = self.ip(name)
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.engine.http_get(port, path, host=ip, timeout=10.0)
            except OSError as e:
                if time.monotonic() > deadline:
                    logs = self.logs(name)
                    raise AssertionError(f"{name} never answered on :{port}: {e}\n{logs}") from None
                time.sleep(0.2)

    def http_until(self, name: str, port: int, path: str, status: int = 200) -> str:
        deadline = time.monotonic() + 60.0
        while True:
            code, body = self.http(name, port, path)
            if code == status:
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"{name}{path}: {code} {body[:500]}\n{self.logs(name)}")
            time.sleep(0.5)


@pytest.fixture(scope="module")
def box(engine: IsolatedEngine, docker_cli) -> Iterator[Box]:
    names = ["nginx", "postgres", "items-api"] + (["mariadb", "wordpress"] if HEAVY else [])
    refs = publish.ensure(engine.host, recipes.select(names))
    assert refs == [NGINX, POSTGRES, ITEMS_API, MARIADB, WORDPRESS][: len(names)]
    b = Box(engine, docker_cli)
    b.docker("network", "create", b.network)
    try:
        yield b
    finally:
        if b.names:
            b.docker("rm", "-f", "-v", *b.names, check=False)
        b.docker("network", "rm", b.network, check=False)


@pytest.fixture(scope="module")
def postgres(box: Box) -> str:
    env = {"POSTGRES_PASSWORD": "s3cret'pw", "POSTGRES_USER": "shoal", "POSTGRES_DB": "items"}
    name = box.run("pg", POSTGRES, env=env)
    box.wait_log(name, "ready to accept connections", after="PostgreSQL init process complete")
    return name


def test_images_are_imported_once(box: Box) -> None:
    t0 = time.monotonic()
    publish.ensure(box.engine.host, recipes.select(["nginx", "postgres", "items-api"]))
    assert time.monotonic() - t0 < 2.0
    config = json.loads(box.docker("image", "inspect", "-f", "{{json .Config}}", POSTGRES))
    assert config["Entrypoint"] == ["docker-entrypoint.sh"]
    assert config["Cmd"] == ["postgres"]
    assert config["StopSignal"] == "SIGINT"
    assert "PGDATA=/var/lib/postgresql/data" in config["Env"]
    assert set(config["Volumes"]) == {"/var/lib/postgresql/data"}
    assert set(config["ExposedPorts"]) == {"5432/tcp"}


def test_nginx_serves_its_default_page(box: Box) -> None:
    name = box.run("nginx", NGINX)
    status, body = box.http(name, 80)
    assert status == 200 and "Welcome to nginx!" in body
    box.wait_log(name, '"GET / HTTP/1.1" 200')  # access log on stdout
    t0 = time.monotonic()
    box.docker("stop", name)
    assert time.monotonic() - t0 < 5.0
    assert box.docker("inspect", "-f", "{{.State.ExitCode}}", name).strip() == "0"


def test_postgres_takes_a_password_login(box: Box, postgres: str) -> None:
    ip = box.ip(postgres)
    psql = ["psql", "-h", ip, "-U", "shoal", "-d", "items", "-tAc"]
    out = box.docker("exec", "-e", "PGPASSWORD=s3cret'pw", postgres, *psql, "SELECT 40 + 2")
    assert out.strip() == "42"
    assert box.docker("exec", postgres, "stat", "-c", "%U", "/proc/1").strip() == "postgres"
    rc, _, err = box.cli(
        box.engine.host, "exec", "-e", "PGPASSWORD=wrong", postgres, *psql, "SELECT 1"
    )
    assert rc != 0 and "password authentication failed" in err


def test_postgres_wants_a_password_and_stops_cleanly(box: Box) -> None:
    name = box.run("pg-nopw", POSTGRES)
    deadline = time.monotonic() + 30
    while box.docker("inspect", "-f", "{{.State.Status}}", name).strip() != "exited":
        assert time.monotonic() < deadline, box.logs(name)
        time.sleep(0.2)
    assert "superuser password is not specified" in box.logs(name)

    name = box.run("pg-stop", POSTGRES, env={"POSTGRES_PASSWORD": "x"})
    box.wait_log(name, "ready to accept connections", after="PostgreSQL init process complete")
    box.docker("stop", name)  # SIGINT: postgres's fast shutdown, as the official image
    assert box.docker("inspect", "-f", "{{.State.ExitCode}}", name).strip() == "0"
    assert "database system is shut down" in box.logs(name)
    # Started again on its initialised PGDATA; SIGTERM (smart shutdown) stops it cleanly too.
    # (the log so far: the setup server's start and stop, then the real server's)
    assert box.logs(name).count("database system is shut down") == 2
    box.docker("start", name)
    deadline = time.monotonic() + 60
    while box.logs(name).count("ready to accept connections") < 3:
        assert time.monotonic() < deadline, box.logs(name)
        time.sleep(0.2)
    assert box.logs(name).count("init process complete") == 1
    box.docker("kill", "--signal", "TERM", name)
    deadline = time.monotonic() + 20
    while box.docker("inspect", "-f", "{{.State.Status}}", name).strip() != "exited":
        assert time.monotonic() < deadline, box.logs(name)
        time.sleep(0.2)
    assert box.docker("inspect", "-f", "{{.State.ExitCode}}", name).strip() == "0"
    assert box.logs(name).count("database system is shut down") == 3


def test_items_api_writes_and_reads_postgres(box: Box, postgres: str) -> None:
    env = {
        "POSTGRES_HOST": postgres,
        "POSTGRES_USER": "shoal",
        "POSTGRES_PASSWORD": "s3cret'pw",
        "POSTGRES_DB": "items",
    }
    api = box.run("api", ITEMS_API, env=env)
    assert '"status":"ok"' in box.http_until(api, 8000, "/health")
    doc = {"name": "first", "description": "row 1"}
    created = _post_json(box.engine, box.ip(api), 8000, "/items", doc)
    assert created["name"] == "first" and created["id"] >= 1
    items = json.loads(box.http_until(api, 8000, "/items"))
    assert [(i["id"], i["name"]) for i in items] == [(created["id"], "first")]
    # The row is in postgres itself.
    out = box.docker(
        "exec", postgres, "psql", "-U", "shoal", "-d", "items", "-tAc", "SELECT name FROM items"
    )
    assert out.split() == ["first"]


def test_items_api_docs_work_offline(box: Box, postgres: str) -> None:
    api = box.run("api-docs", ITEMS_API, env={"DATABASE_URL": "postgresql://nobody@nowhere/x"})
    html = box.http_until(api, 8000, "/docs")
    assert "SwaggerUIBundle" in html and "http" not in html.replace("http-equiv", "")
    for asset in ("/static/swagger-ui-bundle.js", "/static/swagger-ui.css"):
        assert asset in html
        assert len(box.http_until(api, 8000, asset)) > 100_000
    schema = json.loads(box.http_until(api, 8000, "/openapi.json"))
    assert "/items" in schema["paths"]
    code, body = box.http(api, 8000, "/health")
    assert code == 503 and "waiting" in body  # no database: it says so and keeps trying


@heavy
def test_wordpress_reaches_mariadb(box: Box) -> None:
    db = box.run(
        "mysql",
        MARIADB,
        env={
            "MYSQL_ROOT_PASSWORD": "root-pw",
            "MYSQL_DATABASE": "wordpress",
            "MYSQL_USER": "wp",
            "MYSQL_PASSWORD": "wp-pw",
        },
    )
    box.wait_log(db, "ready for connections", after="MariaDB init process done")
    query = ["mariadb", "-h", box.ip(db), "-uwp", "-pwp-pw", "wordpress", "-Nse", "SELECT 6*7"]
    deadline = time.monotonic() + 30
    while (answer := box.cli(box.engine.host, "exec", db, *query))[0] != 0:
        assert time.monotonic() < deadline, answer
        time.sleep(0.5)
    assert answer[1].strip() == "42"
    wp = box.run(
        "wordpress",
        WORDPRESS,
        env={
            "WORDPRESS_DB_HOST": db,
            "WORDPRESS_DB_USER": "wp",
            "WORDPRESS_DB_PASSWORD": "wp-pw",
            "WORDPRESS_DB_NAME": "wordpress",
        },
    )
    code, _ = box.http(wp, 80, "/")
    assert code == 302  # to the install page: it reached the database, no tables yet
    page = box.http_until(wp, 80, "/wp-admin/install.php")
    assert "WordPress" in page and "Error establishing a database connection" not in page
    assert "install.php?step=2" in page  # the form of step 1: no languages to choose offline


class _NsConnection(http.client.HTTPConnection):
    """HTTP from inside the engine's network namespace."""

    def __init__(self, engine: IsolatedEngine, host: str, port: int) -> None:
        super().__init__(host, port, timeout=10.0)
        self.engine = engine

    def connect(self) -> None:
        self.sock = self.engine.socket()
        self.sock.settimeout(self.timeout)
        self.sock.connect((self.host, self.port))


def _post_json(engine: IsolatedEngine, ip: str, port: int, path: str, doc: dict) -> dict:
    conn = _NsConnection(engine, ip, port)
    try:
        headers = {"Content-Type": "application/json"}
        conn.request("POST", path, body=json.dumps(doc), headers=headers)
        resp = conn.getresponse()
        body = resp.read().decode()
        assert resp.status == 201, body
        return dict(json.loads(body))
    finally:
        conn.close()
