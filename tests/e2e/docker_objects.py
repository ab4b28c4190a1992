"""Run a scenario of ``docker_scenarios`` against a swarm, record the API objects it made,
mask what differs by nature, and compare two recordings key path by key path.

Used by ``scripts/capture-docker-objects`` (Docker's own swarm mode → the fixtures in
``tests/fixtures/docker/``) and ``tests/e2e/test_docker_exact.py`` (shoal → compared with
them); standard library only (and docker-py for the steps that use it).

**Recorded** (raw JSON, at ``/v<API_VERSION>/``), per scenario, after its tasks settled:

* ``service`` — ``GET /services/{id}?insertDefaults=false`` (what ``docker service inspect``
  asks for) and ``service_insert_defaults`` — ``?insertDefaults=true`` (``--pretty``);
* ``services_status`` — ``GET /services?status=true&filters={"id":[id]}``;
* ``tasks`` — ``GET /tasks?filters={"service":[id]}``, ordered by slot then creation time;
  ``task_by_id`` — ``GET /tasks/{id}`` of each, in the same order (``docker inspect TASK``);
* ``node`` — ``GET /nodes/{id}`` of the node itself (``docker node inspect self``);
* ``swarm`` — ``GET /swarm``; ``info_swarm`` — the ``Swarm`` section of ``GET /info``;
* ``secrets`` and ``configs`` — ``GET /secrets/{id}`` and ``GET /configs/{id}`` (what ``docker
  secret inspect`` and ``docker config inspect`` ask for) of each secret and config the
  scenario created that still exists, in the order the scenario created them (only in the
  recordings of scenarios that create some);
* for each step with an ``outcome`` (a command Docker may refuse), under that name: its
  ``exit_status``, ``stdout``, ``stderr`` and ``api``, the last request it made (method and
  path) and the answer's ``status`` (and, an error's, its ``answer``), seen by an
  ``ApiRecorder`` in front of the engine.

**Masking** (deterministic; keeps which keys exist, every value's JSON type, and every
constant such as ``"Runtime": "container"`` or ``"ExitCode": 3``):

* identities are renamed wherever they occur in a string: the service's ID ``<service-id>``,
  the node's ``<node-id>``, the swarm's ``<swarm-id>``, the N-th task's (in the order above)
  ``<task-id-N>`` and its container's ``<container-id-N>``, a recorded secret's
  ``<secret-id-NAME>`` and config's ``<config-id-NAME>``; any other swarm ID (25 of
  ``[0-9a-z]``) becomes ``<id>`` and any other 64-hex string ``<hex64>``;
* every RFC 3339 time except Go's zero time ``0001-01-01T00:00:00Z`` becomes ``<time>``
  if it is written as Go writes a ``time.Time`` (UTC ``Z``, the fraction without trailing
  zeros: ``…:05.1234Z``), else ``<time, not as Go writes it>``;
* by key path (the last keys, list positions ignored), the value becomes ``<what:type>``
  (``type`` being its JSON type: ``str``, ``int``, ``float``, ``bool``, ``list``, ``object``;
  ``null`` stays ``null``): ``Version.Index`` (``index``; a job's ``JobIteration.Index``
  counts its runs, it is no store version, and stays), ``ContainerStatus.PID`` unless 0
  (``pid``), ``Addr``, ``NodeAddr``, ``Addresses[]`` (``addr``), ``Description.Hostname``
  (``hostname``), ``JoinTokens.Worker|Manager`` (``token``),
  ``TLSInfo.TrustRoot|CertIssuerPublicKey`` (``tls``; the issuer's subject, ``CN=swarm-ca``
  for a swarm's own CA, stays), ``Engine.EngineVersion`` (``version``),
  ``Description.Resources.NanoCPUs|MemoryBytes`` and ``Platform.Architecture``
  (``machine``);
* ``Description.Engine.Plugins`` (which plugins the engine has: its build and this
  machine) becomes one ``{"Name": "<plugin:str>", "Type": T}`` per plugin type present,
  in the order the types first appear (Docker sorts the list by type, then name);
* a task's ``Status.PortStatus.Ports`` is sorted and each port listed once: Docker lists a
  port once per host binding of the container (``0.0.0.0`` and ``::`` where the engine has
  IPv6, so twice here) in Go map order (tcp and udp in either order);
* a container spec's ``Secrets`` and ``Configs`` are sorted (by their masked JSON): the docker
  CLI sends the references of ``--secret``/``--config`` in Go map order, a new one each run.
"""

from __future__ import annotations

import calendar
import http.server
import json
import os
import re
import shlex
import shutil
import socketserver
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docker_scenarios import API_VERSION, BY_NAME, Scenario, Step

from shoal.lab.api import UnixHTTPConnection, api_request, socket_path_of

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "docker"
OBJECTS = {  # name in a recording → the request that gave it
    "service": "GET /services/{id}?insertDefaults=false",
    "service_insert_defaults": "GET /services/{id}?insertDefaults=true",
    "services_status": 'GET /services?status=true&filters={"id":[id]}',
    "tasks": 'GET /tasks?filters={"service":[id]}',
    "task_by_id": "GET /tasks/{id} (each task)",
    "node": "GET /nodes/{self}",
    "swarm": "GET /swarm",
    "info_swarm": "GET /info → Swarm",
    "secrets": "GET /secrets/{id} (each secret the scenario made)",
    "configs": "GET /configs/{id} (each config the scenario made)",
}
OUTCOME = "how a command of the scenario ended"


class ScenarioError(Exception):
    """A command of the scenario failed, or an object could not be read."""


# --------------------------------------------------------------------------- the docker CLI


def docker_binary() -> str:
    return os.environ.get("SHOAL_TEST_DOCKER_CLI", "docker")


def run_cli(
    host: str,
    args: list[str] | tuple[str, ...],
    binary: str | None = None,
    timeout: float = 120,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """``docker ARGS`` against host, at the API version of the fixtures (stdin: `input`)."""
    env = dict(os.environ, DOCKER_HOST=host, DOCKER_API_VERSION=API_VERSION)
    for var in ("DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        env.pop(var, None)
    return subprocess.run(
        [binary or docker_binary(), *args], env=env, input=input or "",
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def cli_version(binary: str | None = None) -> str:
    out = subprocess.run([binary or docker_binary(), "--version"], capture_output=True, text=True)
    return out.stdout.strip()


# --------------------------------------------------------------------------- the API


def get(host: str, path: str) -> Any:
    status, body = api_request(host, "GET", f"/v{API_VERSION}{path}")
    if status != 200:
        raise ScenarioError(f"GET {path}: {status} {body.decode(errors='replace')}")
    return json.loads(body)


class ApiRecorder(socketserver.ThreadingUnixStreamServer):
    """An HTTP relay on a unix socket of its own in front of an engine's API socket, for
    one command run with ``DOCKER_HOST=recorder.host`` (a context manager): ``exchanges``
    are the (method, path, status, answer body) of its requests. Whole answers only: no
    streams, no hijacked connections."""

    daemon_threads = True

    def __init__(self, host: str) -> None:
        self.upstream = socket_path_of(host)
        self._dir = tempfile.mkdtemp(prefix="shoal-api-")
        self.host = "unix://" + os.path.join(self._dir, "api.sock")
        self.exchanges: list[tuple[str, str, int, bytes]] = []
        super().__init__(socket_path_of(self.host), _Relay)

    def __enter__(self) -> ApiRecorder:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        shutil.rmtree(self._dir, ignore_errors=True)


class _Relay(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ApiRecorder
    HOP = ("connection", "content-length", "transfer-encoding", "keep-alive")

    def relay(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        conn = UnixHTTPConnection(self.server.upstream)
        try:
            conn.request(self.command, self.path, body or None, dict(self.headers.items()))
            resp = conn.getresponse()
            answer = resp.read()
        finally:
            conn.close()
        self.server.exchanges.append((self.command, self.path, resp.status, answer))
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in self.HOP:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = relay

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _filters(**kw: list[str]) -> str:
    return urllib.parse.quote(json.dumps(kw))


def _epoch(ts: str) -> float:
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?", ts or "")
    if not m:
        return 0.0
    base = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
    return base + float("0" + (m.group(2) or ".0"))


def service_tasks(host: str, service_id: str) -> list[dict[str, Any]]:
    tasks = get(host, f"/tasks?filters={_filters(service=[service_id])}")
    return sorted(tasks, key=lambda t: (t.get("Slot") or 0, _epoch(t.get("CreatedAt", ""))))


def record(host: str, service_id: str) -> dict[str, Any]:
    """The raw objects of one service, its tasks, the node, the swarm (see the docstring)."""
    tasks = service_tasks(host, service_id)
    info = get(host, "/info")
    node_id = (info.get("Swarm") or {}).get("NodeID", "")
    return {
        "service": get(host, f"/services/{service_id}?insertDefaults=false"),
        "service_insert_defaults": get(host, f"/services/{service_id}?insertDefaults=true"),
        "services_status": get(host, f"/services?status=true&filters={_filters(id=[service_id])}"),
        "tasks": tasks,
        "task_by_id": [get(host, f"/tasks/{t['ID']}") for t in tasks],
        "node": get(host, f"/nodes/{node_id}"),
        "swarm": get(host, "/swarm"),
        "info_swarm": info.get("Swarm"),
    }


def record_secrets_configs(host: str, scenario: Scenario) -> dict[str, Any]:
    """The secrets and configs the scenario made that still exist (see the docstring)."""
    found: dict[str, Any] = {}
    for kind, names in (("secrets", scenario.secrets), ("configs", scenario.configs)):
        if not names:
            continue
        existing = {o["Spec"]["Name"]: o["ID"] for o in get(host, f"/{kind}")}
        found[kind] = [get(host, f"/{kind}/{existing[n]}") for n in names if n in existing]
    return found


# --------------------------------------------------------------------------- running a scenario


def _settled(host: str, service_id: str, step: Step) -> tuple[bool, Any]:
    tasks = service_tasks(host, service_id)
    states = tuple(sorted((t.get("Status") or {}).get("State", "") for t in tasks))
    service = get(host, f"/services/{service_id}")
    update = (service.get("UpdateStatus") or {}).get("State")
    ok = states == tuple(sorted(step.states)) and (
        step.update_state is None or update == step.update_state
    )
    fingerprint = (
        [(t["ID"], (t.get("Version") or {}).get("Index")) for t in tasks],
        (service.get("Version") or {}).get("Index"),
    )
    return ok, (fingerprint if ok else {"task states": states, "update": update})


def wait_settled(
    host: str, service_id: str, step: Step, timeout: float = 60.0, quiet: float = 1.0
) -> str | None:
    """Wait for the step's task states, then for the objects to stay unchanged for `quiet`
    seconds (at most 10 s more). Returns None, or what was seen when time ran out."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        ok, seen = _settled(host, service_id, step)
        if ok:
            break
        last = seen
        if time.monotonic() > deadline:
            return f"not settled after {timeout:.0f}s (wanted {step.states}): {last}"
        time.sleep(0.2)
    stable_since, fingerprint = time.monotonic(), seen
    give_up = time.monotonic() + 10.0
    while time.monotonic() - stable_since < quiet and time.monotonic() < give_up:
        time.sleep(0.2)
        ok, seen = _settled(host, service_id, step)
        if not ok or seen != fingerprint:
            stable_since, fingerprint = time.monotonic(), seen
    return None


@dataclass
class Recording:
    service_id: str  # "" when the scenario makes no service of its name
    objects: dict[str, Any]
    unsettled: list[str]  # steps whose states were not reached in time


def outcome(host: str, step: Step, binary: str | None = None) -> dict[str, Any]:
    """Run a command that may fail; how it ended (see the module docstring)."""
    with ApiRecorder(host) as api:
        proc = run_cli(api.host, step.args, binary, input=step.input)
    last = None
    if api.exchanges:
        method, path, status, body = api.exchanges[-1]
        last = {"request": f"{method} {path.split('?')[0]}", "status": status}
        if status >= 400:
            try:
                last["answer"] = json.loads(body)
            except ValueError:
                last["answer"] = body.decode(errors="replace")
    return {"exit_status": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr,
            "api": last}  # fmt: skip


def run_step(host: str, step: Step, binary: str | None = None) -> str:
    """Run one step; returns the CLI's output (or the new service's ID for docker-py)."""
    if step.via == "docker-py":
        import docker  # type: ignore[import-untyped]

        method, name, image, *command = step.args
        assert method == "services.create", step
        client = docker.DockerClient(base_url=host, version=API_VERSION)
        try:
            return str(client.services.create(image, command=command, name=name).id)
        except docker.errors.APIError as e:
            raise ScenarioError(f"docker-py {shlex.join(step.args)}: {e}") from e
        finally:
            client.close()
    proc = run_cli(host, step.args, binary, input=step.input)
    if proc.returncode != 0:
        raise ScenarioError(
            f"`docker {shlex.join(step.args)}` exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc.stdout


def run_scenario(
    host: str,
    scenario: Scenario,
    binary: str | None = None,
    timeout: float = 60.0,
    log: Callable[[], str] | None = None,
) -> Recording:
    """Run the scenario's commands against host, each until its tasks settle; record the
    objects of the scenario's service (if it makes one) and the outcomes."""
    service_id, outcomes, unsettled = "", {}, []
    for step in scenario.steps:
        if step.outcome:
            outcomes[step.outcome] = outcome(host, step, binary)
            continue
        try:
            out = run_step(host, step, binary)
        except ScenarioError as e:
            raise ScenarioError(f"{e}\n{log()}" if log else str(e)) from None
        if step.creates == scenario.name:
            service_id = out.strip().splitlines()[-1]
        if step.states is not None:
            problem = wait_settled(host, service_id, step, timeout)
            if problem:
                unsettled.append(f"after `{shlex.join(step.command)}`: {problem}")
    objects = record(host, service_id) if service_id else {}
    objects.update(record_secrets_configs(host, scenario))
    return Recording(service_id, {**objects, **outcomes}, unsettled)


def remove_service(host: str, name: str, binary: str | None = None) -> None:
    """Remove the services the scenario of that name made (or tried to), then its secrets
    and configs."""
    scenario = BY_NAME.get(name)
    run_cli(host, ["service", "rm", *(scenario.services if scenario else [name])], binary)
    if scenario:
        for kind, names in (("secret", scenario.secrets), ("config", scenario.configs)):
            if any(names):
                run_cli(host, [kind, "rm", *(n for n in names if n)], binary)


# --------------------------------------------------------------------------- masking

ZERO_TIME = "0001-01-01T00:00:00Z"
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
GO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z$")  # RFC3339Nano
SWARM_ID = re.compile(r"(?<![0-9a-z])[0-9a-z]{25}(?![0-9a-z])")
HEX64 = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
PLACEHOLDER = re.compile(r"^<[a-z0-9-]+:(str|int|float|bool|list|object)>$")
KEY_MASKS: tuple[tuple[tuple[str, ...], str], ...] = (  # key-path suffix → label
    (("Version", "Index"), "index"),
    (("ContainerStatus", "PID"), "pid"),
    (("Addr",), "addr"),
    (("NodeAddr",), "addr"),
    (("Addresses",), "addr"),
    (("Description", "Hostname"), "hostname"),
    (("JoinTokens", "Worker"), "token"),
    (("JoinTokens", "Manager"), "token"),
    (("TLSInfo", "TrustRoot"), "tls"),
    (("TLSInfo", "CertIssuerPublicKey"), "tls"),
    (("Engine", "EngineVersion"), "version"),
    (("Description", "Resources", "NanoCPUs"), "machine"),
    (("Description", "Resources", "MemoryBytes"), "machine"),
    (("Platform", "Architecture"), "machine"),
)


def jtype(value: Any) -> str:
    """A JSON value's type name (a masked value's is the one it carries)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        m = PLACEHOLDER.match(value)
        return m.group(1) if m else "str"
    return "list" if isinstance(value, list) else "object"


def identities(objects: dict[str, Any]) -> dict[str, str]:
    """value → placeholder for the IDs a recording names (see the module docstring)."""
    names: dict[str, str] = {}

    def add(value: Any, name: str) -> None:
        if isinstance(value, str) and value and value not in names:
            names[value] = name

    add((objects.get("service") or {}).get("ID"), "<service-id>")
    add((objects.get("node") or {}).get("ID"), "<node-id>")
    add((objects.get("swarm") or {}).get("ID"), "<swarm-id>")
    for i, task in enumerate(objects.get("tasks") or [], 1):
        add(task.get("ID"), f"<task-id-{i}>")
        status = task.get("Status") or {}
        add((status.get("ContainerStatus") or {}).get("ContainerID"), f"<container-id-{i}>")
    for kind in ("secret", "config"):
        for obj in objects.get(kind + "s") or []:
            add(obj.get("ID"), f"<{kind}-id-{(obj.get('Spec') or {}).get('Name')}>")
    return names


def _mask_string(s: str, names: dict[str, str]) -> str:
    if s != ZERO_TIME and TIME.match(s):
        return "<time>" if GO_TIME.match(s) else "<time, not as Go writes it>"
    for value, name in names.items():
        s = s.replace(value, name)
    s = SWARM_ID.sub("<id>", s)
    return HEX64.sub("<hex64>", s)


def _key_mask(keys: tuple[str, ...]) -> str | None:
    for suffix, label in KEY_MASKS:
        if keys[-len(suffix) :] == suffix:
            return label
    return None


def _mask(value: Any, keys: tuple[str, ...], names: dict[str, str]) -> Any:
    label = _key_mask(keys)
    if label == "pid" and value == 0:
        return 0
    if keys[-3:] == ("Description", "Engine", "Plugins") and isinstance(value, list):
        types = dict.fromkeys(p.get("Type") for p in value if isinstance(p, dict))
        return [{"Name": "<plugin:str>", "Type": t} for t in types]
    if keys[-2:] == ("PortStatus", "Ports") and isinstance(value, list):
        unique = {json.dumps(p, sort_keys=True) for p in value}
        return [_mask(json.loads(p), keys, names) for p in sorted(unique)]
    if keys[-2:] in (("ContainerSpec", "Secrets"), ("ContainerSpec", "Configs")) and isinstance(
        value, list
    ):
        masked = [_mask(r, keys, names) for r in value]
        return sorted(masked, key=lambda r: json.dumps(r, sort_keys=True))
    if label is not None and value is not None and not isinstance(value, list):
        return f"<{label}:{jtype(value)}>"
    if isinstance(value, dict):
        return {k: _mask(v, (*keys, k), names) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v, keys, names) for v in value]
    if isinstance(value, str):
        return _mask_string(value, names)
    return value


def mask(objects: dict[str, Any]) -> dict[str, Any]:
    """The masked form of a recording (see the module docstring)."""
    names = identities(objects)
    return {name: _mask(obj, (), names) for name, obj in objects.items()}


# --------------------------------------------------------------------------- comparing


@dataclass(frozen=True)
class Difference:
    kind: str  # missing (Docker has it, shoal not) | extra | type | value
    path: str
    docker: Any = None
    shoal: Any = None

    def __str__(self) -> str:
        d, s = f"Docker {show(self.docker)}", f"shoal {show(self.shoal)}"
        detail = {"missing": d, "extra": s}.get(self.kind, f"{d}, {s}")
        return f"{self.kind:<7} {self.path or '(root)'}: {detail}"


def show(value: Any, width: int = 90) -> str:
    text = json.dumps(value, sort_keys=True)
    if len(text) > width:
        text = text[: width - 1] + "…"
    return f"{text} ({jtype(value)})"


def diff(docker: Any, shoal: Any, path: str = "") -> list[Difference]:
    """Every difference between two masked values, as key paths (``A.B[0].C``)."""
    if jtype(docker) != jtype(shoal):
        return [Difference("type", path, docker, shoal)]
    if isinstance(docker, dict):
        out: list[Difference] = []
        for key in docker:
            sub = f"{path}.{key}" if path else key
            if key not in shoal:
                out.append(Difference("missing", sub, docker[key]))
            else:
                out += diff(docker[key], shoal[key], sub)
        out += [
            Difference("extra", f"{path}.{k}" if path else k, shoal=v)
            for k, v in shoal.items()
            if k not in docker
        ]
        return out
    if isinstance(docker, list):
        out = []
        for i in range(max(len(docker), len(shoal))):
            sub = f"{path}[{i}]"
            if i >= len(shoal):
                out.append(Difference("missing", sub, docker[i]))
            elif i >= len(docker):
                out.append(Difference("extra", sub, shoal=shoal[i]))
            else:
                out += diff(docker[i], shoal[i], sub)
        return out
    return [] if docker == shoal else [Difference("value", path, docker, shoal)]


def diff_objects(docker: dict[str, Any], shoal: dict[str, Any]) -> dict[str, list[Difference]]:
    """Per recorded object (see OBJECTS), its differences; objects without any left out."""
    found = {}
    for name in docker.keys() | shoal.keys():
        d = diff(docker.get(name), shoal.get(name))
        if d:
            found[name] = d
    return {name: found[name] for name in [*OBJECTS, *sorted(found)] if name in found}


def report(differences: dict[str, list[Difference]]) -> str:
    lines = []
    for name, found in differences.items():
        lines.append(f"{name} ({OBJECTS.get(name, OUTCOME)}): {len(found)}")
        lines += [f"    {d}" for d in found]
    return "\n".join(lines)


# --------------------------------------------------------------------------- fixtures


def fixture_path(name: str) -> Path:
    return FIXTURES / f"{name}.json"


def cli_major(version: str) -> str:
    """``Docker version 28.2.2, build e6534b4`` → ``28``."""
    m = re.search(r"version (\d+)\.", version)
    return m.group(1) if m else version


def fixture(scenario: Scenario, engine: str, by_cli: list[tuple[str, dict[str, Any]]]) -> str:
    """The fixture file of one scenario recorded with one or more docker CLIs: the objects
    the first CLI made, and for each other CLI (by major version) those that came out
    different (``docker swarm init`` of 20.10 sends a default address pool, for one)."""
    (cli, objects), others = by_cli[0], by_cli[1:]
    other_clis = {
        cli_major(version): {
            "cli": version,
            "objects": {k: v for k, v in masked.items() if v != objects.get(k)},
        }
        for version, masked in others
    }
    return (
        json.dumps(
            {
                "scenario": scenario.name,
                "about": scenario.about,
                "commands": scenario.commands,
                "recorded_with": {"engine": engine, "api": API_VERSION, "cli": cli},
                "objects": objects,
                "other_clis": other_clis,
            },
            indent=2,
            sort_keys=True,
            ensure_ascii=False,
        )
        + "\n"
    )


def load_fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(fixture_path(name).read_text())
    return data


def expected_objects(data: dict[str, Any], cli_version: str) -> dict[str, Any] | None:
    """What Docker answered when driven by a docker CLI of this major version (None: the
    fixture has no recording made with one)."""
    major = cli_major(cli_version)
    if major == cli_major(data["recorded_with"]["cli"]):
        return dict(data["objects"])
    other = data.get("other_clis", {}).get(major)
    return None if other is None else {**data["objects"], **other["objects"]}
