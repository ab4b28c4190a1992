"""`shoal lab down`: remove a lab completely, even one whose ``up`` failed halfway.

Every process of the lab is killed (by network/mount namespace, cgroup, and command line
naming the node's directory), then each host's init; the veths, the bridge, the iptables
rules tagged for the lab and the lab's directory are removed. What the state file may not
know (it can be missing or damaged) is swept by name: processes naming the lab directory,
``shoal-lab-<lab>-*`` cgroups, bridges with the lab's alias, rules with its comment.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from shoal.lab import network, procs
from shoal.lab.lab import Lab, quiet, raise_first
from shoal.lab.node import CGROUP_PREFIX, LabNode
from shoal.lab.state import LabError, base_dir, check_name, load, locked


def down(name: str, progress: Callable[[str], None] = quiet) -> bool:
    """Remove the lab completely. False if there was nothing to remove."""
    check_name(name)
    d = base_dir() / name
    found = d.exists() or bool(network.lab_bridges(name)) or bool(network.lab_rules(name))
    if not found:
        return False
    with locked(name, create=True) as d:
        try:
            st = load(name)
        except LabError as e:
            progress(f"ignoring the lab's state: {e}")
            st = None
        if st is not None:
            lab = Lab(st)
            all_nodes = [lab.node(n) for n in st.nodes]

            def destroy(node: LabNode) -> None:
                node.destroy()
                progress(f"{node.state.name}: removed")

            with ThreadPoolExecutor(max_workers=8) as pool:
                raise_first([pool.submit(destroy, n) for n in all_nodes])
            for node in st.nodes.values():
                network.delete_link(node.veth)
            network.delete_link(st.bridge)
        # Whatever the state did not know about: processes naming the lab's directory (the
        # hosts' inits among them) and those sharing their namespaces, the nodes' container
        # cgroups (found by name), bridges and rules tagged for the lab, leftover mounts.
        mine = str(d).rstrip("/") + "/"
        cgroups = procs.find_cgroups(rf"{CGROUP_PREFIX}{re.escape(name)}-(m|w)\d+")
        named = procs.mentioning(mine)
        me = procs.ns_id(os.getpid(), "net"), procs.ns_id(os.getpid(), "mnt")
        spaces = {procs.ns_id(p, k) for p in named for k in ("net", "mnt")} - {None, *me}
        # Namespace ids are reused once a namespace is gone: match by them only now, while
        # the processes naming the lab still hold them.
        sharing = {
            (p, procs.start_time(p))
            for p in procs.pids()
            if {procs.ns_id(p, "net"), procs.ns_id(p, "mnt")} & spaces
        }
        for _ in range(100):
            victims = set(procs.mentioning(mine)) | procs.cgroup_procs(cgroups)
            victims |= {p for p, start in sharing if procs.same_process(p, start)}
            victims = {p for p in victims if procs.alive(p)}
            if not victims:
                break
            for pid in victims:
                procs.kill(pid)
            time.sleep(0.05)
        procs.remove_cgroups(cgroups)
        for br in network.lab_bridges(name):
            network.delete_link(br)
        network.remove_rules(name)
        procs.unmount_under(str(d))
        _rmtree(d)
    progress(f"lab {name}: removed")
    return True


def _rmtree(d: Path) -> None:
    for attempt in range(50):
        try:
            shutil.rmtree(d)
            return
        except FileNotFoundError:
            return
        except OSError:
            if attempt == 49:
                raise
            time.sleep(0.1)
