"""One system on one isolated engine (``shoal.testing.dockerd.IsolatedEngine``) with the
test images, and the shoald in front of it (``shoal.testing.shoald.Shoald``: in the
engine's namespaces like a per-host shoald, or in the root one, its etcd on free ports)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import time

from shoal.testing.dockerd import IsolatedEngine
from shoal.testing.images import ensure_test_images
from shoal.testing.shoald import Shoald

from .docker import api_get
from .procs import children
from .runs import log


def new_engine(stack: contextlib.ExitStack, label: str) -> IsolatedEngine:
    """A fresh engine with the test images, stopped when the stack closes."""
    t0 = time.monotonic()
    eng = IsolatedEngine(hostname=f"bench-{label}")
    stack.callback(eng.stop)
    eng.start()
    ensure_test_images(eng.host)
    log(f"  engine {eng.name} up with test images in {time.monotonic() - t0:.2f}s")
    return eng


def engine_pids(engine: IsolatedEngine) -> dict[str, int | None]:
    """The engine's dockerd and its containerd."""
    containerd = next(iter(children(engine.pid or 0, "containerd")), None)
    return {"dockerd": engine.pid, "containerd": containerd}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_shoald(
    stack: contextlib.ExitStack, engine: IsolatedEngine, *, host_ns: bool, log_level: str
) -> Shoald:
    """A shoald for engine (``host_ns``: to run in the root network namespace), its etcd on
    free ports, in a session of its own; stopped (SIGTERM, then its etcd killed) and its
    directory removed when the stack closes. Not started yet."""
    shoald = Shoald(
        engine, log_level=log_level, etcd_ports=(free_port(), free_port()),
        in_engine_ns=not host_ns, new_session=True,
    )  # fmt: skip
    stack.callback(shutil.rmtree, shoald.dir, True)
    stack.callback(shoald.stop)
    return shoald


def wait_node_ready(api_host: str, timeout: float = 60.0) -> float:
    """Seconds until every node of a one-node swarm is ready and active."""
    t0 = time.monotonic()
    while True:
        with contextlib.suppress(Exception):
            nodes = api_get(api_host, "/nodes", timeout=30.0)
            if nodes and all(
                n.get("Status", {}).get("State") == "ready"
                and n.get("Spec", {}).get("Availability") == "active"
                for n in nodes
            ):
                return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"swarm node not ready after {timeout}s")
        time.sleep(0.1)
