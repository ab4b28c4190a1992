"""``BenchLab``: one ``shoal lab`` (1 manager, or ``managers`` of them, + N workers, each
host with its own network namespace, dockerd and shoald) running one system's swarm, for
the multi-node benchmarks.

* ``shoal``  — ``shoal lab up``: shoal's own swarm (``swarm init`` on m1's shoald, workers
  joined). The API is m1's shoald socket.
* ``docker`` — ``shoal lab up --no-swarm`` (identical hosts; their shoald runs but is in no
  swarm and idles), then Docker's own swarm mode straight on the engines:
  ``docker swarm init --advertise-addr <m1>`` against m1's dockerd socket
  (``shoal lab env --engine``), ``docker swarm join`` of every worker's dockerd (the other
  managers first, one at a time, with the manager token). The API is m1's dockerd socket;
  ``api_of(node)`` is any manager's.
* ``plain``  — ``--no-swarm`` and nothing more (the ``docker run`` floor).

Both swarms keep their default settings (dispatcher heartbeat: Docker 5 s, shoal 1 s). The
lab is removed with ``shoal lab down`` when the ``with`` block ends, also on failure,
Ctrl-C and SIGTERM (``runs.exit_on_signals`` turns SIGTERM/SIGHUP into SystemExit). Kills
and restarts of a host go through the same code as ``shoal lab kill|start NODE``
(``shoal.lab.lab.node_action``), in-process so that the clock is not charged the CLI's
start-up.
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from shoal.lab import lab as lab_ops
from shoal.lab.state import LabState
from shoal.lab.state import load as load_state

from .docker import api_get, clean_env, count_containers, docker_ok
from .logs import copy_logs, lab_node_summary
from .procs import all_pids, children, cmdline_of, comm_of
from .runs import log


def unique_name(tag: str, system: str) -> str:
    """A lab name (≤ 15 characters) that no other run uses: <tag><s|d|p><4 hex>."""
    return f"{tag}{system[0]}{secrets.token_hex(2)}"


class BenchLab:
    def __init__(
        self, system: str, name: str, workers: int, *, keep: bool = False, log_level: str = "",
        managers: int = 1,
    ) -> None:  # fmt: skip
        if system not in ("shoal", "docker", "plain"):
            raise ValueError(system)
        self.system, self.name, self.workers_n, self.keep = system, name, workers, keep
        self.managers_n = managers
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
        argv = ["up", "--name", self.name, "--managers", str(self.managers_n),
                "--workers", str(self.workers_n)]  # fmt: skip
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
        m1_engine = self.engine_host(m1)
        tokens = {role: docker_ok(m1_engine, "swarm", "join-token", "-q", role)[0].strip()
                  for role in ("worker", "manager")}  # fmt: skip

        def join(node: str, role: str = "worker") -> None:
            docker_ok(
                self.engine_host(node), "swarm", "join", "--advertise-addr", self.addr(node),
                "--token", tokens[role], f"{self.addr(m1)}:2377",
            )  # fmt: skip

        for m in self.managers[1:]:  # one at a time: each raft join is a configuration change
            join(m, "manager")
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(join, self.workers))
        self.timings["swarm_join_s"] = round(time.monotonic() - t0, 2)
        log(f"  Docker swarm: init + {len(self.all_nodes) - 1} joins in "
            f"{self.timings['swarm_join_s']}s")  # fmt: skip

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

    @property
    def all_nodes(self) -> list[str]:
        return [*self.managers, *self.workers]

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

    def api_of(self, node: str) -> str:
        """The swarm API of a manager: its shoald (shoal) or its dockerd (Docker)."""
        return self.shoald_host(node) if self.system == "shoal" else self.engine_host(node)

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

    def nodes(self, host: str | None = None, timeout: float = 10.0) -> list[dict[str, Any]]:
        """``GET /nodes`` from host (default: the API, m1)."""
        nodes: list[dict[str, Any]] = api_get(host or self.api_host, "/nodes", timeout)
        return nodes

    def node_ids(self) -> dict[str, str]:
        """hostname → node ID."""
        return {n["Description"]["Hostname"]: n["ID"] for n in self.nodes()}

    def wait_ready(self, timeout: float = 60.0) -> None:
        want = set(self.all_nodes)
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
        for n in nodes if nodes is not None else self.all_nodes:
            try:
                out[n] = count_containers(self.engine_host(n), timeout=3.0)
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
        for name in self.all_nodes:
            ns = st.nodes[name]
            s = self.short(name)
            if self.system == "shoal":
                out[f"shoald-{s}"] = ns.shoald_pid
            out[f"dockerd-{s}"] = ns.dockerd_pid
            kids = children(ns.dockerd_pid, "containerd") if ns.dockerd_pid else []
            out[f"containerd-{s}"] = next(iter(kids), None)
        if self.system == "shoal":
            etcd_dir = str(st.node_dir(self.managers[0]) / "shoald" / "swarm" / "etcd")
            out["etcd"] = next(
                (p for p in all_pids() if comm_of(p) == "etcd" and etcd_dir in cmdline_of(p)), None
            )
        return out

    def log_files(self, node: str) -> dict[str, Path]:
        """The node's shoald, dockerd and etcd logs."""
        nd = self.st.node_dir(node)
        return {"shoald": nd / "shoald.log", "dockerd": nd / "engine" / "dockerd.log",
                "etcd": nd / "shoald" / "swarm" / "etcd.log"}  # fmt: skip

    def shoald_logs(self) -> dict[str, Any]:
        """Per node: line count, levels, the most frequent WARNING/ERROR messages (beside
        Docker's swarm, only the nodes whose idle shoald had something to say)."""
        out: dict[str, Any] = {}
        for name in self.all_nodes:
            found = lab_node_summary(self.log_files(name)["shoald"], self.system != "shoal")
            if found is not None:
                out[self.short(name)] = found
        return out

    def copy_logs(self, dst: str, tag: str) -> None:
        """Every node's logs into ``dst/<tag>-<lab>/<node>-<daemon>.log``."""
        d = Path(dst) / f"{tag}-{self.name}"
        d.mkdir(parents=True, exist_ok=True)
        copy_logs(
            (src, d / f"{self.short(name)}-{base}.log")
            for name in self.all_nodes
            for base, src in self.log_files(name).items()
        )
