"""Supervising this manager's etcd member: a child process, restarted when it dies.

Data lives in `<state-dir>/etcd`. Clients stay on loopback (each manager talks to its own
member); peers talk on the manager's advertise address (port 2380) over mutual TLS with the
swarm's CA: a manager's node certificate names its address, and etcd checks the peer's
certificate both ways. A member that joins an existing cluster is started with
`--initial-cluster-state existing` and the cluster's members (it was added as a learner by
the manager that let it join; `promote` makes it a voting member once it caught up).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

# etcd's raft timing in milliseconds (etcd's defaults: 100 / 1000; it wants the election timeout
# at least 5 heartbeats): measured choice and overrides in `docs/design/cluster.md`.
HEARTBEAT_MS = int(os.environ.get("SHOAL_ETCD_HEARTBEAT_MS", "100"))
ELECTION_MS = int(os.environ.get("SHOAL_ETCD_ELECTION_MS", "500"))


@dataclass(frozen=True)
class PeerTLS:
    """The files of the member's peer TLS: its certificate and key, the CA it trusts."""

    cert: Path
    key: Path
    ca: Path


@dataclass
class MemberConfig:
    data_dir: Path
    name: str
    client_port: int = 2379
    peer_port: int = 2380
    host: str = "127.0.0.1"  # clients
    peer_host: str = "127.0.0.1"  # the manager's advertise address
    tls: PeerTLS | None = None
    cluster: dict[str, str] = field(default_factory=dict)  # name → peer URL; {} a new one
    # Start (once) as a one-member cluster from the data directory: etcd's own
    # `--force-new-cluster` (`swarm init --force-new-cluster`); later starts are normal.
    force_new_cluster: bool = False
    binary: str = field(default_factory=lambda: shutil.which("etcd") or "/usr/bin/etcd")
    heartbeat_ms: int = HEARTBEAT_MS
    election_ms: int = ELECTION_MS

    @property
    def client_url(self) -> str:
        return f"http://{self.host}:{self.client_port}"

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{self.peer_host}:{self.peer_port}"

    def argv(self) -> list[str]:
        peer = self.peer_url
        cluster = self.cluster or {self.name: peer}
        tls = []
        if self.tls is not None:
            tls = [
                "--peer-cert-file", str(self.tls.cert), "--peer-key-file", str(self.tls.key),
                "--peer-trusted-ca-file", str(self.tls.ca), "--peer-client-cert-auth",
            ]  # fmt: skip
        return [
            self.binary,
            "--name", self.name,
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.client_url,
            "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", ",".join(f"{n}={u}" for n, u in sorted(cluster.items())),
            "--initial-cluster-state", "existing" if self.cluster else "new",
            "--pre-vote",
            "--heartbeat-interval", str(self.heartbeat_ms),
            "--election-timeout", str(self.election_ms),
            *(["--force-new-cluster"] if self.force_new_cluster else []),
            *tls,
            "--auto-compaction-mode", "revision",
            "--auto-compaction-retention", "10000",
            "--quota-backend-bytes", str(8 * 1024**3),
            "--log-level", "warn",
        ]  # fmt: skip


class Member:
    """Runs etcd until cancelled; restarts it (with back-off) if it exits."""

    def __init__(self, config: MemberConfig) -> None:
        self.config = config
        self.proc: asyncio.subprocess.Process | None = None
        self.started = asyncio.Event()
        self.removed = asyncio.Event()  # the cluster removed this member: it stays stopped

    async def run(self) -> None:
        delay = 0.2
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        self.config.data_dir.chmod(0o700)
        _kill_leftover(self.config.data_dir)
        logfile = self.config.data_dir.parent / "etcd.log"
        try:
            while True:
                with open(logfile, "ab") as out:
                    self.proc = await asyncio.create_subprocess_exec(
                        *self.config.argv(),
                        stdout=out,
                        stderr=out,
                        stdin=asyncio.subprocess.DEVNULL,
                        start_new_session=True,
                        preexec_fn=_die_with_parent,
                    )
                self.config.force_new_cluster = False  # done once: the next starts are normal
                self.started.set()
                rc = await self.proc.wait()
                if _removed(logfile):
                    log.error("etcd: this member was removed from its cluster; not restarted")
                    self.removed.set()
                    await asyncio.Event().wait()
                log.warning("etcd exited with %s; restarting in %.1fs", rc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        finally:
            await self.stop()

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        try:
            os.kill(proc.pid, signal.SIGTERM)
            await asyncio.wait_for(asyncio.shield(proc.wait()), 5)
        except (ProcessLookupError, TimeoutError):
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


REMOVED = b"the member has been permanently removed from the cluster"


def _removed(logfile: Path, tail: int = 8192) -> bool:
    """Whether etcd's last words were that its cluster removed it (a `--force-new-cluster`
    elsewhere, or `member remove`): it exits then, and would only exit again."""
    try:
        with open(logfile, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - tail))
            return REMOVED in f.read()
    except OSError:
        return False


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child: SIGKILL when shoald dies, even by SIGKILL (no orphaned etcd)."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _kill_leftover(data_dir: Path) -> None:
    """An etcd still serving our data directory (its shoald died before it) goes first."""
    marker = f"--data-dir\0{data_dir}\0".encode()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if marker in cmdline + b"\0":
            log.warning("killing leftover etcd %s for %s", pid, data_dir)
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
