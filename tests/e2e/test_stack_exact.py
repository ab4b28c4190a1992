"""`docker stack deploy` on shoal makes Docker's objects, field for field.

For every scenario of ``stack_objects`` the same docker CLI commands run against a one-node
shoal swarm; the stack's services (``docker service inspect``: Spec, Endpoint), networks
(``docker network inspect``), secrets and configs, what the CLI printed, what a failed deploy
left behind and what ``docker stack rm`` removed are recorded, masked and compared with what
Docker 20.10's own swarm mode answered (``tests/fixtures/docker-stacks/<scenario>.json``,
recorded by ``scripts/capture-docker-stacks``). The differences shoal makes on purpose are
listed in ``INTENDED`` with their reasons; any other one fails, and so does an intended one
that no longer shows. ``SHOAL_TEST_KEEP_OBJECTS=DIR`` writes shoal's raw and masked objects.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import stack_objects as stacks
from docker_objects import Difference, ScenarioError, cli_major, cli_version, diff, report

pytestmark = pytest.mark.e2e

RECAPTURE = "sudo .venv/bin/python scripts/capture-docker-stacks --only {}"
LB = (
    "Docker attaches a load-balancer endpoint (`<network>-endpoint`, its IPVS sandbox) to "
    "every overlay network on a node with tasks on it; shoal balances in nftables and has none "
    "(networking.md)"
)
ENCRYPTED = (
    "shoal refuses an encrypted overlay network where the kernel has neither IPsec nor "
    "WireGuard (networking.md); Docker creates it and its tasks run unencrypted on one node, "
    "fail between nodes. The deploy stops at the network: nothing of the stack is created"
)


@dataclass(frozen=True)
class Intended:
    """A difference from Docker's answers that shoal makes on purpose: in `scenario`'s
    `object`, of `kind` at `path` (None: every difference in the object)."""

    scenario: str
    object: str
    kind: str | None
    path: str | None
    why: str

    def matches(self, scenario: str, name: str, d: Difference) -> bool:
        return (scenario, name) == (self.scenario, self.object) and (
            self.path is None or (d.kind, d.path) == (self.kind, self.path)
        )


INTENDED: tuple[Intended, ...] = (
    Intended("stack-full", "networks", "missing", "[0].LoadBalancerEndpoint", LB),
    Intended("stack-full", "networks", "missing", "[1].LoadBalancerEndpoint", LB),
    *(
        Intended("stack-encrypted", name, None, None, ENCRYPTED)
        for name in ("deploy", "left", "networks", "services", "rm")
    ),
)


def unintended(
    scenario: str, found: dict[str, list[Difference]]
) -> tuple[dict[str, list[Difference]], list[Intended]]:
    rest: dict[str, list[Difference]] = {}
    seen: set[Intended] = set()
    for name, differences in found.items():
        for d in differences:
            match = next((i for i in INTENDED if i.matches(scenario, name, d)), None)
            if match is None:
                rest.setdefault(name, []).append(d)
            else:
                seen.add(match)
    return rest, [i for i in INTENDED if i.scenario == scenario and i not in seen]


def differences(docker: dict[str, Any], shoal: dict[str, Any]) -> dict[str, list[Any]]:
    found = {}
    for name in sorted(docker.keys() | shoal.keys()):
        d = diff(docker.get(name), shoal.get(name))
        if d:
            found[name] = d
    return found


@pytest.mark.parametrize("scenario", stacks.SCENARIOS, ids=[s.name for s in stacks.SCENARIOS])
def test_stack_objects_are_dockers(scenario: stacks.StackScenario, swarm: Any) -> None:
    path = stacks.fixture_path(scenario.name)
    expected = json.loads(path.read_text())
    assert expected["commands"] == scenario.commands, (
        f"{path} was recorded with other commands: run `{RECAPTURE.format(scenario.name)}`"
    )
    cli = cli_version()
    assert cli_major(cli) == cli_major(expected["recorded_with"]["cli"]), (
        f"{path} was recorded with {expected['recorded_with']['cli']}, not {cli}"
    )
    rec: dict[str, Any] = {}
    try:
        rec, problems = stacks.run(swarm.host, scenario)
    except ScenarioError as e:
        pytest.fail(f"{scenario.name}: {e}\n{swarm.log_tail(40)}")
    finally:
        stacks.remove(swarm.host, scenario, rec=rec if rec else None)
    masked = stacks.mask(rec)
    keep = os.environ.get("SHOAL_TEST_KEEP_OBJECTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for suffix, objects in ((".raw.json", rec), (".json", masked)):
            text = json.dumps(objects, indent=2, sort_keys=True)
            Path(keep, scenario.name + suffix).write_text(text + "\n")
    docker = expected["objects"]
    found, unseen = unintended(scenario.name, differences(docker, masked))
    if found or unseen or problems:
        count = sum(len(d) for d in found.values())
        pytest.fail(
            f"{scenario.name}: shoal's answers differ from {expected['recorded_with']['engine']}'s "
            f"({path.name}) in {count} place(s)\n"
            + "".join(f"{p}\n" for p in problems)
            + "".join(f"intended difference no longer seen: {i}\n" for i in unseen)
            + report(found),
            pytrace=False,
        )
