#!/usr/bin/env python3
"""The overlay's cost: two containers on a shoal network on two lab hosts, against the same two
hosts talking directly (host networking), on TCP throughput and HTTP requests per second.

On a ``shoal lab up --no-swarm`` of 1 manager + 1 worker, each host runs the network data
plane (``shoal.testing.netlab``, no control plane) with one network; a container on each host
(busybox, sleeping) on it. The load tools are the host's own programs run in the right
network namespace (``nsenter --net``): the container's for the overlay, the host's for the
direct path — same binaries, same CPU, only the path differs:

* **TCP**: ``iperf3 -s`` on A, ``iperf3 -c -t --seconds`` from B (one stream), bits/s;
* **HTTP**: a small keep-alive HTTP server (Python asyncio, one core) on A,
  ``wrk -t1 -c32 -d --seconds`` from B, requests/s.

Each measurement runs ``--rounds`` times, overlay and direct interleaved; medians and the
ratio overlay/direct are printed (and written with ``--json``). Traffic only flows between
the two lab hosts.

    python bench/overlay.py [--rounds 3] [--seconds 8] [--json out.json] [--keep-lab]

Needs root, iperf3 and wrk (Debian packages), and what ``shoal lab`` needs.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import statistics
import subprocess
import sys
import time

from kit import runs  # puts this repository's src first on sys.path
from kit.docker import clean_env
from kit.runs import log, machine_info, run_record

from shoal.lab.lab import Lab
from shoal.lab.state import load
from shoal.network.names import DNS_ADDR
from shoal.rpc.messages import EndpointRecord, NetworkPlan, NetworkState
from shoal.testing.netlab import NetNode

NET = NetworkPlan(
    id="bench" + "0" * 20, name="bench", vni=4201, subnet="10.41.0.0/24", gateway="10.41.0.1"
)
IP_A, IP_B = "10.41.0.10", "10.41.0.20"
HTTP_PORT, IPERF_PORT = 8080, 5201

HTTP_SERVER = r"""
import asyncio, sys
BODY = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: text/plain\r\n\r\nok\n"
async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            writer.write(BODY * head.count(b"\r\n\r\n"))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()
async def main():
    server = await asyncio.start_server(serve, "0.0.0.0", int(sys.argv[1]), backlog=512)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""


def lab_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shoal.cli.main", "lab", *args],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300, env=clean_env(),
    )  # fmt: skip


class Bench:
    def __init__(self, name: str) -> None:
        self.lab = Lab(load(name))  # type: ignore[arg-type]
        a, b = (self.lab.node(f"{name}-{s}") for s in ("m1", "w1"))
        self.a, self.b = NetNode(a), NetNode(b)
        self.registry = self.lab.state.registry_addr

    def setup(self) -> None:
        state = NetworkState(
            networks=[NET],
            endpoints=[
                EndpointRecord(network_id=NET.id, ip=IP_A, node_addr=self.a.addr, names=["a"]),
                EndpointRecord(network_id=NET.id, ip=IP_B, node_addr=self.b.addr, names=["b"]),
            ],
        )
        image = f"{self.registry}/shoal-lab/busybox:1"
        for node, ip, name in ((self.a, IP_A, "box-a"), (self.b, IP_B, "box-b")):
            node.set_state(state)
            node.start()
            node.ok("pull", image)
            node.create_network(NET)
            node.ok(
                "run", "-d", "--name", name, "--hostname", name, "--network", NET.name,
                "--ip", ip, "--dns", DNS_ADDR, image, "sleep", "1d",
            )  # fmt: skip

    # ---------------------------------------------------------------- namespaces

    def netns(self, path: str, container: str | None, node: NetNode) -> list[str]:
        if container is None:
            return ["nsenter", f"--net=/proc/{node.node.host.holder_pid}/ns/net"]
        return ["nsenter", f"--net=/proc/{node.container_pid(container)}/ns/net"]

    def server_side(self, path: str) -> tuple[list[str], str]:
        """(nsenter prefix on A, the address B uses) for the overlay or the direct path."""
        if path == "overlay":
            return self.netns(path, "box-a", self.a), IP_A
        return self.netns(path, None, self.a), self.a.addr

    def client_side(self, path: str) -> list[str]:
        return self.netns(path, "box-b" if path == "overlay" else None, self.b)

    # ---------------------------------------------------------------- measurements

    def tcp(self, path: str, seconds: float) -> float:
        prefix, addr = self.server_side(path)
        server = subprocess.Popen(
            [*prefix, "iperf3", "-s", "-1", "-p", str(IPERF_PORT)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            time.sleep(0.5)
            out = subprocess.run(
                [*self.client_side(path), "iperf3", "-c", addr, "-p", str(IPERF_PORT),
                 "-t", str(int(seconds)), "-J"],
                capture_output=True, text=True, timeout=seconds + 30,
            )  # fmt: skip
            result = json.loads(out.stdout)
            return float(result["end"]["sum_received"]["bits_per_second"])
        finally:
            server.kill()
            server.wait()

    def http(self, path: str, seconds: float) -> float:
        prefix, addr = self.server_side(path)
        server = subprocess.Popen(
            [*prefix, sys.executable, "-c", HTTP_SERVER, str(HTTP_PORT)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            time.sleep(0.7)
            out = subprocess.run(
                [*self.client_side(path), "wrk", "-t1", "-c32", f"-d{int(seconds)}s",
                 f"http://{addr}:{HTTP_PORT}/"],
                capture_output=True, text=True, timeout=seconds + 30,
            )  # fmt: skip
            m = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
            if not m or "Socket errors" in out.stdout:
                raise RuntimeError(f"wrk: {out.stdout}{out.stderr}")
            return float(m.group(1))
        finally:
            server.kill()
            server.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=int, default=8)
    p.add_argument("--json")
    p.add_argument("--keep-lab", action="store_true")
    args = p.parse_args()
    runs.exit_on_signals()
    record = run_record("overlay", vars(args), machine_info())
    name = "bnet" + secrets.token_hex(3)
    log(f"lab {name}: up")
    up = lab_cli("up", "--name", name, "--managers", "1", "--workers", "1", "--no-swarm")
    if up.returncode != 0:
        sys.exit(f"lab up failed:\n{up.stdout}{up.stderr}")
    samples: dict[str, dict[str, list[float]]] = {
        "tcp": {"overlay": [], "direct": []},
        "http": {"overlay": [], "direct": []},
    }
    try:
        bench = Bench(name)
        bench.setup()
        for r in range(args.rounds):
            for kind in ("tcp", "http"):
                for path in ("overlay", "direct") if r % 2 == 0 else ("direct", "overlay"):
                    value = getattr(bench, kind)(path, args.seconds)
                    samples[kind][path].append(value)
                    log(f"round {r + 1} {kind} {path}: {value:,.0f}")
    finally:
        if not args.keep_lab:
            lab_cli("down", "--name", name)
    report = {}
    for kind, unit in (("tcp", "Gbit/s"), ("http", "requests/s")):
        over = statistics.median(samples[kind]["overlay"])
        direct = statistics.median(samples[kind]["direct"])
        scale = 1e9 if kind == "tcp" else 1.0
        report[kind] = {"overlay": over, "direct": direct, "ratio": over / direct}
        print(
            f"{kind:5} overlay {over / scale:10.2f} {unit:10}  direct {direct / scale:10.2f} "
            f"{unit:10}  ratio {over / direct:.2f}"
        )
    if args.json:
        record.update(samples=samples, report=report)
        with open(args.json, "w") as f:
            json.dump(record, f, indent=1)


if __name__ == "__main__":
    main()
