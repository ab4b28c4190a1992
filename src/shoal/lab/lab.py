"""`shoal lab` operations: up and the per-node actions (status: ``status.py``, down:
``teardown.py``).

``up`` (idempotent) makes, in this order and saving the state after every step, so that
``down`` can undo a half-done ``up``:

1. the lab's subnet ``10.211.N.0/24``, bridge and iptables rules (``network``);
2. in parallel: the registry host with its two ``docker-registry`` instances (open, and
   behind a login), and every node — namespaces, ``eth0`` on the bridge, dockerd, shoald
   (``node``);
3. in parallel: the lab images pushed to the registry (built into the first manager's
   engine; private copies of whoami to the registry behind the login; with ``real_images``
   also the Debian-built images of ``shoal.lab.debian``, built once into their cache), and
   the swarm:
   ``swarm init`` on the first manager if it is in no swarm, then ``swarm join`` of the
   other managers (one at a time) and of the workers (together).
   A join that fails is recorded and reported, never hidden (``swarm.py``).
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from shoal.lab import etcd, network, procs, registry
from shoal.lab.api import ping
from shoal.lab.debian import publish, recipes
from shoal.lab.node import LabNode
from shoal.lab.state import (
    MAX_MANAGERS,
    MAX_WORKERS,
    LabError,
    LabState,
    check_name,
    create,
    load,
    locked,
)
from shoal.lab.swarm import make_swarm

Progress = Callable[[str], None]


def quiet(_: str) -> None:
    pass


class Lab:
    """A lab's state plus a lock for writes from parallel threads."""

    def __init__(self, state: LabState) -> None:
        self.state = state
        self._lock = threading.Lock()

    def save(self) -> None:
        with self._lock:
            self.state.save()

    def node(self, name: str) -> LabNode:
        if name not in self.state.nodes:
            raise LabError(f"no node {name!r} in lab {self.state.name!r}")
        return LabNode(self.state, self.state.nodes[name], self.save)

    def nodes(self) -> list[LabNode]:
        return [self.node(n) for n, s in self.state.nodes.items() if s.role != "registry"]

    def registry_node(self) -> LabNode | None:
        reg = self.state.nodes.get(self.state.registry_name)
        return LabNode(self.state, reg, self.save) if reg else None

    def write_hosts(self) -> None:
        """/etc/hosts of every host, rewritten in place (it is bind-mounted by inode)."""
        lines = [
            "127.0.0.1\tlocalhost",
            "::1\tlocalhost ip6-localhost ip6-loopback",
            f"{self.state.gateway}\t{self.state.name}-gateway",
        ]
        lines += [f"{n.addr}\t{n.name}" for n in self.state.nodes.values()]
        text = "\n".join(lines) + "\n"
        path = self.state.dir / "hosts"
        if not path.exists():
            path.write_text(text)
            return
        with open(path, "r+") as f:
            if f.read() != text:
                f.seek(0)
                f.write(text)
                f.truncate()


# ---------------------------------------------------------------------- up


@dataclass
class UpResult:
    state: LabState
    seconds: float
    images: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # joins that failed, image push failure

    @property
    def ok(self) -> bool:
        return not self.errors


def up(
    name: str,
    managers: int = 1,
    workers: int = 2,
    *,
    swarm: bool = True,
    images: bool = True,
    external_etcd: bool = False,
    real_images: list[str] | None = None,
    progress: Progress = quiet,
) -> UpResult:
    """real_images: names of ``shoal.lab.debian`` images to push too ([] for all of them)."""
    check_name(name)
    if not 1 <= managers <= MAX_MANAGERS or not 0 <= workers <= MAX_WORKERS:
        raise LabError(f"1-{MAX_MANAGERS} managers and 0-{MAX_WORKERS} workers, please")
    t0 = time.monotonic()
    with locked(name, create=True):
        lab = Lab(create(name))
        st = lab.state
        for role, count in (("registry", 1), ("manager", managers), ("worker", workers)):
            for i in range(1, count + 1):
                node = st.new_node(role, i)
                st.nodes.setdefault(node.name, node)
        if external_etcd and not st.external_etcd:
            if st.nodes and any(n.swarm for n in st.nodes.values()):
                raise LabError(f"lab {name} has its swarm on the managers' own etcd members: "
                               "`shoal lab down` it first")  # fmt: skip
            st.external_etcd = True
        if st.external_etcd:
            st.etcd().make_certs()  # before any shoald starts: its flags name the files
        lab.save()
        lab.write_hosts()
        progress(f"lab {name}: subnet {st.subnet}, bridge {st.bridge}")
        network.ensure_bridge(st)
        network.ensure_rules(st)

        def start_registry() -> None:
            reg = lab.registry_node()
            assert reg is not None
            reg.ensure_host()
            running = procs.alive(reg.state.registry_pid)
            if not (running and registry.answers(reg.host, st.registry_addr)):
                reg.state.registry_pid = registry.start(reg.host, st.registry_addr)
                lab.save()
            htpasswd = registry.htpasswd_path(reg.host)
            if not st.registry_password or not os.path.exists(htpasswd):
                st.registry_password = st.registry_password or secrets.token_urlsafe(12)
                registry.write_htpasswd(htpasswd, st.registry_user, st.registry_password)
                lab.save()
            addr = st.auth_registry_addr
            running = procs.alive(reg.state.auth_registry_pid)
            if not (running and registry.answers(reg.host, addr, login=True)):
                reg.state.auth_registry_pid = registry.start(reg.host, addr, htpasswd=htpasswd)
                lab.save()
            if st.external_etcd:
                reg.state.etcd_pids = etcd.start(reg.host, st.etcd(), reg.state.etcd_pids)
                lab.save()
                progress(f"etcd: {', '.join(st.etcd().endpoints())} (the swarm's store)")

        def start_node(node: LabNode) -> None:
            node.start()
            progress(f"{node.state.name}: up at {node.state.addr}")

        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = [pool.submit(start_registry)]
            futures += [pool.submit(start_node, n) for n in lab.nodes()]
            raise_first(futures)

        result = UpResult(st, 0.0)
        with ThreadPoolExecutor(max_workers=2) as pool:
            pushed = pool.submit(_push_images, lab, real_images, progress) if images else None
            if swarm:
                manager_nodes = [lab.node(n) for n in lab.state.node_names("manager")]
                worker_nodes = [lab.node(n) for n in lab.state.node_names("worker")]
                result.errors += make_swarm(manager_nodes, worker_nodes, lab.save, progress)
            if pushed is not None:
                try:
                    result.images = pushed.result()
                    private = [i for i in result.images if i.startswith(st.auth_registry_addr)]
                    public = [i for i in result.images if i not in private]
                    progress(f"registry {st.registry_addr}: {', '.join(public)}")
                    progress(
                        f"registry {st.auth_registry_addr} (login {st.registry_user}, "
                        f"`shoal lab registry --auth`): {', '.join(private)}"
                    )
                except Exception as e:  # noqa: BLE001 - reported, the lab itself is up
                    result.errors.append(f"pushing the lab images failed: {e}")
        lab.save()
        result.seconds = time.monotonic() - t0
        return result


def raise_first(futures: list[Any]) -> None:
    errors = []
    for f in futures:
        try:
            f.result()
        except Exception as e:  # noqa: BLE001
            errors.append(e)
    if errors:
        if len(errors) == 1:
            raise errors[0]
        raise LabError("\n".join(str(e) for e in errors))


def _push_images(lab: Lab, real_images: list[str] | None, progress: Progress) -> list[str]:
    st = lab.state
    engine = lab.node(st.node_names("manager")[0]).engine.host
    refs = registry.push_images(engine, st.registry_addr)
    private = registry.push_private(
        engine, st.registry_addr, st.auth_registry_addr, st.registry_user, st.registry_password
    )
    if real_images is not None:
        refs += publish.push_to_registry(
            engine, st.registry_addr, recipes.select(real_images), progress=progress
        )
    return refs + private


def push_real_images(
    lab_name: str, names: list[str] | None = None, progress: Progress = quiet
) -> list[str]:
    """The Debian-built images (``shoal.lab.debian``; all when names is empty) in the lab's
    registry: built unless cached, imported into the first manager's engine, pushed."""
    selected = recipes.select(names)
    with locked(lab_name, create=False):
        st = load(lab_name)
        if st is None:
            raise LabError(f"no lab {lab_name!r} (`shoal lab up`)")
        lab = Lab(st)
        reg = lab.registry_node()
        if reg is None or not registry.answers(reg.host, st.registry_addr):
            raise LabError(f"lab {lab_name!r}: its registry does not answer (`shoal lab up`)")
        first = lab.node(st.node_names("manager")[0])
        if not ping(first.engine.host):
            raise LabError(f"lab {lab_name!r}: {first.state.name}'s engine is not running")
        return publish.push_to_registry(
            first.engine.host, st.registry_addr, selected, progress=progress
        )


def set_registry_password(lab_name: str, password: str) -> LabState:
    """A new password for the lab's registry that wants a login (from its next request)."""
    with locked(lab_name, create=False):
        st = load(lab_name)
        if st is None:
            raise LabError(f"no lab {lab_name!r}")
        reg = Lab(st).registry_node()
        if reg is None or not reg.host_running:
            raise LabError(f"lab {lab_name!r} has no registry host running (`shoal lab up`)")
        registry.write_htpasswd(registry.htpasswd_path(reg.host), st.registry_user, password)
        st.registry_password = password
        st.save()
        return st


# ---------------------------------------------------------------------- node actions


def node_action(lab_name: str, node_name: str, action: str) -> None:
    """start | stop | kill | partition | heal one node."""
    with locked(lab_name, create=False):
        st = load(lab_name)
        if st is None or node_name not in st.nodes:
            raise LabError(f"no node {node_name!r} in lab {lab_name!r}")
        lab = Lab(st)
        node = lab.node(node_name)
        if action == "start":
            network.ensure_bridge(st)  # gone after a reboot of the machine
            network.ensure_rules(st)
            node.start()
        elif action == "stop":
            node.stop()
        elif action == "kill":
            node.kill()
        elif action in ("partition", "heal"):
            node.state.partitioned = action == "partition"
            lab.save()
            if node.host_running:
                (network.partition if action == "partition" else network.heal)(st, node.state)
        else:
            raise LabError(f"unknown action {action!r}")
