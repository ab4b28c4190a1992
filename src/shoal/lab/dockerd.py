"""A Docker Engine (Debian's ``dockerd``) of its own inside a ``Host``.

Everything of the engine lives in one directory: ``--data-root``, ``--exec-root``,
``--pidfile``, ``--config-file`` and the API socket ``unix://<dir>/docker.sock``. dockerd
starts its own managed containerd whose socket, state and root are under
``--exec-root``/``--data-root``. Containers go to ``<dockerd's cgroup>/<cgroup parent>/<id>``
(``--cgroup-parent``, relative, so they stay inside the caller's memory cgroup); ``stop()``
kills what is left there. iptables stays on: netfilter tables, ``ip_forward`` and
``docker0`` are per network namespace, so the engine's rules touch only its host.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from shoal.lab import procs
from shoal.lab.api import ping


class DockerdError(RuntimeError):
    """The engine could not be started (the message carries the end of its log)."""


class Dockerd:
    def __init__(
        self,
        directory: str,
        *,
        cgroup_parent: str,
        iptables: bool = True,
        daemon_config: dict[str, Any] | None = None,
        extra_args: Sequence[str] = (),
        debug: bool = False,
        startup_timeout: float = 60.0,
        shutdown_timeout: int = 2,
        binary: str = "dockerd",
    ) -> None:
        self.dir = directory
        self.cgroup_parent = cgroup_parent
        self.socket_path = os.path.join(directory, "docker.sock")
        self.host = "unix://" + self.socket_path
        self.data_root = os.path.join(directory, "data")
        self.exec_root = os.path.join(directory, "exec")
        self.pidfile = os.path.join(directory, "dockerd.pid")
        self.log_path = os.path.join(directory, "dockerd.log")
        self.config_path = os.path.join(directory, "daemon.json")
        self.iptables = iptables
        self.daemon_config = daemon_config or {}
        self.extra_args = list(extra_args)
        self.debug = debug
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self.binary = binary

    def prepare(self) -> None:
        """Create the directories and write daemon.json (idempotent), before a start."""
        for d in (self.dir, self.data_root, self.exec_root):
            os.makedirs(d, exist_ok=True)
        Path(self.config_path).write_text(json.dumps(self.daemon_config))
        # Called only when this dockerd is not running: a pid file left by a killed one would
        # make dockerd refuse to start when its pid has been reused meanwhile.
        Path(self.pidfile).unlink(missing_ok=True)

    def argv(self) -> list[str]:
        argv = [
            self.binary,
            f"--config-file={self.config_path}",
            f"--data-root={self.data_root}",
            f"--exec-root={self.exec_root}",
            f"--pidfile={self.pidfile}",
            f"--host={self.host}",
            f"--cgroup-parent={self.cgroup_parent}",
            f"--shutdown-timeout={self.shutdown_timeout}",
            f"--iptables={'true' if self.iptables else 'false'}",
        ]
        if self.debug:
            argv.append("--debug")
        return argv + self.extra_args

    def wait_ready(self, exit_status: Callable[[], int | None]) -> None:
        """Wait for /_ping; exit_status() says whether (and how) dockerd has exited."""
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = exit_status()
            if code is not None:
                raise DockerdError(
                    f"dockerd exited with {code}; end of {self.log_path}:\n" + self.log_tail()
                )
            if ping(self.host):
                return
            if time.monotonic() > deadline:
                raise DockerdError(
                    f"dockerd not answering /_ping after {self.startup_timeout}s; end of log:\n"
                    + self.log_tail()
                )
            time.sleep(0.05)

    def cgroup_dirs(self, pid: int) -> list[str]:
        return procs.cgroup_dirs(pid, self.cgroup_parent)

    def container_pids(self) -> set[int]:
        """Pids of the init processes of this engine's running containers."""
        return procs.container_inits(self.exec_root)

    def stop(
        self,
        pid: int | None,
        cgroup_dirs: Sequence[str] = (),
        *,
        timeout: float = 20.0,
        kill_containers: bool = True,
    ) -> None:
        """SIGTERM dockerd and wait (SIGKILL after timeout). With kill_containers, the
        containers are killed meanwhile, so shutdown needn't wait for their stop timeouts;
        without, dockerd stops them itself (SIGTERM, then SIGKILL after its shutdown
        timeout), as on a host whose engine is stopped."""
        if pid is None or not procs.alive(pid) or self.dir not in procs.cmdline(pid):
            return
        procs.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        me = os.getpid()
        while procs.alive(pid) and time.monotonic() < deadline:
            if kill_containers:
                for victim in self.container_pids() | procs.cgroup_procs(cgroup_dirs):
                    if victim != me:
                        procs.kill(victim)
            time.sleep(0.05)
        if procs.alive(pid):
            procs.kill(pid)
            procs.wait_dead([pid], 5.0)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(Path(self.log_path).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
