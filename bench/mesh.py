#!/usr/bin/env python3
"""Service VIPs and the routing mesh, what they cost: HTTP through a service's VIP and through
a published port of the mesh, against a container talking to one backend directly and against
HAProxy in front of the backends' hosts; and what a rule update costs with 1,000 services.

Docker's own VIPs and routing mesh are IPVS, which this machine's kernel lacks (``ip_vs``
cannot be loaded): Docker's mesh cannot run here, so shoal's is compared with the direct path
and with HAProxy — the external load balancer users put in front of Docker's nodes.

On a ``shoal lab up --no-swarm`` of 1 manager + 4 workers, each host runs the network data
plane (``shoal.testing.netlab``, no control plane) from a state written here:

* hosts: ``client`` (m1: a busybox container ``client``, wrk and HAProxy), ``entry`` (w1: no
  container at all, the mesh's way in), ``a``, ``b``, ``c`` (w2–w4: one backend each);
* network ``app`` (10.51.0.0/16): ``web1``–``web3`` at .0.11–.0.13, ``client`` at .0.20;
  ``ingress`` (10.60.0.0/16): ``web1``–``web3``, the hosts at .0.2–.0.6;
* service ``web``: VIP 10.51.0.2 (backends web1–3); published ports 8080 → 80 (the mesh) and
  8081 → 80 ``local`` (host mode: only the receiving host's task, no masquerade).

Each backend is a busybox container sleeping, with a small keep-alive HTTP server (Python
asyncio, one core; ``Connection: close`` honoured) run in its network namespace. The load is
``wrk -t1 -c32 -d --seconds`` run with ``nsenter --net`` in the client's namespace:

* ``direct``: the client container → web1's address (one backend, the overlay: the baseline);
* ``vip``: the client container → the VIP (DNAT in the client's namespace, 3 backends);
* ``mesh``: the client host → entry:8080 (DNAT + masquerade on entry, through the ingress
  network to 3 backends on 3 other hosts);
* ``local``: the client host → a:8081 (a host-mode published port, one backend);
* ``haproxy``: the client host → HAProxy on its loopback (``mode tcp``, roundrobin, one
  thread) → a, b, c :8081 — what users put in front of Docker's hosts.

Then ``Connection: close`` (one request per connection: the NAT's per-connection cost) for
direct, vip, mesh and haproxy. Every path runs once per round, the order rotating; medians
over ``--rounds`` and the ratios against direct (and mesh/haproxy) are printed.

Rule updates, first (while conntrack is nearly empty): ``--updates`` states each moving one
backend of ``web`` (median); then the state with 1,000 more services (each a VIP on app with 2
backends and a published port 20000+i with the same 2 on ingress) written to every host, its
first apply timed per host; the same state again; ``--updates`` states each moving one backend
of one of them; their removal. After the traffic, one service more (a VIP: the data plane
looks through the sandboxes' conntrack entries, which the load left there). The nftables
commands of each apply are counted from the data plane's log (shoal's loggers at debug).

    python bench/mesh.py [--rounds 3] [--seconds 5] [--json out.json] [--keep-lab]

Needs root, wrk and haproxy (Debian packages), and what ``shoal lab`` needs. Traffic only
flows between the lab's hosts and namespaces.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from kit import runs  # puts this repository's src first on sys.path
from kit.docker import clean_env
from kit.report import print_table
from kit.runs import log, machine_info, run_record

from shoal.lab.lab import Lab
from shoal.lab.state import load
from shoal.network import netns
from shoal.network.names import DNS_ADDR
from shoal.rpc.messages import (
    Backend,
    Balancer,
    EndpointRecord,
    IngressPort,
    NetworkPlan,
    NetworkState,
)
from shoal.testing.netlab import NetError, NetNode

APP = NetworkPlan(
    id="app" + "0" * 22, name="app", vni=4311, subnet="10.51.0.0/16", gateway="10.51.0.1",
    attachable=True,
)  # fmt: skip
INGRESS = NetworkPlan(
    id="ingress" + "0" * 18, name="ingress", vni=4310, subnet="10.60.0.0/16",
    gateway="10.60.0.1", ingress=True,
)  # fmt: skip
PLANS = [APP, INGRESS]
WEB = "web" + "0" * 22
VIP, INGRESS_VIP = "10.51.0.2", "10.60.0.250"
MESH, LOCAL, HAPROXY_PORT, HTTP = 8080, 8081, 9000, 80
MANY_PORTS = 20000  # the 1,000 services' published ports: 20000 …
HOSTS = {"client": "m1", "entry": "w1", "a": "w2", "b": "w3", "c": "w4"}
HOST_INGRESS = {k: f"10.60.0.{2 + i}" for i, k in enumerate(HOSTS)}


@dataclass
class Box:
    name: str
    host: str
    app_ip: str
    ingress_ip: str = ""


BOXES = [
    Box("web1", "a", "10.51.0.11", "10.60.0.11"),
    Box("web2", "b", "10.51.0.12", "10.60.0.12"),
    Box("web3", "c", "10.51.0.13", "10.60.0.13"),
    Box("client", "client", "10.51.0.20"),
]
BOX = {b.name: b for b in BOXES}
WEBS = ["web1", "web2", "web3"]

KEEPALIVE = ["direct", "vip", "mesh", "local", "haproxy"]
CLOSE = ["direct", "vip", "mesh", "haproxy"]

HTTP_SERVER = r"""
import asyncio, sys
NAME = sys.argv[2].encode()
def answer(close):
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
    head += b"Content-Length: %d\r\n" % (len(NAME) + 1)
    return head + (b"Connection: close\r\n" if close else b"") + b"\r\n" + NAME + b"\n"
KEEP, CLOSE = answer(False), answer(True)
async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if b"connection: close" in head.lower():
                writer.write(CLOSE)
                await writer.drain()
                break
            writer.write(KEEP)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()
async def main():
    server = await asyncio.start_server(serve, "0.0.0.0", int(sys.argv[1]), backlog=1024)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""

HAPROXY_CFG = """\
global
    nbthread 1
    maxconn 4096
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend web
    bind 127.0.0.1:{port}
    default_backend webs
backend webs
    balance roundrobin
{servers}
"""

NFT_LINE = re.compile(r"nftables: (\d+) command\(s\) in (\S+(?: host)?)")


def lab_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shoal.cli.main", "lab", *args],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600, env=clean_env(),
    )  # fmt: skip


RUNNER = """
import logging, sys
for name in ("pyroute2", "asyncio"):  # their debug output would cost more than the work
    logging.getLogger(name).setLevel(logging.INFO)
from shoal.testing.netrunner import main
main(sys.argv[1:])
"""


class DebugNetNode(NetNode):
    """The data plane at log level debug (shoal's loggers only): it logs the nftables
    commands of each transaction."""

    def argv(self, *extra: str) -> list[str]:
        argv = super().argv("--log-level", "debug", *extra)
        assert argv[1:3] == ["-m", "shoal.testing.netrunner"], argv
        return [argv[0], "-c", RUNNER, *argv[3:]]


def many_services(n: int) -> list[tuple[str, str, str, list[str]]]:
    """n services: (id, VIP on app, VIP on ingress, their 2 backends)."""
    out = []
    for i in range(n):
        third, last = 10 + i // 200, 1 + i % 200
        backends = [WEBS[i % 3], WEBS[(i + 1) % 3]]
        out.append((f"svc{i:05d}".ljust(25, "0"), f"10.51.{third}.{last}",
                    f"10.60.{third}.{last}", backends))  # fmt: skip
    return out


class Bench:
    def __init__(self, name: str) -> None:
        self.lab = Lab(load(name))  # type: ignore[arg-type]
        self.registry = self.lab.state.registry_addr
        self.nodes = {k: DebugNetNode(self.lab.node(f"{name}-{s}")) for k, s in HOSTS.items()}
        self.web = list(WEBS)  # web's backends
        self.many: list[tuple[str, str, str, list[str]]] = []
        self.servers: list[subprocess.Popen[str]] = []
        self.haproxy: subprocess.Popen[str] | None = None
        self.tmp = tempfile.mkdtemp(prefix="shoal-mesh-bench-")

    # ---------------------------------------------------------------- the state

    def addr(self, host: str) -> str:
        return self.nodes[host].addr

    def backend(self, box: str, plan: NetworkPlan) -> Backend:
        b = BOX[box]
        ip = b.app_ip if plan is APP else b.ingress_ip
        return Backend(task_id=f"task-{box}", ip=ip, node_addr=self.addr(b.host))

    def state(self, host: str) -> NetworkState:
        endpoints = []
        for box in BOXES:
            names = [box.name, "tasks.web"] if box.name in WEBS else [box.name]
            endpoints.append(EndpointRecord(
                network_id=APP.id, ip=box.app_ip, node_addr=self.addr(box.host), names=names,
                task_id=f"task-{box.name}"))  # fmt: skip
            if box.ingress_ip:
                endpoints.append(EndpointRecord(
                    network_id=INGRESS.id, ip=box.ingress_ip, node_addr=self.addr(box.host),
                    task_id=f"task-{box.name}"))  # fmt: skip
        endpoints += [
            EndpointRecord(network_id=INGRESS.id, ip=ip, node_addr=self.addr(k))
            for k, ip in HOST_INGRESS.items()
        ]
        balancers = [
            Balancer(service_id=WEB, network_id=APP.id, vip=VIP, names=["web"],
                     backends=[self.backend(b, APP) for b in self.web]),
            Balancer(service_id=WEB, network_id=INGRESS.id, vip=INGRESS_VIP,
                     ports=[IngressPort(published=MESH, target=HTTP),
                            IngressPort(published=LOCAL, target=HTTP, local=True)],
                     backends=[self.backend(b, INGRESS) for b in self.web]),
        ]  # fmt: skip
        for i, (sid, vip, ivip, backends) in enumerate(self.many):
            balancers += [
                Balancer(service_id=sid, network_id=APP.id, vip=vip, names=[f"s{i}"],
                         backends=[self.backend(b, APP) for b in backends]),
                Balancer(service_id=sid, network_id=INGRESS.id, vip=ivip,
                         ports=[IngressPort(published=MANY_PORTS + i, target=HTTP)],
                         backends=[self.backend(b, INGRESS) for b in backends]),
            ]  # fmt: skip
        return NetworkState(
            networks=PLANS, endpoints=endpoints, balancers=balancers,
            ingress_address=f"{HOST_INGRESS[host]}/16",
        )  # fmt: skip

    def publish(self, timeout: float = 120.0) -> dict[str, Any]:
        """The state to every host at once; per host the seconds until it reported it applied
        and the nftables commands it ran meanwhile."""
        offsets = {k: _size(n.log) for k, n in self.nodes.items()}
        states = {k: self.state(k) for k in self.nodes}  # built before the clock starts
        t0 = time.monotonic()
        gens = {k: n.set_state(states[k]) for k, n in self.nodes.items()}
        done: dict[str, float] = {}
        while len(done) < len(self.nodes):
            for k, n in self.nodes.items():
                if k in done:
                    continue
                try:
                    with open(f"{n.state_path}.applied") as f:
                        applied = json.load(f)
                except (FileNotFoundError, ValueError):
                    continue
                if applied["generation"] >= gens[k]:
                    done[k] = time.monotonic() - t0
                    if applied.get("error"):
                        raise NetError(f"{k}: apply failed: {applied['error']}\n{n.log_tail()}")
            if time.monotonic() - t0 > timeout:
                raise NetError(f"not applied within {timeout}s: {set(self.nodes) - set(done)}")
            time.sleep(0.002)
        out: dict[str, Any] = {"seconds": done, "max_s": max(done.values())}
        out["nft_commands"] = {k: _nft_commands(n.log, offsets[k]) for k, n in self.nodes.items()}
        return out

    # ---------------------------------------------------------------- the world

    def image(self, kind: str) -> str:
        return f"{self.registry}/shoal-lab/{kind}:1"

    def setup(self) -> None:
        for key, node in self.nodes.items():
            node.set_state(self.state(key))
            node.start()
            node.ok("pull", self.image("busybox"))
            for plan in PLANS:
                node.create_network(plan)
        for box in BOXES:
            node = self.nodes[box.host]
            node.ok("create", "--name", box.name, "--hostname", box.name, "--network", APP.name,
                    "--ip", box.app_ip, "--dns", DNS_ADDR, self.image("busybox"),
                    "sleep", "1d")  # fmt: skip
            if box.ingress_ip:
                node.ok("network", "connect", "--ip", box.ingress_ip, INGRESS.name, box.name)
            node.ok("start", box.name)
            if box.name in WEBS:
                argv = [sys.executable, "-c", HTTP_SERVER, str(HTTP), box.name]
                quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
                self.servers.append(node.in_container_netns(box.name, argv, **quiet))
        self.publish()  # the local port's gateway addresses, now the containers run
        self.start_haproxy()
        time.sleep(0.5)

    def start_haproxy(self) -> None:
        servers = "\n".join(f"    server {k} {self.addr(k)}:{LOCAL}" for k in ("a", "b", "c"))
        cfg = os.path.join(self.tmp, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(HAPROXY_CFG.format(port=HAPROXY_PORT, servers=servers))
        self.haproxy = subprocess.Popen(
            [*self.host_ns("client"), "haproxy", "-db", "-f", cfg],
            stdout=open(os.path.join(self.tmp, "haproxy.log"), "w"), stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip

    def stop(self) -> None:
        for proc in [*self.servers, *([self.haproxy] if self.haproxy else [])]:
            with contextlib.suppress(OSError):
                proc.kill()
                proc.wait(10)

    # ---------------------------------------------------------------- namespaces

    def host_ns_path(self, host: str) -> str:
        return f"/proc/{self.nodes[host].node.host.holder_pid}/ns/net"

    def host_ns(self, host: str) -> list[str]:
        return ["nsenter", f"--net={self.host_ns_path(host)}"]

    def client_ns_path(self) -> str:
        return f"/proc/{self.nodes['client'].container_pid('client')}/ns/net"

    def target(self, path: str) -> tuple[str, str, int]:
        """(the client's namespace, address, port) of a path."""
        if path == "direct":
            return self.client_ns_path(), BOX["web1"].app_ip, HTTP
        if path == "vip":
            return self.client_ns_path(), VIP, HTTP
        if path == "mesh":
            return self.host_ns_path("client"), self.addr("entry"), MESH
        if path == "local":
            return self.host_ns_path("client"), self.addr("a"), LOCAL
        if path == "haproxy":
            return self.host_ns_path("client"), "127.0.0.1", HAPROXY_PORT
        raise ValueError(path)

    def get(self, path: str) -> str:
        """One request on a new connection along path; the backend's name."""
        ns, addr, port = self.target(path)
        s = netns.socket_in(ns, socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.settimeout(5)
            s.connect((addr, port))
            s.sendall(b"GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        finally:
            s.close()
        head, _, body = data.decode(errors="replace").partition("\r\n\r\n")
        if " 200 " not in head.splitlines()[0]:
            raise RuntimeError(f"{path}: {head!r}")
        return body.strip()

    def check(self, n: int = 30) -> dict[str, dict[str, int]]:
        """Every path answers, the balanced ones from every backend."""
        seen = {path: dict(Counter(self.get(path) for _ in range(n))) for path in KEEPALIVE}
        want = {"direct": {"web1"}, "local": {"web1"}}
        for path, counts in seen.items():
            if set(counts) != want.get(path, set(WEBS)):
                raise RuntimeError(f"{path}: answers from {counts}")
        return seen

    def conntrack_counts(self) -> dict[str, int]:
        """Conntrack entries in the client host's and the containers' namespaces."""
        where = {
            "client host": self.host_ns_path("client"),
            "entry host": self.host_ns_path("entry"),
        }
        for box in BOXES:
            where[box.name] = f"/proc/{self.nodes[box.host].container_pid(box.name)}/ns/net"
        out = {}
        for name, ns in where.items():
            proc = subprocess.run(
                ["nsenter", f"--net={ns}", "cat", "/proc/sys/net/netfilter/nf_conntrack_count"],
                capture_output=True, text=True, timeout=10,
            )  # fmt: skip
            out[name] = int(proc.stdout.strip() or -1)
        return out

    # ---------------------------------------------------------------- wrk

    def wrk(self, path: str, seconds: int, close: bool) -> dict[str, Any]:
        ns, addr, port = self.target(path)
        argv = ["nsenter", f"--net={ns}", "wrk", "-t1", "-c32", f"-d{seconds}s"]
        if close:
            argv += ["-H", "Connection: close"]
        out = subprocess.run(
            [*argv, f"http://{addr}:{port}/"], capture_output=True, text=True, timeout=seconds + 60
        )
        return parse_wrk(out.stdout + out.stderr)


def parse_wrk(text: str) -> dict[str, Any]:
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not m:
        raise RuntimeError(f"wrk: {text}")
    res: dict[str, Any] = {"rps": float(m.group(1))}
    lat = re.search(r"Latency\s+([\d.]+)(us|ms|s)", text)
    if lat:
        res["latency_ms"] = float(lat.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[lat.group(2)]
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    if errors:
        res["errors"] = dict(zip(("connect", "read", "write", "timeout"),
                                 map(int, errors.groups()), strict=True))  # fmt: skip
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if non2xx:
        res["non_2xx"] = int(non2xx.group(1))
    return res


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def _nft_commands(log_path: str, offset: int) -> dict[str, int]:
    """The nftables commands the data plane logged since offset: total, transactions, and
    the host's share."""
    with open(log_path, errors="replace") as f:
        f.seek(offset)
        text = f.read()
    total = transactions = host = 0
    for m in NFT_LINE.finditer(text):
        n = int(m.group(1))
        total += n
        transactions += 1
        if m.group(2).startswith("the"):
            host += n
    return {"commands": total, "transactions": transactions, "host_commands": host}


def log_findings(bench: Bench) -> dict[str, list[str]]:
    """Errors, warnings and tracebacks in each host's data plane log."""
    out = {}
    for k, n in bench.nodes.items():
        try:
            with open(n.log, errors="replace") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            continue
        bad = [ln for ln in lines
               if re.search(r" (ERROR|WARNING|CRITICAL) |Traceback", ln)]  # fmt: skip
        if bad:
            out[k] = bad[:20] + ([f"… {len(bad) - 20} more"] if len(bad) > 20 else [])
    return out


# -------------------------------------------------------------------- the phases


def traffic(bench: Bench, rounds: int, seconds: int) -> dict[str, dict[str, list[dict[str, Any]]]]:
    samples: dict[str, dict[str, list[dict[str, Any]]]] = {
        "keepalive": {p: [] for p in KEEPALIVE},
        "close": {p: [] for p in CLOSE},
    }
    for path in KEEPALIVE:  # warm-up, not counted
        bench.wrk(path, 1, False)
    for r in range(rounds):
        for mode, paths in (("keepalive", KEEPALIVE), ("close", CLOSE)):
            order = paths[r % len(paths) :] + paths[: r % len(paths)]
            for path in order:
                res = bench.wrk(path, seconds, mode == "close")
                samples[mode][path].append(res)
                errs = sum(res.get("errors", {}).values())
                log(f"round {r + 1} {mode} {path}: {res['rps']:,.0f} req/s"
                    + (f", {errs} socket errors" if errs else ""))  # fmt: skip
    return samples


def updates(bench: Bench, n: int) -> dict[str, Any]:
    """n states, each moving one backend of one service; per state the max over the hosts
    (and per host) of the seconds to applied, and the nftables commands."""
    out: list[dict[str, Any]] = []
    for i in range(n):
        if bench.many:
            j = (i * 37) % len(bench.many)
            sid, vip, ivip, backends = bench.many[j]
            spare = next(w for w in WEBS if w not in backends)
            bench.many[j] = (sid, vip, ivip, [backends[0], spare])
        else:
            bench.web = [w for w in WEBS if w != WEBS[i % 3]]
        out.append(bench.publish())
        time.sleep(0.2)
    if not bench.many:
        bench.web = list(WEBS)
        bench.publish()
    return {
        "median_max_s": statistics.median(u["max_s"] for u in out),
        "median_by_host_s": {
            k: statistics.median(u["seconds"][k] for u in out) for k in bench.nodes
        },
        "nft_commands": out[0]["nft_commands"],
        "each": out,
    }


def rule_updates(bench: Bench, services: int, n: int) -> dict[str, Any]:
    """Before any load (few conntrack entries): updates with web alone, the first apply of
    the many services, the same state again, updates among them, their removal."""
    res: dict[str, Any] = {"services": services}
    log(f"updates with web alone ({n})")
    res["small"] = updates(bench, n)
    res["conntrack_entries_before"] = bench.conntrack_counts()
    log(f"first apply of {services} more services (conntrack entries: "
        f"{res['conntrack_entries_before']})")  # fmt: skip
    bench.many = many_services(services)
    res["first_apply"] = bench.publish(timeout=900)
    log(f"  {res['first_apply']['max_s']:.2f}s (slowest host)")
    res["same_state"] = bench.publish()  # what an unchanged state costs
    log(f"updates with {services + 1} services ({n})")
    res["big"] = updates(bench, n)
    res["spot_check"] = spot_check(bench, services)
    log(f"with {services} services: {res['spot_check']}")
    bench.many = []
    res["removal"] = bench.publish(timeout=900)
    log(f"  removed in {res['removal']['max_s']:.2f}s (slowest host)")
    return res


def new_service_after_load(bench: Bench) -> dict[str, Any]:
    """One service more (a VIP and a port), now that the load left conntrack entries."""
    res: dict[str, Any] = {"conntrack_entries": bench.conntrack_counts()}
    bench.many = many_services(1)
    res["apply"] = bench.publish(timeout=900)
    log(f"one new service with {res['conntrack_entries']} conntrack entries: "
        f"{res['apply']['max_s']:.2f}s (slowest host)")  # fmt: skip
    bench.many = []
    bench.publish(timeout=900)
    return res


def spot_check(bench: Bench, services: int) -> dict[str, Any]:
    """With the 1,000 services on: one of them through its VIP and its published port."""
    sid, vip, _, backends = bench.many[-1]
    ns = bench.client_ns_path()
    seen = []
    for target in [(ns, vip, HTTP), (bench.host_ns_path("client"), bench.addr("entry"),
                                     MANY_PORTS + services - 1)]:  # fmt: skip
        s = netns.socket_in(target[0], socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.settimeout(5)
            s.connect(target[1:])
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            seen.append(data.decode(errors="replace").rpartition("\r\n\r\n")[2].strip())
        finally:
            s.close()
    return {"answers": seen, "backends": bench.many[-1][3], "ok": set(seen) <= set(backends)}


# -------------------------------------------------------------------- the report


def med(samples: list[dict[str, Any]], key: str = "rps") -> float | None:
    vals = [s[key] for s in samples if key in s]
    return statistics.median(vals) if vals else None


def report(samples: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    rows = [["requests/s (wrk -t1 -c32)", "median", "min–max", "latency", "× direct",
             "errors"]]  # fmt: skip
    for mode, title in (("keepalive", "keep-alive"), ("close", "Connection: close")):
        direct = med(samples[mode]["direct"])
        out[mode] = {}
        for path, each in samples[mode].items():
            m = med(each)
            rps = [s["rps"] for s in each]
            errs = sum(sum(s.get("errors", {}).values()) + s.get("non_2xx", 0) for s in each)
            ratio = m / direct if m and direct else None
            out[mode][path] = {"rps": m, "latency_ms": med(each, "latency_ms"),
                               "ratio_direct": ratio, "errors": errs}  # fmt: skip
            rows.append([
                f"{title}: {path}", f"{m:,.0f}", f"{min(rps):,.0f}–{max(rps):,.0f}",
                f"{out[mode][path]['latency_ms'] or 0:.2f}ms",
                f"{ratio:.2f}" if ratio else "—", str(errs),
            ])  # fmt: skip
        mesh, hap = out[mode].get("mesh", {}).get("rps"), out[mode].get("haproxy", {}).get("rps")
        out[mode]["mesh_vs_haproxy"] = mesh / hap if mesh and hap else None
        local = out[mode].get("local", {}).get("rps")
        if local and mesh:
            out[mode]["mesh_vs_local"] = mesh / local
    print_table(rows)
    for mode in ("keepalive", "close"):
        extra = (
            f", mesh / local {out[mode]['mesh_vs_local']:.2f}"
            if "mesh_vs_local" in out[mode]
            else ""
        )
        print(f"{mode}: mesh / haproxy {out[mode]['mesh_vs_haproxy']:.2f}{extra}")
    return out


def print_updates(res: dict[str, Any]) -> None:
    n = res["services"]
    first = res["first_apply"]
    rows = [["rule updates (set_state → applied)", "slowest host", *HOSTS, "nft cmds (host)"]]

    def row(label: str, max_s: float, by_host: dict[str, float], nft: dict[str, Any]) -> None:
        total = sum(v["commands"] for v in nft.values())
        host = sum(v["host_commands"] for v in nft.values())
        each = [f"{by_host[k] * 1e3:,.0f}ms" for k in HOSTS]
        rows.append([label, f"{max_s * 1e3:,.0f}ms", *each, f"{total} ({host})"])

    row(f"first apply, +{n} services", first["max_s"], first["seconds"], first["nft_commands"])
    same = res["same_state"]
    row("same state again", same["max_s"], same["seconds"], same["nft_commands"])
    gone = res["removal"]
    row(f"the {n} services removed", gone["max_s"], gone["seconds"], gone["nft_commands"])
    for key, label in (("small", "1 backend moved, 1 service"),
                       ("big", f"1 backend moved, {n + 1} services")):  # fmt: skip
        u = res[key]
        row(f"{label} (median)", u["median_max_s"], u["median_by_host_s"], u["nft_commands"])
    if "after_load" in res:
        a = res["after_load"]["apply"]
        row("1 service added, after the load", a["max_s"], a["seconds"], a["nft_commands"])
    print_table(rows)
    if "after_load" in res:
        print(
            f"conntrack entries before the first apply: {res['conntrack_entries_before']}; "
            f"after the load: {res['after_load']['conntrack_entries']}"
        )
    print("nft cmds: nftables commands over all 5 hosts for one apply (those in the hosts' "
          "own tables); the rest are in the containers' namespaces\n")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--services", type=int, default=1000)
    p.add_argument("--updates", type=int, default=7, help="rule updates timed (median)")
    p.add_argument("--json")
    p.add_argument("--keep-lab", action="store_true")
    args = p.parse_args()
    for tool in ("wrk", "haproxy", "nsenter"):
        if not any(os.access(os.path.join(d, tool), os.X_OK)
                   for d in os.environ.get("PATH", "").split(":") + ["/usr/sbin"]):  # fmt: skip
            sys.exit(f"{tool} is needed (apt-get install {tool})")
    runs.exit_on_signals()
    record = run_record("mesh", vars(args), machine_info())
    name = "bmesh" + secrets.token_hex(3)
    log(f"lab {name}: up (1 manager + 4 workers, no swarm)")
    bench = None
    failed = None
    try:
        up = lab_cli("up", "--name", name, "--managers", "1", "--workers", "4", "--no-swarm")
        if up.returncode != 0:
            sys.exit(f"lab up failed:\n{up.stdout}{up.stderr}")
        bench = Bench(name)
        bench.setup()
        record["check"] = bench.check()
        log(f"every path answers: {record['check']}")
        record["updates"] = rule_updates(bench, args.services, args.updates)
        record["samples"] = traffic(bench, args.rounds, args.seconds)
        record["updates"]["after_load"] = new_service_after_load(bench)
    except Exception as e:
        failed = f"{type(e).__name__}: {e}"
        log(f"failed: {failed}")
        record["error"] = failed
    finally:
        if bench is not None:
            record["data_plane_log"] = log_findings(bench)
            bench.stop()
        if not args.keep_lab:
            log(f"lab {name}: down")
            down = lab_cli("down", "--name", name)
            if down.returncode != 0:
                log(f"lab down failed: {down.stdout}{down.stderr}")
    if "samples" in record:
        record["report"] = report(record["samples"])
        print(f"medians over {args.rounds} rounds of {args.seconds}s; × direct: requests/s "
              "against the client container → one backend\n")  # fmt: skip
    if "updates" in record:
        print_updates(record["updates"])
    if record.get("data_plane_log"):
        print("data plane log: errors and warnings")
        for k, lines in record["data_plane_log"].items():
            for ln in lines:
                print(f"  {k}: {ln}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(record, f, indent=1, default=str)
    if failed:
        sys.exit(f"failed: {failed}")


if __name__ == "__main__":
    main()
