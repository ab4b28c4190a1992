"""shoal's API objects are Docker's, field for field.

For every scenario of ``docker_scenarios`` the same docker CLI command lines run against a
one-node shoal swarm; once the tasks settle, the objects a client reads (``docker service
inspect``, ``docker inspect TASK``, ``docker node inspect self``, ``docker info``'s swarm, …)
are recorded, masked and compared with what Docker 20.10's own swarm mode answered to the
same commands (``tests/fixtures/docker/<scenario>.json``, recorded by
``scripts/capture-docker-objects``; ``docker_objects`` says what is recorded and masked).
A failure lists every difference as a key path: keys Docker has and shoal lacks
(``missing``), keys shoal adds (``extra``), other JSON types (``type``) and other constants
(``value``). ``SHOAL_TEST_KEEP_OBJECTS=DIR`` writes shoal's raw and masked objects there
(``<scenario>.raw.json``, ``<scenario>.json``) to look at.

Where shoal differs from Docker on purpose, the difference is listed in ``INTENDED``: the
object, the key path, both values and the reason. Exactly that difference is let through;
any other one fails, and so does an intended one that no longer shows.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from docker_objects import (
    Difference,
    ScenarioError,
    cli_major,
    cli_version,
    diff,
    diff_objects,
    docker_binary,
    expected_objects,
    fixture_path,
    load_fixture,
    mask,
    remove_service,
    report,
    run_scenario,
)
from docker_scenarios import SCENARIOS, Scenario

pytestmark = pytest.mark.e2e

RECAPTURE = "sudo .venv/bin/python scripts/capture-docker-objects --only {}"


@dataclass(frozen=True)
class Intended:
    """A difference from Docker's answers that shoal makes on purpose."""

    object: str  # a name of docker_objects.OBJECTS, or a step's outcome
    path: str | None  # None: every difference in the object (shoal refuses what Docker takes)
    docker: Any
    shoal: Any
    why: str

    def matches(self, name: str, d: Difference) -> bool:
        if name != self.object:
            return False
        if self.path is None:
            return True
        return (d.kind, d.path, d.docker, d.shoal) == ("value", self.path, self.docker, self.shoal)


HEARTBEATS = (
    "shoal's default heartbeat period is 1 s, Docker's 5 s: a dead node's tasks run elsewhere "
    "within 5 s (DESIGN.md §4, api/defaults.py HEARTBEAT_PERIOD)"
)
CONTAINER_FILES = (  # the secrets-configs scenario's container output (docker_scenarios)
    "/run/secrets/fx-s1 0:0 444 11\n/run/secrets/fx-t2 1000:1000 400 3\n/etc/fx-abs 0:0 444 11\n"
    "/etc/fx-c1 1000:2000 440 11\n/fx-c2 0:0 444 10\n/fx-tpl 0:0 444 {size}\n"
    "tmpfs /etc/fx-abs tmpfs ro,relatime 0 0\ntmpfs /etc/fx-c1 tmpfs ro,relatime 0 0\n"
    "tmpfs /fx-c2 tmpfs ro,relatime 0 0\ntmpfs /fx-tpl tmpfs ro,relatime 0 0\n"
    "tmpfs /run/secrets/fx-s1 tmpfs ro,relatime 0 0\n"
    "tmpfs /run/secrets/fx-t2 tmpfs ro,relatime 0 0\n"
    "service=secrets-configs slot=1 task=secrets-configs.1.<task-id-1> node=[{node}] "
    "greeting=hello home=[]\nsecret=[two] config=[config one\n]\n"
)
INTENDED: tuple[Intended, ...] = (
    Intended("swarm", "Spec.Dispatcher.HeartbeatPeriod", 5_000_000_000, 1_000_000_000, HEARTBEATS),
    Intended(
        "info_swarm",
        "Cluster.Spec.Dispatcher.HeartbeatPeriod",
        5_000_000_000,
        1_000_000_000,
        HEARTBEATS,
    ),
    Intended(
        "container_files",
        "stdout",
        CONTAINER_FILES.format(size=145, node=""),
        CONTAINER_FILES.format(size=162, node="shoal-test-engine"),
        "`{{.Node.Hostname}}` in a config template is the node's hostname; Docker 20.10 "
        "renders it empty (its daemon gives payload templates no node description)",
    ),
    Intended(
        "create_dotdot_target",
        None,
        None,
        None,
        "a relative secret target that leaves /run/secrets (`target=../../etc/x`) is refused "
        "with a 400; Docker puts the secret at /etc/x (an absolute target says that plainly)",
    ),
)


def unintended(
    found: dict[str, list[Difference]],
    recorded: set[str],
    intended: tuple[Intended, ...] = INTENDED,
) -> tuple[dict[str, list[Difference]], list[Intended]]:
    """The differences not in `intended`, and the intended ones that did not show (of the
    objects `recorded`: a scenario may record none of some)."""
    rest: dict[str, list[Difference]] = {}
    seen: set[Intended] = set()
    for name, differences in found.items():
        for d in differences:
            match = next((i for i in intended if i.matches(name, d)), None)
            if match is None:
                rest.setdefault(name, []).append(d)
            else:
                seen.add(match)
    return rest, [i for i in intended if i not in seen and i.object in recorded]


def test_every_scenario_has_its_fixture() -> None:
    names = {s.name for s in SCENARIOS}
    files = {p.stem for p in fixture_path("x").parent.glob("*.json")}
    assert files == names, f"fixtures without a scenario: {sorted(files - names)}; " + (
        f"scenarios without a fixture: {sorted(names - files)}"
    )


def test_diff_names_each_kind_of_difference() -> None:
    docker = {"A": {"B": 0, "C": "<index:int>"}, "L": [1, 2], "V": "container"}
    shoal = {"A": {"C": "<index:str>", "D": None}, "L": [1], "V": ""}
    assert diff(docker, shoal) == [
        Difference("missing", "A.B", 0),
        Difference("type", "A.C", "<index:int>", "<index:str>"),
        Difference("extra", "A.D", shoal=None),
        Difference("missing", "L[1]", 2),
        Difference("value", "V", "container", ""),
    ]
    assert str(Difference("missing", "A.B", 0)) == "missing A.B: Docker 0 (int)"


def test_only_the_intended_differences_pass() -> None:
    heartbeat = Difference("value", "Spec.Dispatcher.HeartbeatPeriod", 5_000_000_000, 10**9)
    other = Difference("value", "Spec.Dispatcher.HeartbeatPeriod", 5_000_000_000, 2 * 10**9)
    labels = Difference("missing", "Spec.Labels", {})
    everything = {"swarm", "info_swarm", "node"}
    rest, unseen = unintended({"swarm": [heartbeat, labels], "node": [heartbeat]}, everything)
    assert rest == {"swarm": [labels], "node": [heartbeat]}
    assert [i.object for i in unseen] == ["info_swarm"]
    assert unintended({}, {"create_same_port"}) == ({}, [])
    rest, _ = unintended({"swarm": [other]}, everything)
    assert rest == {"swarm": [other]}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_objects_are_dockers(scenario: Scenario, swarm: Any) -> None:
    expected = load_fixture(scenario.name)
    assert expected["commands"] == scenario.commands, (
        f"{fixture_path(scenario.name)} was recorded with other commands: "
        f"run `{RECAPTURE.format(scenario.name)}`"
    )
    cli = cli_version()
    docker = expected_objects(expected, cli)
    assert docker is not None, (
        f"{fixture_path(scenario.name)} has no recording made with a docker CLI "
        f"{cli_major(cli)} ({cli}): re-capture with that CLI added, e.g. "
        f"`{RECAPTURE.format(scenario.name)} --docker docker --docker /usr/bin/docker "
        f"--docker {shlex.quote(docker_binary())}`"
    )
    try:
        rec = run_scenario(swarm.host, scenario, timeout=30, log=lambda: swarm.log_tail(40))
    except ScenarioError as e:
        pytest.fail(f"{scenario.name}: {e}")
    finally:
        remove_service(swarm.host, scenario.name)
    masked = mask(rec.objects)
    keep = os.environ.get("SHOAL_TEST_KEEP_OBJECTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for suffix, objects in ((".raw.json", rec.objects), (".json", masked)):
            text = json.dumps(objects, indent=2, sort_keys=True)
            Path(keep, scenario.name + suffix).write_text(text + "\n")
    found, unseen = unintended(diff_objects(docker, masked), set(docker))
    if found or unseen or rec.unsettled:
        count = sum(len(d) for d in found.values())
        pytest.fail(
            f"{scenario.name}: shoal's answers differ from {expected['recorded_with']['engine']}'s "
            f"({fixture_path(scenario.name).name}, docker CLI {cli_major(cli)}) "
            f"in {count} place(s)\n"
            + "".join(f"{u}\n" for u in rec.unsettled)
            + "".join(
                f"intended difference no longer seen (remove it from INTENDED): {i}\n"
                for i in unseen
            )
            + report(found),
            pytrace=False,
        )
