"""Lab clusters for the multi-node benchmarks (``node_failure.py``, ``converge.py --nodes``,
``rolling_update.py``).

``BenchLab(system, name, workers)`` makes one ``shoal lab`` (1 manager + N workers, each
host with its own network namespace, dockerd and shoald) and runs a swarm on it:

* ``shoal``  — ``shoal lab up``: shoal's own swarm (``swarm init`` on m1's shoald, workers
  joined). The API is m1's shoald socket.
* ``docker`` — ``shoal lab up --no-swarm`` (identical hosts; their shoald runs but is in no
  swarm and idles), then Docker's own swarm mode straight on the engines:
  ``docker swarm init --advertise-addr <m1>`` against m1's dockerd socket
  (``shoal lab env --engine``), ``docker swarm join`` of every worker's dockerd. The API
  is m1's dockerd socket.
* ``plain``  — ``--no-swarm`` and nothing more (the ``docker run`` floor).

Both swarms keep their default settings (dispatcher heartbeat: Docker 5 s, shoal 1 s). The
lab is removed with ``shoal lab down`` when the ``with`` block ends, also on failure,
Ctrl-C and SIGTERM (the scripts turn SIGTERM/SIGHUP into SystemExit). Kills and restarts
of a host go through the same code as ``shoal lab kill|start NODE``
(``shoal.lab.lab.node_action``), in-process so that the clock is not charged the CLI's
start-up.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parent.parent / "src"
try:
    import shoal  # noqa: F401
except ImportError:
    sys.path.insert(0, str(SRC))

from shoal.lab import lab as lab_ops  # noqa: E402
from shoal.lab.api import api_request  # noqa: E402
from shoal.lab.state import LabState  # noqa: E402
from shoal.lab.state import load as load_state  # noqa: E402

SERVICE = "web"
SERVICE_LABEL = f"com.docker.swarm.service.name={SERVICE}"


# --------------------------------------------------------------------------- helpers


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def clean_env(**extra: str) -> dict[str, str]:
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
    rc, out, err, dt = docker_cli(host, *args, timeout=timeout)
    if rc != 0:
        raise RuntimeError(f"docker {' '.join(args)} → rc {rc}: {err.strip() or out.strip()}")
    return out, dt


def q(**params: Any) -> str:
    return urllib.parse.urlencode(
        {k: json.dumps(v) if isinstance(v, dict) else v for k, v in params.items()}
    )


def api_get(host: str, path: str, timeout: float = 10.0) -> Any:
    status, body = api_request(host, "GET", path, timeout=timeout)
    if status != 200:
        raise RuntimeError(f"GET {path} → {status}: {body[:300]!r}")
    return json.loads(body)


def running_task_containers(engine_host: str, timeout: float = 5.0) -> int:
    """Running containers of the benchmark's service in one engine."""
    filters = {"status": ["running"], "label": [SERVICE_LABEL]}
    return len(api_get(engine_host, "/containers/json?" + q(filters=filters), timeout))


def all_task_containers(engine_host: str, timeout: float = 5.0) -> int:
    """Containers (any state) of the benchmark's service in one engine."""
    filters = {"label": [SERVICE_LABEL]}
    return len(api_get(engine_host, "/containers/json?" + q(all="1", filters=filters), timeout))


def service_status(api_host: str, timeout: float = 10.0) -> tuple[int, int]:
    """(RunningTasks, DesiredTasks) of the service, as ``docker service ls`` shows them."""
    found = api_get(api_host, "/services?" + q(status="true", filters={"name": [SERVICE]}), timeout)
    for s in found:
        if (s.get("Spec") or {}).get("Name") == SERVICE:
            st = s.get("ServiceStatus") or {}
            return int(st.get("RunningTasks") or 0), int(st.get("DesiredTasks") or 0)
    return 0, 0


def service_tasks(api_host: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = api_get(
        api_host, "/tasks?" + q(filters={"service": [SERVICE]}), timeout
    )
    return tasks


def is_running(task: dict[str, Any]) -> bool:
    return (
        task.get("DesiredState") == "running"
        and (task.get("Status") or {}).get("State") == "running"
    )


def proc_kb(pid: int | None, field: str) -> int | None:
    if not pid:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def cpu_seconds(pid: int | None) -> float | None:
    if not pid:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def ppid_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def comm_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def cmdline_of(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def with_worker_sums(values: dict[str, float | None]) -> dict[str, float | None]:
    """Add ``<proc>-workers`` = the sum over ``<proc>-w1``, ``<proc>-w2`` … (if all known)."""
    out = dict(values)
    groups: dict[str, list[float | None]] = {}
    for key, v in values.items():
        proc, _, node = key.rpartition("-")
        if proc and node.startswith("w") and node[1:].isdigit():
            groups.setdefault(proc, []).append(v)
    for proc, vals in groups.items():
        known = [v for v in vals if v is not None]
        out[f"{proc}-workers"] = round(sum(known), 2) if known and len(known) == len(vals) else None
    return out


def unique_name(tag: str, system: str) -> str:
    """A lab name (≤ 15 characters) that no other run uses: <tag><s|d|p><4 hex>."""
    return f"{tag}{system[0]}{secrets.token_hex(2)}"


# --------------------------------------------------------------------------- the lab


class BenchLab:
    def __init__(
        self, system: str, name: str, workers: int, *, keep: bool = False, log_level: str = ""
    ) -> None:
        if system not in ("shoal", "docker", "plain"):
            raise ValueError(system)
        self.system, self.name, self.workers_n, self.keep = system, name, workers, keep
        self.log_level = log_level
        self.state: LabState | None = None
        self.timings: dict[str, float] = {}

    # ---------------------------------------------------------------- lifecycle

    def __enter__(self) -> BenchLab:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.down()

    def lab_cli(self, *args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        extra = {"SHOAL_LAB_LOG_LEVEL": self.log_level} if self.log_level else {}
        return subprocess.run(
            [sys.executable, "-m", "shoal.cli.main", "lab", *args],
            env=clean_env(**extra),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def up(self) -> None:
        """`shoal lab up` (with or without shoal's swarm); then Docker's swarm if asked."""
        t0 = time.monotonic()
        argv = ["up", "--name", self.name, "--managers", "1", "--workers", str(self.workers_n)]
        if self.system != "shoal":
            argv.append("--no-swarm")
        p = self.lab_cli(*argv)
        self.timings["lab_up_s"] = round(time.monotonic() - t0, 2)
        if p.returncode != 0:
            raise RuntimeError(
                f"shoal lab {' '.join(argv)} → rc {p.returncode}:\n{p.stderr[-2000:]}"
            )
        self.reload()
        log(f"  lab {self.name} up in {self.timings['lab_up_s']}s ({self.system}; registry "
            f"{self.registry})")  # fmt: skip
        if self.system == "docker":
            self._docker_swarm()

    def _docker_swarm(self) -> None:
        t0 = time.monotonic()
        m1 = self.managers[0]
        docker_ok(self.engine_host(m1), "swarm", "init", "--advertise-addr", self.addr(m1))
        self.timings["swarm_init_s"] = round(time.monotonic() - t0, 2)
        token = docker_ok(self.engine_host(m1), "swarm", "join-token", "-q", "worker")[0].strip()

        def join(node: str) -> None:
            docker_ok(
                self.engine_host(node), "swarm", "join", "--advertise-addr", self.addr(node),
                "--token", token, f"{self.addr(m1)}:2377",
            )  # fmt: skip

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(join, self.workers))
        self.timings["swarm_join_s"] = round(time.monotonic() - t0, 2)
        log(f"  Docker swarm: init + {len(self.workers)} joins in {self.timings['swarm_join_s']}s")

    def down(self) -> None:
        if self.keep:
            log(
                f"  --keep-labs: lab {self.name} left running (`shoal lab down --name {self.name}`)"
            )
            return
        t0 = time.monotonic()
        p = self.lab_cli("down", "--name", self.name)
        if p.returncode != 0:
            log(f"  shoal lab down --name {self.name} → rc {p.returncode}: {p.stderr[-1000:]}")
        else:
            log(f"  lab {self.name} down ({time.monotonic() - t0:.1f}s)")

    def reload(self) -> LabState:
        st = load_state(self.name)
        if st is None:
            raise RuntimeError(f"lab {self.name} has no state")
        self.state = st
        return st

    # ---------------------------------------------------------------- names and sockets

    @property
    def st(self) -> LabState:
        assert self.state is not None
        return self.state

    @property
    def managers(self) -> list[str]:
        return self.st.node_names("manager")

    @property
    def workers(self) -> list[str]:
        return self.st.node_names("worker")

    def addr(self, node: str) -> str:
        return self.st.nodes[node].addr

    def engine_host(self, node: str) -> str:
        return self.st.engine_host(node)

    def shoald_host(self, node: str) -> str:
        return self.st.docker_host(node)

    @property
    def api_host(self) -> str:
        """Where the swarm API is: m1's shoald (shoal) or m1's dockerd (Docker)."""
        m1 = self.managers[0]
        return self.shoald_host(m1) if self.system == "shoal" else self.engine_host(m1)

    @property
    def registry(self) -> str:
        return self.st.registry_addr

    def image(self, ref: str = "whoami:1") -> str:
        return f"{self.registry}/shoal-lab/{ref}"

    def short(self, node: str) -> str:
        return node.rsplit("-", 1)[1]

    def netns_prefix(self, node: str) -> list[str]:
        """argv prefix that runs a command in the node's network namespace only (it keeps
        the caller's mounts, so the lab's sockets are at their usual paths)."""
        pid = self.st.nodes[node].holder_pid
        if not pid:
            raise RuntimeError(f"{node} has no namespace holder")
        return ["nsenter", f"--target={pid}", "--net", "--"]

    # ---------------------------------------------------------------- swarm helpers

    def nodes(self) -> list[dict[str, Any]]:
        nodes: list[dict[str, Any]] = api_get(self.api_host, "/nodes")
        return nodes

    def node_ids(self) -> dict[str, str]:
        """hostname → node ID."""
        return {n["Description"]["Hostname"]: n["ID"] for n in self.nodes()}

    def wait_ready(self, timeout: float = 60.0) -> None:
        want = set(self.managers) | set(self.workers)
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            with contextlib.suppress(Exception):
                last = {n["Description"]["Hostname"]: n["Status"]["State"] for n in self.nodes()}
                if want <= {h for h, s in last.items() if s == "ready"}:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"nodes not ready after {timeout}s: {last}")
            time.sleep(0.2)

    def drain_managers(self) -> None:
        for m in self.managers:
            docker_ok(self.api_host, "node", "update", "--availability", "drain", m)
        deadline = time.monotonic() + 30
        while True:
            avail = {
                n["Description"]["Hostname"]: (n.get("Spec") or {}).get("Availability")
                for n in self.nodes()
            }
            if all(avail.get(m) == "drain" for m in self.managers):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"managers not drained: {avail}")
            time.sleep(0.2)

    def heartbeat_period_s(self) -> float | None:
        with contextlib.suppress(Exception):
            sw = api_get(self.api_host, "/swarm")
            period = ((sw.get("Spec") or {}).get("Dispatcher") or {}).get("HeartbeatPeriod")
            return None if period is None else period / 1e9
        return None

    def prepull(self, image: str, nodes: list[str] | None = None) -> float:
        """Pull image into the engines of nodes (default: the workers), in parallel."""
        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda n: docker_ok(self.engine_host(n), "pull", "-q", image),
                          nodes if nodes is not None else self.workers))  # fmt: skip
        return round(time.monotonic() - t0, 2)

    def containers_by_node(self, nodes: list[str] | None = None) -> dict[str, int | None]:
        """Running task containers per node's engine (None: engine not answering)."""
        out: dict[str, int | None] = {}
        for n in nodes if nodes is not None else [*self.managers, *self.workers]:
            try:
                out[n] = running_task_containers(self.engine_host(n), timeout=3.0)
            except Exception:  # noqa: BLE001 — a killed engine
                out[n] = None
        return out

    # ---------------------------------------------------------------- host actions

    def kill(self, node: str) -> None:
        """What `shoal lab kill NODE` does: SIGKILL every process of the host."""
        lab_ops.node_action(self.name, node, "kill")
        self.reload()

    def start(self, node: str) -> None:
        """What `shoal lab start NODE` does: dockerd and shoald again, same state."""
        lab_ops.node_action(self.name, node, "start")
        self.reload()

    # ---------------------------------------------------------------- processes and logs

    def pids(self) -> dict[str, int | None]:
        """shoald-<short>, dockerd-<short>, containerd-<short> of each node; etcd (m1's)."""
        st = self.reload()
        out: dict[str, int | None] = {}
        for name in [*self.managers, *self.workers]:
            ns = st.nodes[name]
            s = self.short(name)
            if self.system == "shoal":
                out[f"shoald-{s}"] = ns.shoald_pid
            out[f"dockerd-{s}"] = ns.dockerd_pid
            kids = [p for p in all_pids() if ppid_of(p) == ns.dockerd_pid]
            out[f"containerd-{s}"] = next((p for p in kids if comm_of(p) == "containerd"), None)
        if self.system == "shoal":
            etcd_dir = str(st.node_dir(self.managers[0]) / "shoald" / "swarm" / "etcd")
            out["etcd"] = next(
                (p for p in all_pids() if comm_of(p) == "etcd" and etcd_dir in cmdline_of(p)), None
            )
        return out

    def shoald_logs(self) -> dict[str, Any]:
        """Per node: line count, levels, the most frequent WARNING/ERROR messages."""
        out: dict[str, Any] = {}
        for name in [*self.managers, *self.workers]:
            path = self.st.node_dir(name) / "shoald.log"
            try:
                lines = path.read_text(errors="replace").splitlines()
            except OSError:
                continue
            levels: dict[str, int] = {}
            notable: dict[str, int] = {}
            for ln in lines:
                parts = ln.split(" ", 4)
                lvl = parts[2] if len(parts) > 3 else "?"
                levels[lvl] = levels.get(lvl, 0) + 1
                if lvl in ("WARNING", "ERROR", "CRITICAL") or "Traceback" in ln:
                    msg = parts[4] if len(parts) > 4 else ln
                    key = _generic(f"{lvl} {msg}")[:170]
                    notable[key] = notable.get(key, 0) + 1
            if self.system != "shoal" and not notable:
                continue  # an idle shoald beside Docker's swarm: nothing to say
            out[self.short(name)] = {
                "lines": len(lines),
                "levels": levels,
                "notable": sorted(notable.items(), key=lambda kv: -kv[1])[:12],
            }
        return out

    def copy_logs(self, dst: str, tag: str) -> None:
        d = Path(dst) / f"{tag}-{self.name}"
        d.mkdir(parents=True, exist_ok=True)
        for name in [*self.managers, *self.workers]:
            nd = self.st.node_dir(name)
            for src, base in (
                (nd / "shoald.log", "shoald"),
                (nd / "engine" / "dockerd.log", "dockerd"),
                (nd / "shoald" / "swarm" / "etcd.log", "etcd"),
            ):
                if src.exists():
                    with contextlib.suppress(OSError):
                        shutil.copy(src, d / f"{self.short(name)}-{base}.log")


# --------------------------------------------------------------------------- reports, runs


def fmt(v: Any, unit: str = "s") -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.2f}{unit}"
    return f"{v}{unit}"


def dig(r: dict[str, Any], path: str) -> Any:
    """`r["a"]["b"]` for path `a.b`; None where a level is missing."""
    cur: Any = r
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def machine_info() -> dict[str, Any]:
    def ver(cmd: list[str]) -> str:
        with contextlib.suppress(Exception):
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
        return "?"

    repo = str(Path(__file__).resolve().parent.parent)
    return {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "docker_cli": ver(["docker", "--version"]),
        "dockerd": ver(["dockerd", "--version"]),
        "loadavg_before": os.getloadavg(),
        "shoal_commit": ver(["git", "-C", repo, "rev-parse", "--short", "HEAD"]),
        # Uncommitted changes under src/ (what the labs' shoalds run), by file.
        "shoal_src_changes": ver(["git", "-C", repo, "status", "--porcelain", "--", "src"]),
    }


def exit_on_signals() -> None:
    """SIGTERM and SIGHUP become SystemExit, so that `finally` blocks remove the labs."""

    def _raise_exit(signum: int, _frame: Any) -> None:
        log(f"signal {signum}: cleaning up")
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_exit)


def all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _generic(msg: str) -> str:
    """Collapse IDs (25-char swarm IDs, 64-hex container IDs) so that messages group."""
    msg = re.sub(r"\b[0-9a-z]{25}\b", "<id>", msg)
    return re.sub(r"\b[0-9a-f]{12,64}\b", "<hex>", msg)
