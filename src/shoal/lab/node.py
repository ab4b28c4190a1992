"""One lab node: a ``Host`` with its dockerd and its shoald, started by the host's init.

The node's processes are children of the host's init (``hostinit.py``), not of the
``shoal lab`` command that asked for them, so they outlive it and are reaped when they die.
Pids are recorded in the lab's state (``NodeState``) through ``save()``, which the caller
provides (it serializes the writes of parallel threads).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shoal.lab import network, procs
from shoal.lab.api import ping
from shoal.lab.dockerd import Dockerd, DockerdError
from shoal.lab.host import Host, HostError, signal_and_wait
from shoal.lab.state import LabError, LabState, NodeState

CGROUP_PREFIX = "shoal-lab-"  # containers of node N go to <dockerd's cgroup>/shoal-lab-N/
SHOALD_STOP_TIMEOUT = 20.0
DOCKERD_SHUTDOWN_TIMEOUT = 5  # dockerd's --shutdown-timeout: containers' stop grace


class LabNode:
    def __init__(self, lab: LabState, node: NodeState, save: Callable[[], None]) -> None:
        self.lab = lab
        self.state = node
        self.save = save
        self.dir = str(lab.node_dir(node.name))
        self.host = Host.from_state(
            self.dir, node.name, _host_state(node), hosts_file=str(lab.dir / "hosts")
        )
        self.engine = Dockerd(
            os.path.join(self.dir, "engine"),
            cgroup_parent=f"{CGROUP_PREFIX}{node.name}",
            daemon_config={"insecure-registries": [str(lab.subnet)]},
            shutdown_timeout=DOCKERD_SHUTDOWN_TIMEOUT,
        )
        self.docker_host = lab.docker_host(node.name)
        self.shoald_state = os.path.join(self.dir, "shoald")
        self.shoald_log = os.path.join(self.dir, "shoald.log")

    # ---------------------------------------------------------------- status

    @property
    def host_running(self) -> bool:
        return self.host.running

    @property
    def dockerd_running(self) -> bool:
        pid = self.state.dockerd_pid
        return procs.alive(pid) and self.dir + "/" in procs.cmdline(pid or 0)

    @property
    def shoald_running(self) -> bool:
        pid = self.state.shoald_pid
        return procs.alive(pid) and self.dir + "/" in procs.cmdline(pid or 0)

    def exec_roots(self) -> list[str]:
        return [self.engine.exec_root]

    # ---------------------------------------------------------------- start

    def ensure_host(self) -> None:
        """The namespaces, with eth0 on the lab bridge (re-created if they are gone)."""
        if self.host.running:
            return
        self.host.destroy(self.state.cgroup_dirs, self.exec_roots())  # leftovers, if any
        self.state.dockerd_pid = self.state.shoald_pid = None
        self.state.registry_pid = self.state.auth_registry_pid = None

        def record(host: Host) -> None:
            self.state.holder_pid, self.state.holder_start = host.holder_pid, host.holder_start
            self.save()

        self.host.start(on_pid=record)
        self.state.ns = dict(self.host.ns)
        self.save()
        assert self.host.holder_pid is not None
        network.connect_host(self.lab, self.state, self.host.holder_pid)

    def start_dockerd(self) -> None:
        if self.dockerd_running and ping(self.engine.host):
            return
        if self.dockerd_running:  # alive but not answering: wait for it a little
            deadline = time.monotonic() + 10
            while self.dockerd_running and not ping(self.engine.host):
                if time.monotonic() > deadline:
                    raise DockerdError(f"{self.state.name}: dockerd runs but does not answer")
                time.sleep(0.1)
            if self.dockerd_running:
                return
        self.engine.prepare()
        pid = self.host.spawn(self.engine.argv(), self.engine.log_path)
        self.state.dockerd_pid = pid
        self.state.cgroup_dirs = self.engine.cgroup_dirs(pid)
        self.save()
        self.engine.wait_ready(lambda: self.host.exit_status(pid))

    def start_shoald(self, timeout: float = 60.0) -> None:
        if self.shoald_running and ping(self.docker_host):
            return
        self.spawn_shoald()
        self._wait_shoald(timeout)

    def spawn_shoald(self) -> None:
        """Start shoald if it is not running, without waiting for it: it serves the engine's
        network plugin, which dockerd waits for when it starts with shoal networks (as Docker
        asks of plugins: started before the engine, stopped after it)."""
        if not self.shoald_running:
            sock = Path(self.dir, "docker.sock")
            if sock.exists():
                sock.unlink()
            src = str(Path(__file__).resolve().parents[2])
            env = dict(os.environ)
            for var in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
                env.pop(var, None)
            env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
            argv = [
                sys.executable, "-m", "shoal",
                "--state-dir", self.shoald_state,
                "--host", self.docker_host,
                "--engine", self.engine.host,
                "--log-level", os.environ.get("SHOAL_LAB_LOG_LEVEL", "info"),
            ]  # fmt: skip
            if self.lab.external_etcd:  # every node: a worker may be promoted
                argv += self.lab.etcd().shoald_args()
            self.state.shoald_pid = self.host.spawn(argv, self.shoald_log, env)
            self.save()

    def _wait_shoald(self, timeout: float) -> None:
        pid = self.state.shoald_pid
        assert pid is not None
        deadline = time.monotonic() + timeout
        while not ping(self.docker_host):
            code = self.host.exit_status(pid)
            if code is not None:
                raise LabError(
                    f"{self.state.name}: shoald exited with {code}; end of {self.shoald_log}:\n"
                    + self.shoald_log_tail()
                )
            if time.monotonic() > deadline:
                raise LabError(
                    f"{self.state.name}: shoald does not answer after {timeout:.0f}s; end of "
                    f"{self.shoald_log}:\n" + self.shoald_log_tail()
                )
            time.sleep(0.05)

    def start(self) -> None:
        """Everything of the node, each part only if it is not running already."""
        try:
            self.ensure_host()
            self.spawn_shoald()  # first: the engine's network plugin
            self.start_dockerd()
            self.start_shoald()
        except (HostError, DockerdError) as e:
            raise LabError(str(e)) from e

    # ---------------------------------------------------------------- stop

    def stop(self) -> None:
        """A clean stop: dockerd (SIGTERM: it stops the containers with their stop signal,
        SIGKILL after its shutdown timeout), then shoald (SIGTERM; it served dockerd's network
        plugin meanwhile); the host stays."""
        if self.dockerd_running:
            self.engine.stop(
                self.state.dockerd_pid,
                self.state.cgroup_dirs,
                timeout=DOCKERD_SHUTDOWN_TIMEOUT + 20.0,
                kill_containers=False,
            )
        pid = self.state.shoald_pid
        if self.shoald_running and not signal_and_wait(pid, signal.SIGTERM, SHOALD_STOP_TIMEOUT):
            procs.kill(pid or 0)
        for etcd in procs.mentioning(os.path.join(self.shoald_state, "swarm", "etcd")):
            if not signal_and_wait(etcd, signal.SIGTERM, 5.0):
                procs.kill(etcd)
        self.host.kill_processes(self.state.cgroup_dirs, self.exec_roots())  # stragglers
        self.state.shoald_pid = self.state.dockerd_pid = None
        self.save()

    def kill(self) -> None:
        """SIGKILL every process of the host (the init and the network stay)."""
        self.host.kill_processes(self.state.cgroup_dirs, self.exec_roots())
        self.state.shoald_pid = self.state.dockerd_pid = None
        self.state.registry_pid = self.state.auth_registry_pid = None
        self.save()

    def destroy(self) -> None:
        """Kill everything, the init too (the namespaces and eth0 go with it)."""
        self.host.destroy(self.state.cgroup_dirs, self.exec_roots())
        network.delete_link(self.state.veth)

    # ---------------------------------------------------------------- logs

    def shoald_log_tail(self, lines: int = 40) -> str:
        try:
            text = Path(self.shoald_log).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _host_state(node: NodeState) -> dict[str, Any]:
    return {"holder_pid": node.holder_pid, "holder_start": node.holder_start, "ns": node.ns}
