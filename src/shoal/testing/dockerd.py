"""A real, isolated Docker Engine (dockerd) for tests.

``IsolatedEngine`` starts a Debian ``dockerd`` that shares nothing with any other engine on the
machine, so tests can run next to a host dockerd, next to each other (concurrently) and
next to Docker's own swarm mode without either side noticing:

* **Namespaces.** A *holder* process (``unshare --net --uts --mount`` running the host
  init of ``shoal.lab.hostinit``) owns a fresh network, UTS and mount namespace: the
  ``shoal.lab.host.Host`` that lab nodes run in too. dockerd is started in them with
  ``nsenter --target <holder>``; so is anything a test wants to run "on that host"
  (``exec_prefix()``, ``run_in_ns()``, ``popen_in_ns()``).
* **Mounts in the new mount namespace** (propagation private, so nothing leaks out and
  everything vanishes with the namespace):

  - ``/sys`` is remounted, so ``/sys/class/net`` shows the new netns's interfaces
    (with plain ``nsenter --net`` dockerd starts but sees the host's interfaces);
  - the cgroup hierarchies are carried over onto the fresh ``/sys`` with
    ``mount --rbind /sys/fs/cgroup`` before and ``mount --move`` after the remount (a fresh
    sysfs has an empty ``/sys/fs/cgroup``: dockerd then fails with "Devices cgroup isn't
    mounted"). This works for cgroup v1, hybrid (this machine: v1 + ``unified``) and v2;
  - ``/run`` is a private tmpfs (containerd shim sockets, ``/run/docker/plugins``,
    xtables lock), and ``/etc/docker`` a private directory (``daemon.json`` and the
    ``key.json`` that gives dockerd its engine ID: every engine gets its own ID).

* **Own paths:** ``--data-root``, ``--exec-root``, ``--pidfile``, ``--config-file`` and the
  API socket ``unix://<dir>/docker.sock`` all live in one directory (``/tmp/shoal-eng-*``).
  dockerd starts its own managed containerd whose socket, state and root are under
  ``--exec-root``/``--data-root``.
* **Own cgroup parent:** containers go to ``<dockerd's cgroup>/<name>/<id>``
  (``--cgroup-parent <name>``, relative, so they stay inside the caller's memory cgroup).
  Teardown kills whatever is left there and removes the cgroups.
* **iptables stays on.** Netfilter tables, ``ip_forward`` and ``docker0`` are per network
  namespace, so the engine's rules cannot touch the host's (no FORWARD-DROP surprise in the
  root namespace), and published ports behave exactly as on a real host (DNAT + hairpin +
  docker-proxy for 127.0.0.1). ``iptables=False`` is available for machines without it.

**Reaching published ports.** A container's published port (``-p 8080:80``, or a
``mode=host`` port published by shoald through this engine) is bound in the *engine's*
network namespace, not the caller's. A test reaches it from inside that namespace:
``engine.http_get(8080, "/")`` (a Python socket created in the engine's netns, no
subprocess), ``engine.socket()`` for raw sockets, or
``engine.run_in_ns(["busybox", "wget", "-qO-", "http://127.0.0.1:8080/"])``. The API
socket, being a file, is reachable from every namespace: the docker CLI, docker-py and
shoald can run in the root namespace and still talk to the engine. A shoald under test that
must behave as "that host" (listen on its address, own the node's hostname, program
nftables/VXLAN next to the engine's containers) is started with ``engine.popen_in_ns(...)``.

Teardown (``stop()``) is idempotent and also runs for engines whose owning process died
(``cleanup_stale()``, called by every ``start()``): SIGTERM dockerd while killing the
container processes (so shutdown doesn't wait for stop timeouts), SIGKILL whatever is left
in the engine's namespaces and cgroups (containerd, shims, docker-proxy, processes started
in the namespace), remove the cgroups, unmount anything under the directory, remove it.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import json
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from shoal.lab import procs
from shoal.lab.api import UnixHTTPConnection, api_request, socket_path_of
from shoal.lab.dockerd import Dockerd, DockerdError
from shoal.lab.host import CLONE_NEWNET, Host, HostError

PREFIX = "shoal-eng-"

__all__ = [
    "CLONE_NEWNET",
    "PREFIX",
    "IsolatedEngine",
    "DockerdError",
    "UnixHTTPConnection",
    "api_request",
    "cleanup_stale",
    "engine_processes",
    "socket_path_of",
]


def _container_inits(engine_dir: str) -> set[int]:
    """Pids of the containers' init processes, from containerd's task state."""
    return procs.container_inits(os.path.join(engine_dir, "exec"))


def _remove_cgroups(dirs: Sequence[str]) -> None:
    procs.remove_cgroups(dirs, timeout=0)


def _unmount_under(path: str) -> None:
    procs.unmount_under(path)


# --------------------------------------------------------------------------- teardown


def _teardown(state: dict[str, Any], dockerd_timeout: float = 20.0) -> None:
    """Kill everything an engine started and remove its directory. Idempotent."""
    d = state["dir"]
    cg_dirs: list[str] = state.get("cgroup_dirs") or []
    host = Host.from_state(d, "", state)
    # 1. dockerd: SIGTERM, and kill the containers so shutdown needn't wait for stop timeouts.
    Dockerd(d, cgroup_parent="").stop(state.get("dockerd_pid"), cg_dirs, timeout=dockerd_timeout)
    # 2. Everything else in the namespaces, the cgroups and the shims; then the holder, the
    #    cgroups and the mounts (none should be visible here: they lived in the namespace).
    try:
        host.destroy(cg_dirs, [os.path.join(d, "exec")])
    except HostError as e:
        raise RuntimeError(f"engine {d}: {e}") from e
    for attempt in range(50):
        try:
            shutil.rmtree(d)
            break
        except FileNotFoundError:
            break
        except OSError:
            if attempt == 49:
                raise
            time.sleep(0.1)


def cleanup_stale(base_dir: str | None = None) -> list[str]:
    """Tear down engines whose owning process is gone (a killed test run). Returns dirs."""
    base = base_dir or os.environ.get("SHOAL_TEST_TMPDIR", "/tmp")
    cleaned = []
    for d in glob.glob(os.path.join(base, PREFIX + "*")):
        try:
            state = json.loads(Path(d, "state.json").read_text())
        except (OSError, ValueError):
            # No state (yet): abandoned before anything started, or being created right now.
            with contextlib.suppress(OSError):
                if time.time() - os.path.getmtime(d) > 300:
                    shutil.rmtree(d, ignore_errors=True)
                    cleaned.append(d)
            continue
        owner = state.get("owner_pid")
        if procs.alive(owner) and procs.start_time(owner) == state.get("owner_start"):
            continue
        state["dir"] = d
        try:
            _teardown(state)
        except Exception as e:  # never let an old mess stop a new engine from starting
            warnings.warn(f"could not clean up stale engine {d}: {e}", stacklevel=2)
            continue
        cleaned.append(d)
    return cleaned


# --------------------------------------------------------------------------- IsolatedEngine


class IsolatedEngine:
    """A dockerd in its own network/UTS/mount namespaces. See the module docstring."""

    def __init__(
        self,
        name: str | None = None,
        *,
        hostname: str | None = None,
        base_dir: str | None = None,
        iptables: bool = True,
        daemon_config: dict[str, Any] | None = None,
        extra_args: Sequence[str] = (),
        debug: bool = False,
        startup_timeout: float = 60.0,
        dockerd: str = "dockerd",
    ) -> None:
        self.name = name or PREFIX + secrets.token_hex(4)
        self.hostname = hostname or self.name
        base = base_dir or os.environ.get("SHOAL_TEST_TMPDIR", "/tmp")
        self.dir = os.path.join(base, self.name)
        self._host = Host(self.dir, self.hostname)
        self._dockerd = Dockerd(
            self.dir,
            cgroup_parent=self.name,
            iptables=iptables,
            daemon_config=daemon_config,
            extra_args=extra_args,
            debug=debug,
            startup_timeout=startup_timeout,
            binary=dockerd,
        )
        self.socket_path = self._dockerd.socket_path
        self.host = self._dockerd.host
        self.data_root = self._dockerd.data_root
        self.exec_root = self._dockerd.exec_root
        self.pidfile = self._dockerd.pidfile
        self.log_path = self._dockerd.log_path
        self.iptables = iptables
        self.daemon_config = self._dockerd.daemon_config
        self.extra_args = self._dockerd.extra_args
        self.debug = debug
        self.startup_timeout = startup_timeout
        self.dockerd = dockerd
        self.holder_pid: int | None = None
        self.pid: int | None = None  # dockerd
        self.cgroup_dirs: list[str] = []
        self._procs: list[subprocess.Popen[bytes]] = []
        self._state: dict[str, Any] | None = None
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- namespaces

    @property
    def ns_paths(self) -> dict[str, str]:
        """Paths usable with setns(2), ``nsenter --net=…`` or pyroute2's NetNS."""
        self._require_started()
        return {k: f"/proc/{self.holder_pid}/ns/{k}" for k in ("net", "uts", "mnt")}

    @property
    def netns_path(self) -> str:
        return self.ns_paths["net"]

    def exec_prefix(self, *, mount: bool = True, wd: str | None = None) -> list[str]:
        """argv prefix that runs a command inside the engine's namespaces."""
        self._require_started()
        return self._host.exec_prefix(mount=mount, wd=wd)

    def run_in_ns(
        self, cmd: Sequence[str], *, check: bool = False, timeout: float = 60.0, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run cmd inside the engine's namespaces; text output captured unless overridden."""
        self._require_started()
        return self._host.run(cmd, check=check, timeout=timeout, **kw)

    def popen_in_ns(self, cmd: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        """Start a long-running process (e.g. shoald) inside the engine's namespaces.

        It is killed by ``stop()`` at the latest (it shares the engine's network namespace).
        """
        self._require_started()
        return self._host.popen(cmd, **kw)

    def socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM) -> socket.socket:
        """A socket created inside the engine's network namespace (usable from any thread)."""
        self._require_started()
        return self._host.socket(family, type)

    def http_get(
        self, port: int, path: str = "/", host: str = "127.0.0.1", timeout: float = 5.0
    ) -> tuple[int, str]:
        """GET http://host:port/path from inside the engine's netns → (status, body)."""
        self._require_started()
        return self._host.http_get(port, path, host, timeout)

    # ---------------------------------------------------------------- API

    def api(
        self, method: str, path: str, body: bytes | None = None, **kw: Any
    ) -> tuple[int, bytes]:
        return api_request(self.host, method, path, body, **kw)

    def client(self) -> Any:
        """A docker-py ``DockerClient`` for this engine (docker-py is a test dependency)."""
        import docker  # type: ignore[import-untyped]

        return docker.DockerClient(base_url=self.host, version="auto")

    def container_pids(self) -> set[int]:
        """Pids of the init processes of this engine's running containers."""
        return self._dockerd.container_pids()

    def log_tail(self, lines: int = 40) -> str:
        return self._dockerd.log_tail(lines)

    # ---------------------------------------------------------------- lifecycle

    @property
    def running(self) -> bool:
        return procs.alive(self.pid)

    def start(self) -> IsolatedEngine:
        with self._lock:
            if self._state is not None:
                return self
            cleanup_stale(os.path.dirname(self.dir))
            for tool in ("unshare", "nsenter", "ip", "mount", self.dockerd):
                if not shutil.which(tool):
                    raise DockerdError(f"{tool} not found in PATH (run scripts/setup.sh)")
            os.makedirs(self.dir)
            self._dockerd.prepare()
            self._state = {
                "dir": self.dir,
                "owner_pid": os.getpid(),
                "owner_start": procs.start_time(os.getpid()),
            }
            self._save_state()
            atexit.register(self.stop)
            try:
                self._start_holder()
                self._start_dockerd()
            except BaseException:
                self._stop_locked()
                raise
            return self

    def _save_state(self) -> None:
        assert self._state is not None
        tmp = Path(self.dir, "state.json.tmp")
        tmp.write_text(json.dumps(self._state))
        tmp.replace(Path(self.dir, "state.json"))

    def _spawn(self, argv: list[str], log: str) -> subprocess.Popen[bytes]:
        with open(os.path.join(self.dir, log), "ab") as out:
            p = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C to the test run must not reach it
            )
        self._procs.append(p)
        return p

    def _start_holder(self) -> None:
        assert self._state is not None

        def save(host: Host) -> None:
            assert self._state is not None
            self.holder_pid = host.holder_pid
            self._state.update(host.state())
            self._save_state()

        try:
            self._host.start(on_pid=save)
        except HostError as e:
            raise DockerdError(str(e)) from e
        finally:
            if self._host.holder_proc is not None:
                self._procs.append(self._host.holder_proc)
        self._state["ns"] = self._host.ns
        self._save_state()

    def _start_dockerd(self) -> None:
        assert self._state is not None
        proc = self._spawn(  # nsenter execs dockerd: same pid
            [*self.exec_prefix(wd=self.dir), *self._dockerd.argv()], "dockerd.log"
        )
        self.pid = proc.pid
        self._state["dockerd_pid"] = proc.pid
        self._state["cgroup_dirs"] = self.cgroup_dirs = self._dockerd.cgroup_dirs(proc.pid)
        self._save_state()
        self._dockerd.wait_ready(proc.poll)

    def stop(self) -> None:
        """Kill dockerd, containerd, shims, containers and anything started in the
        namespaces; remove the cgroups and the directory. Idempotent."""
        with self._lock:
            self._stop_locked()

    def _stop_locked(self) -> None:
        if self._state is None:
            return
        try:
            _teardown(self._state)
        finally:
            for p in self._procs:  # reap our children
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=5)
            self._procs.clear()
            self._state = None
            self.pid = None
            self.holder_pid = None
            self._host.holder_pid = None
            atexit.unregister(self.stop)

    def _require_started(self) -> None:
        if self.holder_pid is None:
            raise DockerdError(f"engine {self.name} is not started")

    def __enter__(self) -> IsolatedEngine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"IsolatedEngine({self.name!r}, host={self.host!r}, running={self.running})"


def engine_processes(engine_dir: str) -> Iterator[int]:
    """Pids whose command line mentions engine_dir (for tests asserting cleanup)."""
    for pid in procs.pids():
        if engine_dir.rstrip("/") + "/" in procs.cmdline(pid) and procs.alive(pid):
            yield pid
