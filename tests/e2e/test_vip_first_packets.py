"""A connection a container opens to a VIP before its NAT is in place (the namespace is
dockerd's before shoal sees it): `vipneigh.settle` lets it through on its next packet.
In a network namespace of the test's own, with the kernel's conntrack and neighbour table."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from shoal.network import netns, vipneigh

pytestmark = pytest.mark.e2e

NS = "shoal-test-vipfirst"
VIP, BACKEND = "10.9.9.77", "10.9.9.5"


def sh(*cmd: str) -> None:
    subprocess.run(["ip", "netns", "exec", NS, *cmd], check=True, capture_output=True)


@pytest.fixture
def ns() -> Iterator[str]:
    subprocess.run(["ip", "netns", "del", NS], capture_output=True)
    subprocess.run(["ip", "netns", "add", NS], check=True)
    try:
        sh("ip", "link", "set", "lo", "up")
        sh("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
        sh("ip", "link", "set", "eth0", "up")
        sh("ip", "link", "set", "peer0", "up")
        sh("ip", "addr", "add", "10.9.9.1/24", "dev", "eth0")
        sh("ip", "addr", "add", f"{BACKEND}/32", "dev", "lo")
        # a NAT rule as dockerd's embedded DNS has in every container: conntrack is on
        sh("nft", "add table ip docker; "
           "add chain ip docker out { type nat hook output priority -100; }; "
           "add rule ip docker out ip daddr 127.0.0.11 dnat to 127.0.0.1")  # fmt: skip
        yield f"/run/netns/{NS}"
    finally:
        subprocess.run(["ip", "netns", "del", NS], capture_output=True)


def test_a_connection_begun_before_the_nat_gets_through(ns: str) -> None:
    server = netns.socket_in(ns, socket.AF_INET, socket.SOCK_STREAM)
    server.bind((BACKEND, 80))
    server.listen(1)
    result: dict[str, object] = {}

    def connect() -> None:
        client = netns.socket_in(ns, socket.AF_INET, socket.SOCK_STREAM)
        client.settimeout(5)
        t0 = time.monotonic()
        try:
            client.connect((VIP, 80))
            result["after"] = time.monotonic() - t0
        except OSError as e:
            result["error"] = e
        finally:
            client.close()

    thread = threading.Thread(target=connect)
    thread.start()
    time.sleep(0.3)  # its SYN is out, un-NATed, waiting on the VIP's neighbour lookup
    sh("nft", "add table ip shoal; "
       "add chain ip shoal out { type nat hook output priority -100; }; "
       f"add rule ip shoal out ip daddr {VIP} dnat to {BACKEND}")  # fmt: skip
    netns.run_in(ns, lambda: vipneigh.settle([VIP], [], flows=True))
    thread.join(10)
    server.close()
    print(f"\nconnected {result.get('after', 0):.2f} s after it began")
    assert "error" not in result, result
    neigh = subprocess.run(
        ["ip", "netns", "exec", NS, "ip", "neigh"], capture_output=True, text=True
    )
    assert f"{VIP} dev eth0 lladdr 02:42:0a:09:09:4d PERMANENT" in neigh.stdout
    netns.run_in(ns, lambda: vipneigh.settle([], [VIP], flows=False))
    neigh = subprocess.run(
        ["ip", "netns", "exec", NS, "ip", "neigh"], capture_output=True, text=True
    )
    assert VIP not in neigh.stdout
