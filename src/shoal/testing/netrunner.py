"""A node's network data plane without the control plane: a ``DataPlane`` (plugin included)
driven by a state file, for tests and benchmarks on lab hosts.

    python -m shoal.testing.netrunner --state S.json --underlay 10.211.1.11 --state-dir D

runs in a host (its network and mount namespaces: ``Host.spawn``); every time ``S.json``
(``{"generation": N, "state": <NetworkState>}``) changes it applies the state and then writes
``S.json.applied`` (``{"generation": N, "error": null}``). Addresses for containers started
without one come from a local allocator (the lowest free address of the subnet; they are
listed in ``S.json.allocated``). SIGTERM: ``close()`` (the kernel keeps everything);
``--teardown``: remove everything of shoal's and exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import signal
from collections.abc import Mapping

from shoal.network import DataPlane
from shoal.network.names import NETNS_DIR, PLUGIN_SOCKET
from shoal.rpc.messages import NetworkState

POLL = 0.02  # seconds between looks at the state file


def read_state(path: str) -> tuple[int, NetworkState]:
    with open(path) as f:
        data = json.load(f)
    return int(data.get("generation", 0)), NetworkState.model_validate(data.get("state", {}))


def write_state(path: str, generation: int, state: NetworkState) -> None:
    """Atomically: the runner never reads half a file."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump({"generation": generation, "state": state.model_dump(mode="json")}, f)
    os.replace(tmp, path)


class LocalAllocator:
    """Stands in for the manager's IPAM: the lowest address free of the state's endpoints,
    the gateway and what it gave before."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.given: dict[str, list[str]] = {}

    async def allocate(self, network_id: str, hint: Mapping[str, str]) -> str:
        state = self.runner.state
        plan = next(p for p in state.networks if p.id == network_id)
        taken = {plan.gateway, *self.given.get(network_id, [])}
        taken |= {e.ip for e in state.endpoints if e.network_id == network_id}
        for host in ipaddress.IPv4Network(plan.subnet).hosts():
            if str(host) not in taken:
                self.given.setdefault(network_id, []).append(str(host))
                self._save()
                return str(host)
        raise RuntimeError(f"network {plan.name} is full")

    async def release(self, network_id: str, ip: str) -> None:
        with contextlib.suppress(ValueError):
            self.given.get(network_id, []).remove(ip)
        self._save()

    def _save(self) -> None:
        with open(f"{self.runner.state_path}.allocated.tmp", "w") as f:
            json.dump(self.given, f)
        os.replace(f"{self.runner.state_path}.allocated.tmp", f"{self.runner.state_path}.allocated")


class Runner:
    def __init__(self, args: argparse.Namespace) -> None:
        self.state_path: str = args.state
        self.state = NetworkState()
        self.allocator = LocalAllocator(self)
        self.plane = DataPlane(
            args.underlay,
            args.state_dir,
            allocate=self.allocator.allocate,
            release=self.allocator.release,
            plugin_socket=args.socket,
            netns_dir=args.netns_dir,
            resolv_conf=args.resolv_conf,
        )

    async def run(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.plane.start()
        seen: tuple[float, int] | None = None
        try:
            while not stop.is_set():
                with contextlib.suppress(FileNotFoundError):
                    st = os.stat(self.state_path)
                    if (st.st_mtime_ns, st.st_ino) != seen:
                        seen = (st.st_mtime_ns, st.st_ino)
                        await self._apply()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), POLL)
        finally:
            await self.plane.close()

    async def _apply(self) -> None:
        generation, state = read_state(self.state_path)
        error = None
        try:
            await self.plane.apply(state)
            self.state = state
        except Exception as e:  # reported to the test through the .applied file
            logging.exception("apply of generation %d", generation)
            error = str(e)
        tmp = f"{self.state_path}.applied.tmp"
        with open(tmp, "w") as f:
            json.dump({"generation": generation, "error": error}, f)
        os.replace(tmp, f"{self.state_path}.applied")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--state", required=True)
    p.add_argument("--underlay", required=True)
    p.add_argument("--state-dir", required=True)
    p.add_argument("--socket", default=PLUGIN_SOCKET)
    p.add_argument("--netns-dir", default=NETNS_DIR)
    p.add_argument("--resolv-conf", default="/etc/resolv.conf", help="the host's resolvers")
    p.add_argument("--teardown", action="store_true")
    p.add_argument("--log-level", default="info")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    runner = Runner(args)
    if args.teardown:
        asyncio.run(runner.plane.teardown())
        return
    asyncio.run(runner.run())


if __name__ == "__main__":
    main()
