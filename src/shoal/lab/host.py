"""A host on this machine: fresh network, UTS and mount namespaces held by a small init.

``Host`` is what a lab node (and a test engine, ``shoal.testing.dockerd.IsolatedEngine``) runs in:

* **The holder** is ``unshare --net --uts --mount --propagation private`` running a short
  script that prepares the mounts and then execs ``hostinit.py`` (see there): the host's
  init, which keeps the namespaces alive, starts daemons inside them on request
  (``spawn()``) and reaps every orphan.
* **Mounts in the new mount namespace** (propagation private, so nothing leaks out and
  everything vanishes with the namespace):

  - ``/sys`` is remounted, so ``/sys/class/net`` shows the new netns's interfaces
    (with plain ``nsenter --net`` dockerd starts but sees the host's interfaces);
  - the cgroup hierarchies are carried over onto the fresh ``/sys`` with
    ``mount --rbind /sys/fs/cgroup`` before and ``mount --move`` after the remount (a fresh
    sysfs has an empty ``/sys/fs/cgroup``: dockerd then fails with "Devices cgroup isn't
    mounted"). This works for cgroup v1, hybrid (v1 + ``unified``) and v2;
  - ``/run`` is a private tmpfs (containerd shim sockets, ``/run/docker/plugins``,
    xtables lock), and ``/etc/docker`` a private directory (``daemon.json`` and the
    ``key.json`` that gives dockerd its engine ID: every engine gets its own ID);
  - optionally ``/etc/hosts`` is a given file (a lab's node names).

* Anything can also be run inside with ``nsenter --target <holder>`` (``exec_prefix()``,
  ``run()``, ``popen()``), and Python sockets can be made inside (``socket()``).

``destroy()`` kills everything in the namespaces (and in given cgroups, and whatever names
the host's directory on its command line), then the holder, and unmounts what is left.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shoal.lab import procs

CLONE_NEWNET = 0x40000000
INIT_SCRIPT = str(Path(__file__).with_name("hostinit.py"))

# Runs as the holder, inside the fresh namespaces.
# $1 = host dir, $2 = hostname, $3 = python, $4 = hostinit.py, $5 = /etc/hosts file or "".
HOLDER_SCRIPT = r"""
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
if [ -n "$5" ]; then mount --bind "$5" /etc/hosts; fi
ip link set lo up
hostname "$2"
exec "$3" -I "$4" "$dir"
"""


class HostError(RuntimeError):
    """A host could not be started or does not answer."""


class Host:
    """Namespaces held by an init; see the module docstring.

    ``state()`` / ``Host.from_state()`` carry it across processes (a lab's JSON file)."""

    def __init__(self, directory: str, hostname: str, *, hosts_file: str | None = None) -> None:
        self.dir = directory
        self.hostname = hostname
        self.hosts_file = hosts_file
        self.holder_pid: int | None = None
        self.holder_start: str | None = None
        self.ns: dict[str, str | None] = {}
        self.holder_proc: subprocess.Popen[bytes] | None = None

    # ---------------------------------------------------------------- state

    def state(self) -> dict[str, Any]:
        return {"holder_pid": self.holder_pid, "holder_start": self.holder_start, "ns": self.ns}

    @classmethod
    def from_state(
        cls, directory: str, hostname: str, state: dict[str, Any], hosts_file: str | None = None
    ) -> Host:
        host = cls(directory, hostname, hosts_file=hosts_file)
        host.holder_pid = state.get("holder_pid")
        host.holder_start = state.get("holder_start")
        host.ns = dict(state.get("ns") or {})
        return host

    @property
    def running(self) -> bool:
        """The holder (and so the namespaces) is alive and is the one we started."""
        return procs.same_process(self.holder_pid, self.holder_start)

    @property
    def init_socket(self) -> str:
        return os.path.join(self.dir, "init.sock")

    # ---------------------------------------------------------------- lifecycle

    def start(self, timeout: float = 10.0, on_pid: Any = None) -> Host:
        """Create the namespaces; returns once the init accepts requests.

        ``on_pid(host)`` is called as soon as the holder's pid is known (to save it before
        anything can fail)."""
        for tool in ("unshare", "nsenter", "ip", "mount"):
            if not _which(tool):
                raise HostError(f"{tool} not found in PATH (run scripts/setup.sh)")
        os.makedirs(self.dir, exist_ok=True)
        ready = Path(self.dir, "ns-ready")
        with contextlib.suppress(FileNotFoundError):
            ready.unlink()
        log = os.path.join(self.dir, "holder.log")
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [
                    "unshare", "--net", "--uts", "--mount", "--propagation", "private", "--",
                    "sh", "-c", HOLDER_SCRIPT, "holder", self.dir, self.hostname,
                    sys.executable, INIT_SCRIPT, self.hosts_file or "",
                ],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C to the caller must not reach it
            )  # fmt: skip
        self.holder_proc = proc
        self.holder_pid = proc.pid
        self.holder_start = procs.start_time(proc.pid)
        if on_pid is not None:
            on_pid(self)
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                text = Path(log).read_text(errors="replace")
                raise HostError(f"namespace holder of {self.hostname} failed to start:\n{text}")
            time.sleep(0.01)
        self.ns = {k: procs.ns_id(proc.pid, k) for k in ("net", "mnt", "uts")}
        if self.ns["net"] == procs.ns_id(os.getpid(), "net"):
            raise HostError("holder is in the caller's network namespace")
        return self

    def require_running(self) -> None:
        if not self.running:
            raise HostError(f"host {self.hostname} is not running")

    # ---------------------------------------------------------------- running things inside

    def exec_prefix(self, *, mount: bool = True, wd: str | None = None) -> list[str]:
        """argv prefix that runs a command inside the host's namespaces."""
        if self.holder_pid is None:
            raise HostError(f"host {self.hostname} is not started")
        prefix = ["nsenter", f"--target={self.holder_pid}", "--net", "--uts"]
        if mount:
            # Entering a mount namespace resets the cwd to "/": keep the caller's.
            prefix += ["--mount", f"--wd={wd or os.getcwd()}"]
        return prefix + ["--"]

    def run(
        self, cmd: Sequence[str], *, check: bool = False, timeout: float = 60.0, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run cmd inside the host; text output captured unless overridden."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run([*self.exec_prefix(), *cmd], check=check, timeout=timeout, **kw)

    def popen(self, cmd: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        """Start a process inside the host as a child of the caller."""
        return subprocess.Popen([*self.exec_prefix(), *cmd], **kw)

    def _init_request(self, req: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.init_socket)
            s.sendall(json.dumps(req).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        answer: dict[str, Any] = json.loads(data)
        if "error" in answer:
            raise HostError(f"{self.hostname}: {answer['error']}")
        return answer

    def spawn(self, argv: Sequence[str], log: str, env: dict[str, str] | None = None) -> int:
        """Start a daemon inside the host as a child of its init (which reaps it); its own
        session, stdin /dev/null, output appended to log. Returns its pid."""
        self.require_running()
        req = {"op": "spawn", "argv": list(argv), "log": log, "env": env or dict(os.environ)}
        return int(self._init_request(req)["pid"])

    def exit_status(self, pid: int) -> int | None:
        """The exit code of a process spawn() started, once it has ended (else None)."""
        with contextlib.suppress(OSError, ValueError, HostError):
            answer = self._init_request({"op": "status", "pid": pid}, timeout=2.0)
            if not answer.get("running"):
                return answer.get("exit") if answer.get("exit") is not None else -1
            return None
        return None if procs.alive(pid) else -1

    def socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM) -> socket.socket:
        """A socket created inside the host's network namespace (usable from any thread)."""
        self.require_running()
        result: dict[str, Any] = {}
        netns = f"/proc/{self.holder_pid}/ns/net"

        def make() -> None:  # setns(CLONE_NEWNET) only affects this short-lived thread
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                fd = os.open(netns, os.O_RDONLY)
                try:
                    if libc.setns(fd, CLONE_NEWNET) != 0:
                        err = ctypes.get_errno()
                        raise OSError(err, os.strerror(err))
                finally:
                    os.close(fd)
                result["sock"] = socket.socket(family, type)
            except BaseException as e:  # re-raised in the caller
                result["err"] = e

        t = threading.Thread(target=make, name=f"netns-{self.hostname}")
        t.start()
        t.join()
        if "err" in result:
            raise result["err"]
        sock: socket.socket = result["sock"]
        return sock

    def http_get(
        self, port: int, path: str = "/", host: str = "127.0.0.1", timeout: float = 5.0
    ) -> tuple[int, str]:
        """GET http://host:port/path from inside the host's netns → (status, body)."""
        conn = _NsHTTPConnection(self, host, port, timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read().decode(errors="replace")
        finally:
            conn.close()

    # ---------------------------------------------------------------- killing

    def _ns_usable(self) -> dict[str, str | None]:
        """Namespace ids are inode numbers the kernel reuses once a namespace is gone: match
        processes by namespace only while something provably ours still holds it."""
        if self.running:
            return self.ns
        mine = self.dir.rstrip("/") + "/"
        if self.ns.get("net") and any(
            procs.ns_id(p, "net") == self.ns.get("net") for p in procs.mentioning(mine)
        ):
            return self.ns
        return {}

    def processes(
        self, cgroup_dirs: Sequence[str] = (), exec_roots: Sequence[str] = ()
    ) -> set[int]:
        """Live processes of this host, except its init: in its namespaces, in the given
        cgroups, containers of the given dockerd exec roots, or naming its directory."""
        ns = self._ns_usable()
        mine = self.dir.rstrip("/") + "/"
        me = os.getpid()
        found = set()
        for pid in procs.pids():
            if pid in (me, self.holder_pid):
                continue
            if (
                (ns.get("net") and procs.ns_id(pid, "net") == ns["net"])
                or (ns.get("mnt") and procs.ns_id(pid, "mnt") == ns["mnt"])
                or mine in procs.cmdline(pid)  # e.g. shims: -address <dir>/…/containerd.sock
            ) and procs.alive(pid):
                found.add(pid)
        extra = procs.cgroup_procs(cgroup_dirs)
        for root in exec_roots:
            extra |= procs.container_inits(root)
        found |= {p for p in extra if procs.alive(p) and p not in (me, self.holder_pid)}
        return found

    def kill_processes(
        self,
        cgroup_dirs: Sequence[str] = (),
        exec_roots: Sequence[str] = (),
        timeout: float = 15.0,
    ) -> None:
        """SIGKILL every process of the host but its init, until none is left."""
        deadline = time.monotonic() + timeout
        while True:
            victims = self.processes(cgroup_dirs, exec_roots)
            if not victims:
                return
            for pid in victims:
                procs.kill(pid)
            if time.monotonic() > deadline:
                raise HostError(f"{self.hostname}: processes survive SIGKILL: {sorted(victims)}")
            time.sleep(0.05)

    def destroy(self, cgroup_dirs: Sequence[str] = (), exec_roots: Sequence[str] = ()) -> None:
        """Kill everything of the host and its init, remove the cgroups, unmount anything
        under its directory (the directory itself stays). Idempotent."""
        self.kill_processes(cgroup_dirs, exec_roots)
        if self.running:
            assert self.holder_pid is not None
            procs.kill(self.holder_pid)
            procs.wait_dead([self.holder_pid], 5.0)
        if self.holder_proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.holder_proc.wait(timeout=5)
        # Anything that started after the first sweep (nothing should), then the cgroups.
        self.kill_processes(cgroup_dirs, exec_roots)
        procs.remove_cgroups(cgroup_dirs)
        procs.unmount_under(self.dir)


def signal_and_wait(pid: int | None, sig: int, timeout: float) -> bool:
    """Send sig to pid and wait for it to end; True if it did."""
    if not procs.alive(pid):
        return True
    assert pid is not None
    procs.kill(pid, sig)
    return procs.wait_dead([pid], timeout)


def _which(tool: str) -> bool:
    return shutil.which(tool) is not None


class _NsHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host_ns: Host, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._host_ns = host_ns

    def connect(self) -> None:
        sock = self._host_ns.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.sock = sock
