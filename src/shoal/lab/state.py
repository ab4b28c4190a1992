"""A lab's state on disk: names, addresses, pids — one JSON file per lab.

Layout (``$SHOAL_LAB_DIR``, default ``/var/lib/shoal-lab``)::

    <base>/<lab>/lab.json              this file: the lab, its hosts, their pids
    <base>/<lab>/hosts                 /etc/hosts of every host (the lab's node names)
    <base>/<lab>/<lab>-registry/       the registry host: registry.yml, data/, registry.log;
                                       registry-auth.yml, htpasswd, data-auth/, registry-auth.log
    <base>/<lab>/<node>/docker.sock    the node's shoald (its DOCKER_HOST)
    <base>/<lab>/<node>/shoald/        shoald's --state-dir (swarm state, etcd data)
    <base>/<lab>/<node>/engine/        the node's dockerd: data/, exec/, docker.sock, logs

Every ``shoal lab`` command takes the lab's lock (``flock`` on its directory) for its whole
run, so commands on one lab are serialized; the base directory's lock guards the choice of
a lab's subnet.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shoal.lab.etcd import ExternalEtcd

DEFAULT_BASE = "/var/lib/shoal-lab"
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,14}$")
SUBNET_PREFIX = "10.211"  # lab N gets 10.211.N.0/24
MAX_MANAGERS = 89  # .11 … .99
MAX_WORKERS = 150  # .101 … .250
REGISTRY_PORT = 5000
AUTH_REGISTRY_PORT = 5001  # the registry that wants a login
REGISTRY_USER = "shoal"


class LabError(RuntimeError):
    """A lab command failed; the message is for the user."""


def base_dir() -> Path:
    return Path(os.environ.get("SHOAL_LAB_DIR") or DEFAULT_BASE)


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise LabError(
            f"invalid lab name {name!r}: 1-15 characters, lowercase letters, digits and '-', "
            "starting with a letter"
        )
    return name


@dataclass
class NodeState:
    name: str
    role: str  # "manager" | "worker" | "registry"
    addr: str
    veth: str
    holder_pid: int | None = None
    holder_start: str | None = None
    ns: dict[str, str | None] = field(default_factory=dict)
    dockerd_pid: int | None = None
    shoald_pid: int | None = None
    registry_pid: int | None = None
    auth_registry_pid: int | None = None
    etcd_pids: list[int] = field(default_factory=list)  # the registry host's etcd members
    cgroup_dirs: list[str] = field(default_factory=list)
    partitioned: bool = False
    swarm: str = ""  # what `up` last did about the swarm: "", "init", "joined", "join failed: …"

    @property
    def short(self) -> str:
        """m1, w2, registry: the name without the lab prefix."""
        return self.name.rsplit("-", 1)[1]


@dataclass
class LabState:
    name: str
    index: int
    created: float = field(default_factory=time.time)
    nodes: dict[str, NodeState] = field(default_factory=dict)  # in creation order
    registry_user: str = REGISTRY_USER  # of the registry that wants a login
    registry_password: str = ""  # made by `up`; `shoal lab registry --auth --password` sets it
    external_etcd: bool = False  # `up --external-etcd`: the swarm on an etcd cluster of its own

    # -------------------------------------------------------------- derived names

    @property
    def dir(self) -> Path:
        return base_dir() / self.name

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"{SUBNET_PREFIX}.{self.index}.0/24")

    @property
    def gateway(self) -> str:
        return f"{SUBNET_PREFIX}.{self.index}.1"

    @property
    def bridge(self) -> str:
        return f"shl{self.index}"

    @property
    def registry_name(self) -> str:
        return f"{self.name}-registry"

    @property
    def registry_addr(self) -> str:
        return f"{SUBNET_PREFIX}.{self.index}.2:{REGISTRY_PORT}"

    @property
    def auth_registry_addr(self) -> str:
        return f"{SUBNET_PREFIX}.{self.index}.2:{AUTH_REGISTRY_PORT}"

    def etcd(self) -> ExternalEtcd:
        """The lab's external etcd cluster (`up --external-etcd`), on the registry host."""
        host = f"{SUBNET_PREFIX}.{self.index}.2"
        return ExternalEtcd(self.dir / self.registry_name / "etcd", host)

    @property
    def comment(self) -> str:
        """Tag of the lab's iptables rules and of its bridge (ip link alias)."""
        return f"shoal-lab:{self.name}"

    def node_dir(self, node: str) -> Path:
        return self.dir / node

    def docker_host(self, node: str) -> str:
        return f"unix://{self.node_dir(node) / 'docker.sock'}"

    def engine_host(self, node: str) -> str:
        return f"unix://{self.node_dir(node) / 'engine' / 'docker.sock'}"

    def node_names(self, role: str) -> list[str]:
        return [n.name for n in self.nodes.values() if n.role == role]

    def new_node(self, role: str, number: int) -> NodeState:
        if role == "registry":
            name, host_part, short = self.registry_name, 2, "reg"
        elif role == "manager":
            name, host_part, short = f"{self.name}-m{number}", 10 + number, f"m{number}"
        else:
            name, host_part, short = f"{self.name}-w{number}", 100 + number, f"w{number}"
        addr = f"{SUBNET_PREFIX}.{self.index}.{host_part}"
        return NodeState(name=name, role=role, addr=addr, veth=f"{self.bridge}-{short}")

    # -------------------------------------------------------------- persistence

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> LabState:
        raw: dict[str, Any] = json.loads(text)
        nodes = {k: NodeState(**v) for k, v in (raw.pop("nodes", None) or {}).items()}
        return cls(**raw, nodes=nodes)

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / "lab.json.tmp"
        tmp.write_text(self.to_json())
        tmp.replace(self.dir / "lab.json")


def load(name: str) -> LabState | None:
    try:
        return LabState.from_json((base_dir() / name / "lab.json").read_text())
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as e:
        path = base_dir() / name / "lab.json"
        raise LabError(f"{path} is damaged ({e}): `shoal lab down`") from e


def all_labs() -> list[LabState]:
    labs = []
    base = base_dir()
    if base.is_dir():
        for d in sorted(base.iterdir()):
            if d.is_dir() and NAME_RE.match(d.name):
                with contextlib.suppress(LabError):
                    lab = load(d.name)
                    if lab is not None:
                        labs.append(lab)
    return labs


def find_node(node: str, lab: str | None = None) -> tuple[LabState, NodeState]:
    """The lab holding node (in lab if given, else in any lab)."""
    labs = [x for x in (load(lab),) if x] if lab else all_labs()
    for state in labs:
        if node in state.nodes and state.nodes[node].role != "registry":
            return state, state.nodes[node]
    where = f"lab {lab!r}" if lab else "any lab"
    raise LabError(f"no node {node!r} in {where} (see `shoal lab ls`)")


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked(name: str, create: bool) -> Iterator[Path]:
    """Hold the lab's lock (its directory, created if create). Yields the directory."""
    check_name(name)
    base = base_dir()
    base.mkdir(parents=True, exist_ok=True)
    d = base / name
    while True:
        if create:
            d.mkdir(exist_ok=True)
        elif not d.is_dir():
            raise LabError(f"no lab {name!r} (see `shoal lab ls`)")
        try:
            fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            continue  # removed meanwhile by `down`
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(d).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                continue  # `down` removed the directory while we waited: start over
            yield d
            return
        finally:
            os.close(fd)


def allocate_index(name: str) -> int:
    """The lowest N (1…254) for which 10.211.N.0/24 is used by no other lab and no interface
    or route of this machine. Call with the lab's lock held; the new lab must save its state
    before the base lock is released (see ``create``)."""
    used = {lab.index for lab in all_labs() if lab.name != name}
    taken_nets = _local_networks()
    for n in range(1, 255):
        net = ipaddress.IPv4Network(f"{SUBNET_PREFIX}.{n}.0/24")
        if n in used or any(net.overlaps(t) for t in taken_nets):
            continue
        return n
    raise LabError("no free 10.211.N.0/24 subnet left for another lab")


def create(name: str) -> LabState:
    """Load the lab's state, or choose its subnet and save a new one (lab lock held)."""
    existing = load(name)
    if existing is not None:
        return existing
    with _flock(base_dir()):
        state = LabState(name=name, index=allocate_index(name))
        state.save()
    return state


def _local_networks() -> list[ipaddress.IPv4Network]:
    """Networks of this namespace's addresses and routes (to avoid clashing with them)."""
    nets = []
    for cmd in (["ip", "-4", "-o", "addr"], ["ip", "-4", "route"]):
        out = subprocess.run(cmd, capture_output=True, text=True).stdout
        for word in out.split():
            if "/" in word or re.match(r"^\d+\.\d+\.\d+\.\d+$", word):
                with contextlib.suppress(ValueError):
                    net = ipaddress.IPv4Network(word, strict=False)
                    if net.prefixlen >= 8 and not net.is_loopback:
                        nets.append(net)
    return nets
