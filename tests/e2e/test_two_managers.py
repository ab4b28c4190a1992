"""Two managers, one of them demoted right after its promotion (`shoal lab`, 1 manager + 1
worker, the stock docker CLI): the demoted node's etcd member leaves the cluster before it
stops, even when etcd first answers that the cluster is not healthy enough to lose a voter
(a member that joined moments ago) — else the remaining manager would be one member of two
for good, without a quorum. The swarm goes on answering, twice over."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from halab import manager_status
from support import wait_for
from swarmlab import Lab, lab_up

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def lab(docker_cli: Callable[..., tuple[int, str, str]]) -> Iterator[Lab]:
    yield from lab_up("tm", docker_cli, 1, 1)


def statuses(lab: Lab) -> dict[str, str]:
    return {h.removeprefix(f"{lab.name}-"): s for h, s in manager_status(lab.cli["m1"]).items()}


@pytest.mark.parametrize("round", [1, 2])
def test_a_manager_demoted_at_once_leaves_the_other_a_quorum(lab: Lab, round: int) -> None:
    m1 = lab.cli["m1"]
    m1.ok("node", "promote", lab.node("w1"))
    wait_for(lambda: statuses(lab).get("w1") == "Reachable", 60, what="w1 Reachable",
             log=lambda: lab.log("w1"))  # fmt: skip
    m1.ok("node", "demote", lab.node("w1"))
    wait_for(lambda: statuses(lab) == {"m1": "Leader"}, 60, what="m1 the only manager",
             log=lambda: lab.log("m1"))  # fmt: skip
    info = json.loads(m1.ok("info", "--format", "{{json .Swarm}}"))
    assert info["Managers"] == 1 and not info.get("Error"), info
    m1.ok("service", "create", "-d", "--name", f"after{round}", lab.busybox, "sleep", "1d")
    wait_for(lambda: lab.cli["w1"].run("info", "--format", "{{.Swarm.ControlAvailable}}")[1]
             .strip() == "false", 60, what="w1 a worker again")  # fmt: skip
