"""The lab network: a bridge in the root namespace, one veth pair per host, iptables rules.

* Bridge ``shl<N>`` with ``10.211.N.1/24`` (the hosts' gateway), its ip-link alias
  ``shoal-lab:<lab>`` so that ``down`` finds it even without the lab's state.
* Host ``<lab>-m1`` gets the veth pair ``shl<N>-m1`` (root namespace, on the bridge) ↔
  ``eth0`` (in the host) with its address and a default route via the bridge.
* A dockerd in the root namespace sets the FORWARD policy to DROP, and with
  ``br_netfilter`` loaded bridged frames go through FORWARD: the lab's traffic is accepted
  explicitly (``-i shl<N> -o shl<N>``, and to/from the root namespace on INPUT), every rule
  tagged with the comment ``shoal-lab:<lab>`` so that ``down`` removes exactly those.
* ``partition`` takes the host's veth off the bridge and down (the host's ``eth0`` loses its
  carrier, like an unplugged cable); ``heal`` puts it back.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

from shoal.lab.state import LabError, LabState, NodeState


def _run(cmd: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(cmd), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(cmd)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def link_exists(name: str) -> bool:
    return _run(["ip", "link", "show", "dev", name], check=False).returncode == 0


def links() -> list[dict[str, Any]]:
    out = _run(["ip", "-j", "-d", "link", "show"], check=False).stdout
    try:
        data: list[dict[str, Any]] = json.loads(out or "[]")
        return data
    except ValueError:
        return []


def ensure_bridge(lab: LabState) -> None:
    br = lab.bridge
    if not link_exists(br):
        _run(["ip", "link", "add", br, "type", "bridge"])
    _run(["ip", "link", "set", br, "alias", lab.comment])
    have = _run(["ip", "-4", "-o", "addr", "show", "dev", br]).stdout
    if f" {lab.gateway}/" not in have:
        _run(["ip", "addr", "add", f"{lab.gateway}/24", "dev", br])
    _run(["ip", "link", "set", br, "up"])


def lab_bridges(lab_name: str) -> list[str]:
    """Bridges tagged for lab_name (by alias), whatever the state file says."""
    tag = f"shoal-lab:{lab_name}"
    return [link["ifname"] for link in links() if link.get("ifalias") == tag]


def delete_link(name: str) -> None:
    if link_exists(name):
        _run(["ip", "link", "del", name], check=False)


def connect_host(lab: LabState, node: NodeState, holder_pid: int) -> None:
    """Give the host (just created, holder_pid) its eth0 on the bridge."""
    delete_link(node.veth)  # a leftover of a host that is gone
    _run([
        "ip", "link", "add", node.veth, "type", "veth",
        "peer", "name", "eth0", "netns", str(holder_pid),
    ])  # fmt: skip
    if not node.partitioned:
        _run(["ip", "link", "set", node.veth, "master", lab.bridge, "up"])
    inside = ["nsenter", f"--target={holder_pid}", "--net", "--"]
    _run([*inside, "ip", "addr", "add", f"{node.addr}/24", "dev", "eth0"])
    _run([*inside, "ip", "link", "set", "eth0", "up"])
    _run([*inside, "ip", "route", "add", "default", "via", lab.gateway])


def partition(lab: LabState, node: NodeState) -> None:
    if link_exists(node.veth):
        _run(["ip", "link", "set", node.veth, "nomaster"])
        _run(["ip", "link", "set", node.veth, "down"])


def heal(lab: LabState, node: NodeState) -> None:
    if link_exists(node.veth):
        _run(["ip", "link", "set", node.veth, "master", lab.bridge, "up"])


def attached(lab: LabState, node: NodeState) -> bool:
    """The host's veth is up and on the lab bridge."""
    for link in links():
        if link.get("ifname") == node.veth:
            return link.get("master") == lab.bridge and "UP" in (link.get("flags") or [])
    return False


# ------------------------------------------------------------------ iptables


def _iptables() -> str | None:
    return shutil.which("iptables")


def _rules(lab: LabState) -> list[tuple[str, list[str]]]:
    c = ["-m", "comment", "--comment", lab.comment, "-j", "ACCEPT"]
    br = lab.bridge
    return [
        ("FORWARD", ["-i", br, "-o", br, *c]),  # host ↔ host (bridged, br_netfilter)
        ("INPUT", ["-i", br, *c]),  # host → root namespace
        ("OUTPUT", ["-o", br, *c]),  # root namespace → host
    ]


def ensure_rules(lab: LabState) -> None:
    ipt = _iptables()
    if ipt is None:
        return
    for chain, rule in _rules(lab):
        if _run([ipt, "-w", "-C", chain, *rule], check=False).returncode != 0:
            _run([ipt, "-w", "-I", chain, "1", *rule])


def lab_rules(lab_name: str) -> list[list[str]]:
    """The lab's rules as ``iptables -S`` prints them (argv after the chain's -A)."""
    ipt = _iptables()
    if ipt is None:
        return []
    tag = f"shoal-lab:{lab_name}"
    found = []
    for line in _run([ipt, "-w", "-S"], check=False).stdout.splitlines():
        words = [w.strip('"') for w in line.split()]
        if words[:1] == ["-A"] and tag in words:
            found.append(words[1:])
    return found


def remove_rules(lab_name: str) -> None:
    ipt = _iptables()
    if ipt is None:
        return
    for _ in range(3):
        rules = lab_rules(lab_name)
        if not rules:
            return
        for rule in rules:
            # -S quotes the comment; it has no spaces, so unquoted words are the rule.
            _run([ipt, "-w", "-D", *rule], check=False)
