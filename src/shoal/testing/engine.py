"""A real, isolated Docker Engine (dockerd) for tests.

``Engine`` starts a Debian ``dockerd`` that shares nothing with any other engine on the
machine, so tests can run next to a host dockerd, next to each other (concurrently) and
next to Docker's own swarm mode without either side noticing:

* **Namespaces.** A *holder* process (``unshare --net --uts --mount`` running
  ``sleep infinity``) owns a fresh network, UTS and mount namespace. dockerd is started
  in them with ``nsenter --target <holder>``; so is anything a test wants to run "on that
  host" (``exec_prefix()``, ``run_in_ns()``, ``popen_in_ns()``).
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
import ctypes
import glob
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

PREFIX = "shoal-eng-"
CLONE_NEWNET = 0x40000000
_TASK_GLOB = "exec/containerd/daemon/io.containerd.runtime.v2.task/*/*/init.pid"

# Runs as PID of the holder, inside the fresh namespaces. $1 = engine dir, $2 = hostname.
_HOLDER_SCRIPT = r"""
set -eu
dir=$1
mkdir -p "$dir/ns/cgroup" "$dir/ns/etc-docker"
mount --rbind /sys/fs/cgroup "$dir/ns/cgroup"
umount -l /sys
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mount --move "$dir/ns/cgroup" /sys/fs/cgroup
mount -t tmpfs -o mode=755,size=64m tmpfs /run
[ -d /etc/docker ] || mkdir -p /etc/docker
mount --bind "$dir/ns/etc-docker" /etc/docker
ip link set lo up
hostname "$2"
: > "$dir/ns-ready"
exec sleep infinity
"""


class EngineError(RuntimeError):
    """The engine could not be started (the message carries the end of its log)."""


# --------------------------------------------------------------------------- HTTP on unix sockets


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: str, timeout: float = 60.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def socket_path_of(host: str) -> str:
    """``unix:///x/docker.sock`` or ``/x/docker.sock`` → ``/x/docker.sock``."""
    if host.startswith("unix://"):
        return host[len("unix://") :]
    if host.startswith("/"):
        return host
    raise ValueError(f"not a unix socket address: {host!r}")


def api_request(
    host: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> tuple[int, bytes]:
    """One Engine API request over a unix socket; returns (status, body)."""
    conn = UnixHTTPConnection(socket_path_of(host), timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


# --------------------------------------------------------------------------- /proc helpers


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _alive(pid: int | None) -> bool:
    """True if pid exists and is not a zombie."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _ns_id(pid: int, kind: str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return None


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _kill(pid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _container_inits(engine_dir: str) -> set[int]:
    """Pids of the containers' init processes, from containerd's task state."""
    pids = set()
    for f in glob.glob(os.path.join(engine_dir, _TASK_GLOB)):
        with contextlib.suppress(OSError, ValueError):
            pids.add(int(Path(f).read_text().strip()))
    return pids


def _cgroup_dirs(pid: int, parent: str) -> list[str]:
    """The directories ``--cgroup-parent parent`` maps to, for a daemon running as pid."""
    mounts: list[tuple[str, str, str, set[str]]] = []  # (fstype, root, mountpoint, opts)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            lf, rf = left.split(), right.split()
            if rf[0] in ("cgroup", "cgroup2"):
                mounts.append((rf[0], lf[3], lf[4], set(rf[2].split(","))))
    dirs = []
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for fstype, root, mountpoint, opts in mounts:
            if controllers == "" and fstype != "cgroup2":
                continue
            if controllers and (fstype != "cgroup" or not set(controllers.split(",")) <= opts):
                continue
            rel = os.path.relpath(path, root) if root != "/" else path.lstrip("/")
            if rel.startswith(".."):
                continue
            dirs.append(os.path.normpath(os.path.join(mountpoint, rel, parent)))
            break
    return dirs


def _cgroup_procs(dirs: Sequence[str]) -> set[int]:
    procs: set[int] = set()
    for top in dirs:
        for root, _, files in os.walk(top):
            if "cgroup.procs" in files:
                with contextlib.suppress(OSError), open(os.path.join(root, "cgroup.procs")) as f:
                    procs.update(int(x) for x in f.read().split())
    return procs


def _remove_cgroups(dirs: Sequence[str]) -> None:
    for top in dirs:
        for root, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(root)


def _unmount_under(path: str) -> None:
    prefix = path.rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        points = [ln.split()[4] for ln in f]
    for mp in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True)


# --------------------------------------------------------------------------- teardown


def _teardown(state: dict[str, Any], dockerd_timeout: float = 20.0) -> None:
    """Kill everything an engine started and remove its directory. Idempotent."""
    d = state["dir"]
    holder: int | None = state.get("holder_pid")
    dockerd: int | None = state.get("dockerd_pid")
    cg_dirs: list[str] = state.get("cgroup_dirs") or []
    me = os.getpid()
    if holder is not None and _start_time(holder) != state.get("holder_start"):
        holder = None  # dead, or the pid was reused
    if not _alive(holder):
        holder = None
    # Namespace ids are inode numbers the kernel reuses once a namespace is gone: match
    # processes by namespace only while something provably ours still holds it.
    ns = dict(state.get("ns") or {})
    if holder is None and not any(
        _ns_id(p, "net") == ns.get("net") for p in _pids() if d + "/" in _cmdline(p)
    ):
        ns = {}

    def ours(pid: int) -> bool:
        if pid in (me, holder):
            return False
        if ns.get("net") and _ns_id(pid, "net") == ns["net"]:
            return True
        if ns.get("mnt") and _ns_id(pid, "mnt") == ns["mnt"]:
            return True
        return d + "/" in _cmdline(pid)  # shims: -address <dir>/exec/containerd/...

    # 1. dockerd: SIGTERM, and kill the containers so shutdown needn't wait for stop timeouts.
    if dockerd is not None and _alive(dockerd) and d in _cmdline(dockerd):
        _kill(dockerd, signal.SIGTERM)
        deadline = time.monotonic() + dockerd_timeout
        while _alive(dockerd) and time.monotonic() < deadline:
            for pid in _container_inits(d) | _cgroup_procs(cg_dirs):
                if pid != me:
                    _kill(pid)
            time.sleep(0.05)
        if _alive(dockerd):
            _kill(dockerd)

    # 2. Everything else in the namespaces, the cgroups and the shims; then the holder.
    deadline = time.monotonic() + 15.0
    while True:
        victims = {p for p in _pids() if _alive(p) and ours(p)}
        victims |= {p for p in _container_inits(d) | _cgroup_procs(cg_dirs) if _alive(p)}
        victims.discard(me)
        if not victims:
            break
        for pid in victims:
            _kill(pid)
        if time.monotonic() > deadline:
            raise RuntimeError(f"engine {d}: processes survive SIGKILL: {sorted(victims)}")
        time.sleep(0.05)
    if holder is not None:
        _kill(holder)
        deadline = time.monotonic() + 5.0
        while _alive(holder) and time.monotonic() < deadline:
            time.sleep(0.02)

    # 3. Cgroups (rmdir fails while the kernel still tears tasks down: retry briefly).
    deadline = time.monotonic() + 5.0
    while True:
        _remove_cgroups(cg_dirs)
        if not any(os.path.exists(c) for c in cg_dirs) or time.monotonic() > deadline:
            break
        time.sleep(0.05)

    # 4. Mounts (none should be visible here: they lived in the private mount namespace).
    _unmount_under(d)
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
        if _alive(owner) and _start_time(owner) == state.get("owner_start"):
            continue
        state["dir"] = d
        try:
            _teardown(state)
        except Exception as e:  # never let an old mess stop a new engine from starting
            warnings.warn(f"could not clean up stale engine {d}: {e}", stacklevel=2)
            continue
        cleaned.append(d)
    return cleaned


# --------------------------------------------------------------------------- Engine


class _NsHTTPConnection(http.client.HTTPConnection):
    def __init__(self, engine: Engine, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._engine = engine

    def connect(self) -> None:
        sock = self._engine.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.sock = sock


class Engine:
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
        self.socket_path = os.path.join(self.dir, "docker.sock")
        self.host = "unix://" + self.socket_path
        self.data_root = os.path.join(self.dir, "data")
        self.exec_root = os.path.join(self.dir, "exec")
        self.pidfile = os.path.join(self.dir, "dockerd.pid")
        self.log_path = os.path.join(self.dir, "dockerd.log")
        self.iptables = iptables
        self.daemon_config = daemon_config or {}
        self.extra_args = list(extra_args)
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
        prefix = ["nsenter", f"--target={self.holder_pid}", "--net", "--uts"]
        if mount:
            # Entering a mount namespace resets the cwd to "/": keep the caller's.
            prefix += ["--mount", f"--wd={wd or os.getcwd()}"]
        return prefix + ["--"]

    def run_in_ns(
        self, cmd: Sequence[str], *, check: bool = False, timeout: float = 60.0, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run cmd inside the engine's namespaces; text output captured unless overridden."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run([*self.exec_prefix(), *cmd], check=check, timeout=timeout, **kw)

    def popen_in_ns(self, cmd: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        """Start a long-running process (e.g. shoald) inside the engine's namespaces.

        It is killed by ``stop()`` at the latest (it shares the engine's network namespace).
        """
        return subprocess.Popen([*self.exec_prefix(), *cmd], **kw)

    def socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM) -> socket.socket:
        """A socket created inside the engine's network namespace (usable from any thread)."""
        self._require_started()
        result: dict[str, Any] = {}

        def make() -> None:  # setns(CLONE_NEWNET) only affects this short-lived thread
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                fd = os.open(self.netns_path, os.O_RDONLY)
                try:
                    if libc.setns(fd, CLONE_NEWNET) != 0:
                        err = ctypes.get_errno()
                        raise OSError(err, os.strerror(err))
                finally:
                    os.close(fd)
                result["sock"] = socket.socket(family, type)
            except BaseException as e:  # re-raised in the caller
                result["err"] = e

        t = threading.Thread(target=make, name=f"netns-{self.name}")
        t.start()
        t.join()
        if "err" in result:
            raise result["err"]
        return result["sock"]

    def http_get(
        self, port: int, path: str = "/", host: str = "127.0.0.1", timeout: float = 5.0
    ) -> tuple[int, str]:
        """GET http://host:port/path from inside the engine's netns → (status, body)."""
        conn = _NsHTTPConnection(self, host, port, timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read().decode(errors="replace")
        finally:
            conn.close()

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
        return _container_inits(self.dir)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(Path(self.log_path).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # ---------------------------------------------------------------- lifecycle

    @property
    def running(self) -> bool:
        return _alive(self.pid)

    def start(self) -> Engine:
        with self._lock:
            if self._state is not None:
                return self
            cleanup_stale(os.path.dirname(self.dir))
            for tool in ("unshare", "nsenter", "ip", "mount", self.dockerd):
                if not shutil.which(tool):
                    raise EngineError(f"{tool} not found in PATH (run scripts/setup.sh)")
            os.makedirs(self.dir)
            os.makedirs(self.data_root)
            os.makedirs(self.exec_root)
            Path(self.dir, "daemon.json").write_text(json.dumps(self.daemon_config))
            self._state = {
                "dir": self.dir,
                "owner_pid": os.getpid(),
                "owner_start": _start_time(os.getpid()),
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
        holder = self._spawn(
            [
                "unshare",
                "--net",
                "--uts",
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                _HOLDER_SCRIPT,
                "holder",
                self.dir,
                self.hostname,
            ],
            "holder.log",
        )
        self.holder_pid = holder.pid
        self._state["holder_pid"] = holder.pid
        self._state["holder_start"] = _start_time(holder.pid)
        self._save_state()
        ready = Path(self.dir, "ns-ready")
        deadline = time.monotonic() + 10.0
        while not ready.exists():
            if holder.poll() is not None or time.monotonic() > deadline:
                log = Path(self.dir, "holder.log").read_text(errors="replace")
                raise EngineError(f"namespace holder failed to start:\n{log}")
            time.sleep(0.01)
        self._state["ns"] = {k: _ns_id(holder.pid, k) for k in ("net", "mnt", "uts")}
        if self._state["ns"]["net"] == _ns_id(os.getpid(), "net"):
            raise EngineError("holder is in the caller's network namespace")
        self._save_state()

    def _start_dockerd(self) -> None:
        assert self._state is not None
        argv = [
            *self.exec_prefix(wd=self.dir),
            self.dockerd,
            f"--config-file={self.dir}/daemon.json",
            f"--data-root={self.data_root}",
            f"--exec-root={self.exec_root}",
            f"--pidfile={self.pidfile}",
            f"--host={self.host}",
            f"--cgroup-parent={self.name}",
            "--shutdown-timeout=2",
            f"--iptables={'true' if self.iptables else 'false'}",
        ]
        if self.debug:
            argv.append("--debug")
        argv += self.extra_args
        proc = self._spawn(argv, "dockerd.log")  # nsenter execs dockerd: same pid
        self.pid = proc.pid
        self._state["dockerd_pid"] = proc.pid
        self._state["cgroup_dirs"] = self.cgroup_dirs = _cgroup_dirs(proc.pid, self.name)
        self._save_state()
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if proc.poll() is not None:
                raise EngineError(
                    f"dockerd exited with {proc.returncode}; end of {self.log_path}:\n"
                    + self.log_tail()
                )
            with contextlib.suppress(OSError, http.client.HTTPException):
                status, body = api_request(self.host, "GET", "/_ping", timeout=2.0)
                if status == 200 and body == b"OK":
                    return
            if time.monotonic() > deadline:
                raise EngineError(
                    f"dockerd not answering /_ping after {self.startup_timeout}s; end of log:\n"
                    + self.log_tail()
                )
            time.sleep(0.05)

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
            atexit.unregister(self.stop)

    def _require_started(self) -> None:
        if self.holder_pid is None:
            raise EngineError(f"engine {self.name} is not started")

    def __enter__(self) -> Engine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Engine({self.name!r}, host={self.host!r}, running={self.running})"


def engine_processes(engine_dir: str) -> Iterator[int]:
    """Pids whose command line mentions engine_dir (for tests asserting cleanup)."""
    for pid in _pids():
        if engine_dir.rstrip("/") + "/" in _cmdline(pid) and _alive(pid):
            yield pid
