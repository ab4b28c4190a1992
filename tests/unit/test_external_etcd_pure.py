"""An external etcd cluster: the flags shoald takes, how a client moves between endpoints,
and what Docker's leave refusal says when the managers are not the store's quorum."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest

from shoal.api.models import ManagerStatus, Node, NodeSpec
from shoal.cli.shoald import etcd_settings, parse_args
from shoal.manager.controlapi.swarm import leave_refusal
from shoal.store.etcd import FAILOVER_AFTER, Etcd, endpoint_address

START = "You are attempting to leave the swarm on a node that is participating as a manager. "


@pytest.mark.parametrize(
    ("url", "address"),
    [("https://10.0.0.1:2379", "10.0.0.1:2379"), ("http://etcd-a:2379/", "etcd-a:2379"),
     ("127.0.0.1:2379", "127.0.0.1:2379")],
)  # fmt: skip
def test_endpoints_are_taken_as_etcds_clients_take_them(url: str, address: str) -> None:
    assert endpoint_address(url) == address


@pytest.mark.parametrize("url", ["https://10.0.0.1", "etcd", "https://:2379", "h:port"])
def test_an_endpoint_without_host_and_port_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="invalid etcd endpoint"):
        endpoint_address(url)


def args(tmp: Path, *extra: str) -> argparse.Namespace:
    return parse_args(["--state-dir", str(tmp), *extra])


def test_no_endpoints_means_embedded_members(tmp_path: Path) -> None:
    assert etcd_settings(args(tmp_path)) == ([], None)


def test_the_flags_are_checked_before_the_daemon_starts(tmp_path: Path) -> None:
    ca, cert, key = (tmp_path / n for n in ("ca.crt", "c.crt", "c.key"))
    for f in (ca, cert, key):
        f.write_text("x")
    ep = "https://10.0.0.1:2379,https://10.0.0.2:2379"
    flags = ["--etcd-cacert", str(ca), "--etcd-cert", str(cert), "--etcd-key", str(key)]
    endpoints, tls = etcd_settings(args(tmp_path, "--etcd-endpoints", ep, *flags))
    assert endpoints == ["https://10.0.0.1:2379", "https://10.0.0.2:2379"]
    assert tls is not None and (tls.ca, tls.cert, tls.key) == (ca, cert, key)
    cases = {
        "must be https://": ["--etcd-endpoints", "http://10.0.0.1:2379", "--etcd-cacert", str(ca)],
        "needs --etcd-cacert": ["--etcd-endpoints", ep],
        "--etcd-cert with --etcd-key": ["--etcd-endpoints", ep, "--etcd-cacert", str(ca),
                                        "--etcd-cert", str(cert)],
        "go with --etcd-endpoints": ["--etcd-cacert", str(ca)],
        "no such file": ["--etcd-endpoints", ep, "--etcd-cacert", str(tmp_path / "none")],
        "invalid etcd endpoint": ["--etcd-endpoints", "https://nohost", "--etcd-cacert", str(ca)],
    }  # fmt: skip
    for said, flags in cases.items():
        with pytest.raises(SystemExit, match=said):
            etcd_settings(args(tmp_path, *flags))


def test_failed_checks_in_a_row_move_to_the_next_endpoint() -> None:
    async def scenario() -> list[str]:
        etcd = Etcd(["https://a:1", "https://b:2", "https://c:3"])
        seen = [etcd.endpoint]
        for _ in range(3 * FAILOVER_AFTER):
            etcd._failed()
            seen.append(etcd.endpoint)
        await etcd.close()
        return seen

    seen = asyncio.run(scenario())
    assert seen[0] == "a:1"
    assert seen[FAILOVER_AFTER] == "b:2" and seen[2 * FAILOVER_AFTER] == "c:3"
    assert seen[3 * FAILOVER_AFTER] == "a:1"  # round and round while none answers
    assert seen[FAILOVER_AFTER - 1] == "a:1"  # one failure alone changes nothing


def test_one_endpoint_stays_in_use() -> None:
    async def scenario() -> str:
        etcd = Etcd("127.0.0.1:2379")
        for _ in range(5):
            etcd._failed()
        return etcd.endpoint

    assert asyncio.run(scenario()) == "127.0.0.1:2379"


def manager(id: str, reach: str = "reachable") -> Node:
    return Node(id=id, spec=NodeSpec(role="manager"),
                manager_status=ManagerStatus(reachability=reach, addr=f"{id}:2377"))  # fmt: skip


def test_leave_speaks_of_no_raft_quorum_when_etcd_is_external() -> None:
    alone = SimpleNamespace(nodes=lambda: [manager("a")])
    assert leave_refusal(alone, "a", raft=False) == START + (
        "Removing the last manager erases all current state of the swarm. Use `--force` to "
        "ignore this message. "
    )
    # Two of three managers away: with the managers' own members that would lose the
    # quorum; with an external cluster it changes nothing.
    three = SimpleNamespace(nodes=lambda: [manager("a"), manager("b", "unreachable"),
                                           manager("c", "unreachable")])  # fmt: skip
    assert "Raft" in leave_refusal(three, "a")
    said = leave_refusal(three, "a", raft=False)
    assert said == START + "Use `--force` to suppress this message."
