"""A swarm on an external etcd cluster (`shoald --etcd-endpoints … --etcd-cacert/cert/key`):
three etcd members of the test's own (TLS with client certificates) in the test engine's
namespaces, one shoald manager on them, driven with the stock docker CLI.

The swarm's keys are in that cluster and nowhere else (no member of shoald's own); the
manager goes on through the loss of the member it talks to; a restart keeps the swarm, a
restart without the flags is refused; Docker's refusals change where they would not be true
(`--force-new-cluster`, the quorum warning of `leave`); the last manager's `leave --force`
erases the swarm's keys, and `init` refuses a cluster that holds a swarm.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import WHOAMI, Cli, wait_for

from shoal.lab.etcd import ExternalEtcd
from shoal.testing.shoald import Shoald

pytestmark = pytest.mark.e2e


class Members:
    """The external cluster's processes, in the engine's namespaces."""

    def __init__(self, engine: Any, tmp: Path) -> None:
        self.engine = engine
        self.etcd = ExternalEtcd(tmp / "etcd", "127.0.0.1")
        self.etcd.make_certs()
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def start(self, i: int) -> None:
        with open(self.etcd.log(i), "ab") as out:
            self.procs[i] = self.engine.popen_in_ns(
                self.etcd.argv(i), stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip

    def kill(self, i: int) -> None:
        proc = self.procs.pop(i)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def etcdctl(self, *args: str) -> str:
        proc = self.engine.run_in_ns(
            ["etcdctl", *self.etcd.etcdctl_args(), *args],
            env={**os.environ, "ETCDCTL_API": "3"},
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    def keys(self, prefix: str) -> list[str]:
        out = self.etcdctl("get", "--prefix", "--keys-only", prefix)
        return [line for line in out.splitlines() if line]


@pytest.fixture(scope="module")
def members(engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Members]:
    m = Members(engine, tmp_path_factory.mktemp("external-etcd"))
    for i in range(m.etcd.members):
        m.start(i)
    try:
        m.etcd.wait_listening(engine.socket)
        yield m
    finally:
        for i in list(m.procs):
            m.kill(i)


@pytest.fixture(scope="module")
def manager(engine: Any, members: Members, docker_cli: Any) -> Iterator[Shoald]:
    daemon = Shoald(engine, args=members.etcd.shoald_args()).start()
    try:
        yield daemon
    finally:
        if daemon.proc is not None:
            docker_cli(daemon.host, "swarm", "leave", "--force", timeout=60)
        daemon.cleanup()


@pytest.fixture(scope="module")
def cli(manager: Shoald, docker_cli: Any) -> Cli:
    return Cli(docker_cli, manager.host, lambda: manager.log_tail(80))


def test_swarm_keeps_its_state_in_the_external_cluster(
    cli: Cli, manager: Shoald, members: Members
) -> None:
    cli.ok("swarm", "init", "--advertise-addr", "127.0.0.1")
    swarm_id = cli.ok("info", "--format", "{{.Swarm.Cluster.ID}}").strip()
    assert members.keys("/shoal/swarm/") == [f"/shoal/swarm/{swarm_id}"]
    assert not (manager.state_dir / "swarm" / "etcd").exists()  # no member of its own
    assert manager.etcd_pid() is None
    assert cli.ok("info", "--format", "{{.Swarm.Managers}}").strip() == "1"
    sid = cli.converge("web", "--replicas", "2", WHOAMI)
    assert len(members.keys(f"/shoal/services/{sid}")) == 1


def test_losing_the_member_in_use_fails_over_to_another(cli: Cli, members: Members) -> None:
    members.kill(0)  # the first endpoint, the one shoald talks to
    try:

        def scaled() -> bool:
            rc, _, _ = cli.run("service", "scale", "-d", "web=3", timeout=30)
            return rc == 0

        wait_for(scaled, timeout=60, what="a scale accepted after member 0 died", log=cli.log)
        wait_for(
            lambda: cli.service_row("web")["Replicas"] == "3/3",
            timeout=60, what="3 replicas running", log=cli.log,
        )  # fmt: skip
        assert "trying" in cli.log()  # the log says it moved to another endpoint
    finally:
        members.start(0)


def test_restart_keeps_the_swarm_and_needs_the_flags(
    cli: Cli, manager: Shoald, engine: Any
) -> None:
    before = sorted(r["ID"] for r in cli.json_lines("service", "ls"))
    manager.stop()
    bare = Shoald(engine, state_dir=manager.state_dir)  # the same node, no --etcd-endpoints
    with pytest.raises(RuntimeError, match="keeps its state in an external etcd cluster"):
        bare.start()
    bare.kill()
    manager.start()
    wait_for(lambda: cli.run("service", "ls")[0] == 0, timeout=30, what="the API after restart")
    assert sorted(r["ID"] for r in cli.json_lines("service", "ls")) == before
    wait_for(
        lambda: cli.service_row("web")["Replicas"] == "3/3",
        timeout=60, what="replicas back after the restart", log=cli.log,
    )  # fmt: skip


def test_refusals_say_what_is_true_of_an_external_cluster(cli: Cli) -> None:
    rc, _, err = cli.run("swarm", "init", "--force-new-cluster")
    assert rc != 0 and "external etcd cluster, whose quorum is etcd's own" in err, err
    rc, _, err = cli.run("swarm", "leave")
    assert rc != 0
    assert "Removing the last manager erases all current state of the swarm" in err, err
    assert "Raft" not in err


def test_last_manager_leaving_erases_the_swarm_and_init_refuses_a_held_cluster(
    cli: Cli, members: Members
) -> None:
    cli.ok("service", "rm", "web")
    cli.ok("swarm", "leave", "--force")
    assert members.keys("/shoal") == []
    members.etcdctl("put", "/shoal/swarm/someotherswarm0000000000", "{}")
    try:
        rc, _, err = cli.run("swarm", "init", "--advertise-addr", "127.0.0.1")
        assert rc != 0 and "holds swarm someotherswarm0000000000 already" in err, err
        assert cli.ok("info", "--format", "{{.Swarm.LocalNodeState}}").strip() == "inactive"
    finally:
        members.etcdctl("del", "--prefix", "/shoal")
    cli.ok("swarm", "init", "--advertise-addr", "127.0.0.1")  # a new swarm, the cluster cleared
    swarm_id = cli.ok("info", "--format", "{{.Swarm.Cluster.ID}}").strip()
    assert members.keys("/shoal/swarm/") == [f"/shoal/swarm/{swarm_id}"]
