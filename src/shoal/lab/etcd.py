"""An etcd cluster apart from the swarm, for managers on an external etcd (`shoald
--etcd-endpoints`): `shoal lab up --external-etcd` runs one on the registry host, and the
tests run one in a test engine's namespaces.

`ExternalEtcd(dir, host)` makes, in `dir`, a CA of its own, one server certificate naming
`host` (every member's) and one client certificate; `argv(i)` is member i's command line
(clients on `https://host:<port>` with client-certificate auth, peers on plain `http` on
the same host); `shoald_args()` the flags that point a shoald at the cluster.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from shoal.ca.authority import issue, new_csr, new_key, new_root_ca

BASE_PORT = 12379  # member i: clients BASE_PORT + 10 i, peers one above
MEMBERS = 3


class ExternalEtcd:
    def __init__(self, dir: Path, host: str, members: int = MEMBERS, base_port: int = BASE_PORT):
        self.dir = dir
        self.host = host
        self.members = members
        self.base_port = base_port

    @property
    def ca(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def client_cert(self) -> Path:
        return self.dir / "client.crt"

    @property
    def client_key(self) -> Path:
        return self.dir / "client.key"

    def client_port(self, i: int) -> int:
        return self.base_port + 10 * i

    def endpoints(self) -> list[str]:
        return [f"https://{self.host}:{self.client_port(i)}" for i in range(self.members)]

    def shoald_args(self) -> list[str]:
        return [
            "--etcd-endpoints", ",".join(self.endpoints()),
            "--etcd-cacert", str(self.ca),
            "--etcd-cert", str(self.client_cert),
            "--etcd-key", str(self.client_key),
        ]  # fmt: skip

    def etcdctl_args(self) -> list[str]:
        """etcdctl's flags for this cluster (`ETCDCTL_API=3`)."""
        return [
            "--endpoints", ",".join(self.endpoints()),
            "--cacert", str(self.ca),
            "--cert", str(self.client_cert),
            "--key", str(self.client_key),
        ]  # fmt: skip

    def make_certs(self) -> None:
        """The CA, the members' certificate and the clients' (kept if made before)."""
        if self.client_key.exists():
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        root = new_root_ca()
        for name, addresses in (("server", [self.host]), ("client", [])):
            key, key_pem = new_key()
            cert = issue(root, new_csr(key), f"etcd-{name}", "manager", "external-etcd", addresses)
            (self.dir / f"{name}.crt").write_bytes(cert)
            path = self.dir / f"{name}.key"
            path.write_bytes(key_pem)
            path.chmod(0o600)
        self.ca.write_bytes(root.cert_pem)

    def argv(self, i: int, binary: str = "etcd") -> list[str]:
        peers = ",".join(
            f"m{j}=http://{self.host}:{self.client_port(j) + 1}" for j in range(self.members)
        )
        client = f"https://{self.host}:{self.client_port(i)}"
        return [
            binary,
            "--name", f"m{i}",
            "--data-dir", str(self.dir / f"m{i}.data"),
            "--listen-client-urls", client,
            "--advertise-client-urls", client,
            "--listen-peer-urls", f"http://{self.host}:{self.client_port(i) + 1}",
            "--initial-advertise-peer-urls", f"http://{self.host}:{self.client_port(i) + 1}",
            "--initial-cluster", peers,
            "--initial-cluster-state", "new",
            "--cert-file", str(self.dir / "server.crt"),
            "--key-file", str(self.dir / "server.key"),
            "--trusted-ca-file", str(self.ca),
            "--client-cert-auth",
            "--log-level", "warn",
        ]  # fmt: skip

    def log(self, i: int) -> Path:
        return self.dir / f"m{i}.log"

    def wait_listening(self, connect: Callable[[], socket.socket], timeout: float = 20.0) -> None:
        """Until every member accepts connections on its client port (`connect` makes a
        socket where the members are reachable, e.g. in their network namespace)."""
        deadline = time.monotonic() + timeout
        for i in range(self.members):
            while True:
                with contextlib.closing(connect()) as s:
                    s.settimeout(1.0)
                    try:
                        s.connect((self.host, self.client_port(i)))
                        break
                    except OSError:
                        if time.monotonic() > deadline:
                            raise TimeoutError(
                                f"etcd member m{i} does not listen on "
                                f"{self.host}:{self.client_port(i)}; see {self.log(i)}"
                            ) from None
                time.sleep(0.1)


class Spawner(Protocol):
    def spawn(self, argv: Sequence[str], log: str, env: dict[str, str] | None = None) -> int: ...

    def socket(self, family: int = ..., type: int = ...) -> socket.socket: ...


def start(host: Spawner, cluster: ExternalEtcd, pids: Sequence[int]) -> list[int]:
    """The cluster's members in `host` (a lab host), those of `pids` that still run kept;
    returns their pids once every member listens."""
    binary = shutil.which("etcd") or "/usr/bin/etcd"
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
    running = [p for p in pids if _is_etcd(p)]
    if len(running) < cluster.members:
        for p in running:  # some died: all again, from their data
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        running = [
            host.spawn(cluster.argv(i, binary), str(cluster.log(i)), env)
            for i in range(cluster.members)
        ]
    cluster.wait_listening(host.socket)
    return running


def _is_etcd(pid: int) -> bool:
    try:
        return b"etcd" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return False
