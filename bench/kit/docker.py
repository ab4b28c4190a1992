"""The stock docker CLI and the Engine API, as the benchmarks call them; the service they
measure (``web``): its status, its tasks, its containers in the engines."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any

from shoal.lab.api import api_request

from . import SRC

SERVICE = "web"
SERVICE_LABEL = f"com.docker.swarm.service.name={SERVICE}"


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without DOCKER_* (no context, TLS or host of the caller's), with this
    repository's ``src`` first on PYTHONPATH, plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    env.update(extra)
    return env


def docker_cli(host: str, *args: str, timeout: float = 120.0) -> tuple[int, str, str, float]:
    """The stock docker CLI against host → (rc, stdout, stderr, seconds)."""
    t0 = time.monotonic()
    p = subprocess.run(
        [os.environ.get("SHOAL_BENCH_DOCKER_CLI", "docker"), *args],
        env=clean_env(DOCKER_HOST=host),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return p.returncode, p.stdout, p.stderr, time.monotonic() - t0


def docker_ok(host: str, *args: str, timeout: float = 120.0) -> tuple[str, float]:
    """docker_cli that must succeed → (stdout, seconds)."""
    rc, out, err, dt = docker_cli(host, *args, timeout=timeout)
    if rc != 0:
        raise RuntimeError(f"docker {' '.join(args)} → rc {rc}: {err.strip() or out.strip()}")
    return out, dt


def q(**params: Any) -> str:
    """A query string; dict values (filters) as JSON."""
    return urllib.parse.urlencode(
        {k: json.dumps(v) if isinstance(v, dict) else v for k, v in params.items()}
    )


def api_get(host: str, path: str, timeout: float = 10.0) -> Any:
    """GET path from an Engine API socket (a shoald's or a dockerd's) → the JSON."""
    status, body = api_request(host, "GET", path, timeout=timeout)
    if status != 200:
        raise RuntimeError(f"GET {path} → {status}: {body[:300]!r}")
    return json.loads(body)


def count_containers(
    hosts: str | Sequence[str],
    *,
    label: str | None = SERVICE_LABEL,
    every_state: bool = False,
    timeout: float = 5.0,
) -> int:
    """Containers in the engine(s): running ones (``every_state``: any), of the service (the
    label; None: every container)."""
    filters: dict[str, list[str]] = {} if every_state else {"status": ["running"]}
    if label:
        filters["label"] = [label]
    query = q(all="1", filters=filters) if every_state else q(filters=filters)
    return sum(
        len(api_get(h, "/containers/json?" + query, timeout))
        for h in ([hosts] if isinstance(hosts, str) else hosts)
    )


def task_containers(host: str, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The service's running containers in one engine (``GET /containers/json``)."""
    filters = {"label": [SERVICE_LABEL], "status": ["running"]}
    found: list[dict[str, Any]] = api_get(host, "/containers/json?" + q(filters=filters), timeout)
    return found


def service_status(api_host: str, timeout: float = 10.0) -> tuple[int, int]:
    """(RunningTasks, DesiredTasks) of the service, as ``docker service ls`` shows them."""
    found = api_get(api_host, "/services?" + q(status="true", filters={"name": [SERVICE]}), timeout)
    for s in found:
        if (s.get("Spec") or {}).get("Name") == SERVICE:
            st = s.get("ServiceStatus") or {}
            return int(st.get("RunningTasks") or 0), int(st.get("DesiredTasks") or 0)
    return 0, 0


def service_tasks(api_host: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """``GET /tasks`` of the service."""
    tasks: list[dict[str, Any]] = api_get(
        api_host, "/tasks?" + q(filters={"service": [SERVICE]}), timeout
    )
    return tasks


def is_running(task: dict[str, Any]) -> bool:
    """Desired and observed state both ``running``."""
    return (
        task.get("DesiredState") == "running"
        and (task.get("Status") or {}).get("State") == "running"
    )
