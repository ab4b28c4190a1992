"""Network data planes on ``shoal lab`` hosts, without the control plane: each ``NetNode``
runs ``shoal.testing.netrunner`` in one lab host (a child of the host's init, so it can be
killed and started again like shoald) and is told its ``NetworkState`` through a file.

Used by ``tests/e2e/test_dataplane.py`` and ``bench/overlay.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from shoal.lab import procs
from shoal.lab.api import api_json
from shoal.lab.node import LabNode
from shoal.network import engine_network_body
from shoal.network.names import netns_name
from shoal.rpc.messages import NetworkPlan, NetworkState
from shoal.testing.netrunner import write_state

SRC = str(Path(__file__).resolve().parents[2])


class NetError(AssertionError):
    pass


class NetNode:
    def __init__(self, node: LabNode, resolv_conf: str | None = None) -> None:
        self.node = node
        self.name = node.state.name
        self.addr = node.state.addr
        self.dir = os.path.join(node.dir, "netplane")
        self.state_path = os.path.join(self.dir, "state.json")
        self.log = os.path.join(self.dir, "runner.log")
        self.resolv_conf = resolv_conf
        self.generation = 0
        self.pid: int | None = None
        os.makedirs(self.dir, exist_ok=True)

    # ---------------------------------------------------------------- the runner

    def argv(self, *extra: str) -> list[str]:
        argv = [
            sys.executable, "-m", "shoal.testing.netrunner",
            "--state", self.state_path, "--underlay", self.addr, "--state-dir", self.dir,
        ]  # fmt: skip
        if self.resolv_conf:
            argv += ["--resolv-conf", self.resolv_conf]
        return argv + list(extra)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, env.get("PYTHONPATH")) if p)
        return env

    def start(self, timeout: float = 20.0) -> None:
        """Start the runner and wait until it applied the current state."""
        if not os.path.exists(self.state_path):
            self.set_state(NetworkState())
        applied = f"{self.state_path}.applied"
        if os.path.exists(applied):
            os.unlink(applied)
        self.pid = self.node.host.spawn(self.argv(), self.log, self.env())
        self.wait_applied(self.generation, timeout)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.pid is not None and procs.alive(self.pid):
            procs.kill(self.pid, sig)
            if not procs.wait_dead([self.pid], 15.0):
                raise NetError(f"{self.name}: the data plane runner survives signal {sig}")
        self.pid = None

    def teardown(self) -> subprocess.CompletedProcess[str]:
        """Stop the runner, then remove everything of shoal's from the host."""
        self.kill(signal.SIGTERM)
        return self.node.host.run(self.argv("--teardown"), env=self.env(), timeout=60)

    def set_state(self, state: NetworkState) -> int:
        self.generation += 1
        write_state(self.state_path, self.generation, state)
        return self.generation

    def wait_applied(self, generation: int | None = None, timeout: float = 10.0) -> float:
        """Seconds until the runner reported the generation applied (raises on its error)."""
        generation = self.generation if generation is None else generation
        t0 = time.monotonic()
        applied = f"{self.state_path}.applied"
        while True:
            try:
                with open(applied) as f:
                    done = json.load(f)
            except (FileNotFoundError, ValueError):
                done = {"generation": -1}
            if done["generation"] >= generation:
                if done.get("error"):
                    raise NetError(f"{self.name}: apply failed: {done['error']}\n{self.log_tail()}")
                return time.monotonic() - t0
            if self.pid is not None and not procs.alive(self.pid):
                raise NetError(f"{self.name}: the data plane runner died\n{self.log_tail()}")
            if time.monotonic() - t0 > timeout:
                raise NetError(
                    f"{self.name}: generation {generation} not applied\n{self.log_tail()}"
                )
            time.sleep(0.01)

    def allocated(self) -> dict[str, list[str]]:
        try:
            with open(f"{self.state_path}.allocated") as f:
                data: dict[str, list[str]] = json.load(f)
                return data
        except FileNotFoundError:
            return {}

    def log_tail(self, size: int = 4000) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-size:]
        except FileNotFoundError:
            return ""

    # ---------------------------------------------------------------- the host

    def sh(self, cmd: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return self.node.host.run(["sh", "-c", cmd], timeout=timeout)

    def in_network(self, network_id: str, cmd: str) -> subprocess.CompletedProcess[str]:
        """A command in the network's namespace on this host (``ip netns exec``)."""
        return self.sh(f"ip netns exec {netns_name(network_id)} {cmd}")

    def fdb(self, network_id: str) -> dict[str, str]:
        """The VXLAN device's forwarding entries: MAC → remote node."""
        out = self.in_network(network_id, "bridge fdb show dev vxlan0").stdout
        entries = {}
        for line in out.splitlines():
            parts = line.split()
            if "dst" in parts:
                entries[parts[0]] = parts[parts.index("dst") + 1]
        return entries

    # ---------------------------------------------------------------- the engine

    def docker(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env["DOCKER_HOST"] = self.node.engine.host
        return subprocess.run(
            ["docker", *args], env=env, capture_output=True, text=True, timeout=timeout
        )

    def ok(self, *args: str, timeout: float = 120.0) -> str:
        proc = self.docker(*args, timeout=timeout)
        if proc.returncode != 0:
            raise NetError(
                f"{self.name}: docker {' '.join(args)}: rc={proc.returncode}\n{proc.stdout}"
                f"{proc.stderr}\n--- data plane log ---\n{self.log_tail()}"
            )
        return proc.stdout

    def create_network(self, plan: NetworkPlan) -> str:
        """The engine network of a swarm network, as the agent makes it; its engine ID."""
        status, body = api_json(
            self.node.engine.host, "POST", "/networks/create", engine_network_body(plan)
        )
        if status != 201:
            raise NetError(f"{self.name}: network create {plan.name}: {status} {body}")
        return str(body["Id"])

    def container_pid(self, name: str) -> int:
        return int(self.ok("inspect", "-f", "{{.State.Pid}}", name).strip())

    def in_container_netns(self, name: str, argv: list[str], **kw: Any) -> subprocess.Popen[str]:
        """A host program (iperf3, wrk …) in a container's network namespace."""
        pid = self.container_pid(name)
        return subprocess.Popen(["nsenter", f"--net=/proc/{pid}/ns/net", *argv], text=True, **kw)
