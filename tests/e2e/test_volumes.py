"""Volumes and mounts of service tasks, end to end on a `shoal lab` (1 manager, 2 workers) with
the stock docker CLI: a volume with a driver and options is created with exactly those on the
node that runs the task (the local driver's bind form stands in for storage every node
reaches: the lab hosts share the machine's filesystem), its data outlives the task when it is
replaced by `service update --force` and when its node is drained; an NFS volume is created
with its options and its task fails with the engine's mount error (no NFS client here);
tmpfs size and mode, read-only binds and volumes, an anonymous volume per task (gone with its
task's container), templates in volume names; mounts the node refuses, in moby's words."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import wait_for
from swarmlab import Lab, lab_up

from shoal.lab.state import base_dir

pytestmark = pytest.mark.e2e

NODES = ("m1", "w1", "w2")
IDLE = ("sh", "-c", 'trap "exit 0" TERM; while :; do sleep 0.2; done')


@pytest.fixture(scope="module")
def lab(docker_cli: Callable[..., tuple[int, str, str]]) -> Iterator[Lab]:
    yield from lab_up("vol", docker_cli, managers=1, workers=2)


@pytest.fixture
def shared(lab: Lab) -> Path:
    """A directory every lab host sees (removed with the lab)."""
    path = base_dir() / lab.name / f"shared-{secrets.token_hex(3)}"
    path.mkdir()
    return path


def short(lab: Lab, node: str) -> str:
    return node.removeprefix(f"{lab.name}-")


def the_task(lab: Lab, service: str, state: str = "Running") -> dict[str, Any]:
    """`docker inspect` of the service's one task in `state` (once there is exactly one)."""

    def find() -> dict[str, Any] | None:
        rows = [r for r in lab.cli["m1"].tasks(service) if r["State"] == state]
        if len(rows) != 1:
            return None
        task: dict[str, Any] = json.loads(lab.cli["m1"].ok("inspect", rows[0]["ID"]))[0]
        return task

    found: dict[str, Any] = wait_for(find, 60, what=f"one {state} task of {service}",
                                     log=lambda: lab.log("m1"))  # fmt: skip
    return found


def node_of(lab: Lab, task: dict[str, Any]) -> str:
    out = lab.cli["m1"].ok("node", "inspect", "--format", "{{.Description.Hostname}}",
                           task["NodeID"])  # fmt: skip
    return short(lab, out.strip())


def volume(lab: Lab, node: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(lab.cli[node].ok("volume", "inspect", name))[0]
    return found


def in_task(lab: Lab, task: dict[str, Any], *cmd: str) -> tuple[int, str, str]:
    cid = task["Status"]["ContainerStatus"]["ContainerID"]
    return lab.cli[node_of(lab, task)].run("exec", cid, *cmd)


def test_volume_options_on_the_node_and_data_kept_when_the_task_moves(
    lab: Lab, shared: Path
) -> None:
    m1 = lab.cli["m1"]
    options = {"type": "none", "o": "bind", "device": str(shared)}
    mount = "type=volume,source=kept,target=/data,volume-driver=local,volume-label=purpose=test"
    mount += "".join(f",volume-opt={k}={v}" for k, v in options.items())
    record = 'echo "$(hostname) $(cat /data/log 2>/dev/null | wc -l)" >> /data/log; '
    m1.converge("kept", "--constraint", "node.role==worker", "--hostname", "{{.Node.Hostname}}",
                "--mount", mount, lab.busybox, "sh", "-c", record + IDLE[2])  # fmt: skip
    try:
        first = node_of(lab, the_task(lab, "kept"))
        vol = volume(lab, first, "kept")
        assert (vol["Driver"], vol["Options"]) == ("local", options)
        assert vol["Labels"] == {"purpose": "test"}
        m1.ok("service", "update", "--force", "kept", timeout=120)
        second = node_of(lab, the_task(lab, "kept"))
        m1.ok("node", "update", "--availability", "drain", lab.node(second))
        try:
            third = wait_for(lambda: (n := node_of(lab, the_task(lab, "kept"))) != second and n,
                             60, what="the task on the other worker")  # fmt: skip
            vol = volume(lab, third, "kept")
            assert (vol["Driver"], vol["Options"]) == ("local", options)
            log = shared / "log"
            lines = wait_for(lambda: len(log.read_text().splitlines()) >= 3 and log.read_text(),
                             30, what="three tasks' lines").splitlines()  # fmt: skip
        finally:
            m1.ok("node", "update", "--availability", "active", lab.node(second))
        # Each task counted the lines of the ones before it: the data outlived them.
        assert lines == [f"{lab.node(n)} {i}" for i, n in enumerate((first, second, third))]
    finally:
        m1.rm("kept")


def test_nfs_volume_created_with_its_options_then_the_engines_mount_error(lab: Lab) -> None:
    m1 = lab.cli["m1"]
    options = {"type": "nfs", "o": f"addr={lab.registry.split(':')[0]}", "device": ":/export"}
    mount = "type=volume,source=nfs-data,target=/data,volume-driver=local"
    mount += "".join(f",volume-opt={k}={v}" for k, v in options.items())
    m1.create("nfs", "--restart-condition", "none", "--constraint", "node.role==worker",
              "--mount", mount, lab.busybox, *IDLE)  # fmt: skip
    try:
        task = the_task(lab, "nfs", "Failed")
        vol = volume(lab, node_of(lab, task), "nfs-data")
        assert (vol["Driver"], vol["Options"]) == ("local", options)
        err = task["Status"]["Err"]
        # What Docker's swarm mode says: the engine's own words, the mount that failed and why.
        assert err.startswith("starting container failed: error while mounting volume "), err
        assert f"mount :/export:{vol['Mountpoint']}" in err and err.endswith("no such device"), err
    finally:
        m1.rm("nfs")


def test_tmpfs_readonly_anonymous_and_templated_volumes(lab: Lab, shared: Path) -> None:
    m1 = lab.cli["m1"]
    (shared / "hello").write_text("hi\n")
    m1.converge(
        "mounts", "--replicas", "2", "--constraint", "node.role==worker",
        "--mount", "type=tmpfs,target=/scratch,tmpfs-size=1m,tmpfs-mode=1770",
        "--mount", f"type=bind,source={shared},target=/host,readonly",
        "--mount", "type=volume,source=ro-{{.Task.Slot}},target=/ro,readonly",
        "--mount", "type=volume,target=/anon",
        lab.busybox, *IDLE,
    )  # fmt: skip
    try:
        tasks = [json.loads(m1.ok("inspect", r["ID"]))[0] for r in lab.running("mounts")]
        anonymous = {}
        for task in tasks:
            rc, mounts, _ = in_task(lab, task, "cat", "/proc/mounts")
            assert rc == 0
            by_target = {line.split()[1]: line.split() for line in mounts.splitlines()}
            scratch = by_target["/scratch"]
            assert scratch[2] == "tmpfs", scratch
            assert {"size=1024k", "mode=1770"} <= set(scratch[3].split(",")), scratch
            for target in ("/host", "/ro"):
                assert "ro" in by_target[target][3].split(","), by_target[target]
            assert in_task(lab, task, "cat", "/host/hello")[1] == "hi\n"
            assert in_task(lab, task, "touch", "/host/x")[0] != 0
            node = node_of(lab, task)
            cid = task["Status"]["ContainerStatus"]["ContainerID"]
            container = json.loads(lab.cli[node].ok("inspect", cid))[0]
            by_dest = {m["Destination"]: m for m in container["Mounts"]}
            assert by_dest["/ro"]["Name"] == f"ro-{task['Slot']}"
            anonymous[by_dest["/anon"]["Name"]] = node
        assert len(anonymous) == 2  # one anonymous volume per task
        m1.rm("mounts")

        def gone() -> bool:
            names = {n: lab.cli[s].ok("volume", "ls", "-q").split() for n, s in anonymous.items()}
            return all(n not in found for n, found in names.items())

        # Docker removes a task's anonymous volumes with its container; named ones stay.
        wait_for(gone, 30, what="the anonymous volumes removed with their tasks")
        for task in tasks:
            volume(lab, node_of(lab, task), f"ro-{task['Slot']}")
    finally:
        m1.rm("mounts")


@pytest.mark.parametrize(
    ("mount", "error"),
    [
        ("type=bind,source=/no/such/dir,target=/x",
         'invalid mount config for type "bind": bind source path does not exist: /no/such/dir'),
        ("type=bind,source=relative,target=/x",
         "invalid bind mount source, must be an absolute path: relative"),
        ("type=tmpfs,source=abc,target=/x", "invalid tmpfs source, source must be empty"),
    ],
)  # fmt: skip
def test_mounts_the_node_refuses(lab: Lab, mount: str, error: str) -> None:
    m1 = lab.cli["m1"]
    m1.create("refused", "--restart-condition", "none", "--mount", mount, lab.busybox, *IDLE)
    try:
        assert the_task(lab, "refused", "Rejected")["Status"]["Err"] == error
    finally:
        m1.rm("refused")
