"""The pure parts of several managers: Docker's refusals of a manager's leave, which nodes no
manager serves, a manager's reachability."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from shoal.api.models import ManagerStatus, Node, NodeStatus
from shoal.manager.controlapi.swarm import leave_refusal
from shoal.manager.monitor import reachability, unserved

START = "You are attempting to leave the swarm on a node that is participating as a manager. "
END = (
    "The only way to restore a swarm that has lost consensus is to reinitialize it with "
    "`--force-new-cluster`. Use `--force` to suppress this message."
)


def manager(id: str, reach: str = "reachable", state: str = "ready") -> Node:
    return Node(id=id, status=NodeStatus(state=state),
                manager_status=ManagerStatus(reachability=reach, addr=f"{id}:2377"))  # fmt: skip


def store(*nodes: Node) -> Any:
    return SimpleNamespace(nodes=lambda: list(nodes))


@pytest.mark.parametrize(
    ("nodes", "middle"),
    [
        ([manager("a")], "Removing the last manager erases all current state of the swarm. Use "
                         "`--force` to ignore this message. "),
        ([manager("a"), manager("b"), manager("c")], ""),
        ([manager("a"), manager("b"), manager("c", "unreachable")],
         "Removing this node leaves 1 managers out of 3. Without a Raft quorum your swarm will "
         "be inaccessible. "),
        ([manager(x) for x in "abcd"] + [manager("e", "unreachable"), manager("f", "unreachable")],
         "Removing this node leaves 3 managers out of 6. Without a Raft quorum your swarm will "
         "be inaccessible. "),
        ([manager(x) for x in "abc"] + [manager("d", "unreachable"), manager("e", "unreachable")],
         "Removing this node leaves 2 managers out of 5. Without a Raft quorum your swarm will "
         "be inaccessible. "),
    ],
    ids=["last", "three-up", "two-of-three", "four-of-six", "three-of-five"],
)  # fmt: skip
def test_a_managers_leave_is_refused_in_dockers_words(nodes: list[Node], middle: str) -> None:
    said = leave_refusal(store(*nodes), "a")
    assert said == START + middle + ("" if "last manager" in middle else END)


def test_without_a_quorum_the_counts_are_unknown() -> None:
    assert leave_refusal(None, "a") == START + END


def test_unserved_nodes_go_down_after_the_grace() -> None:
    nodes = [manager("a"), Node(id="w1"), Node(id="w2"), Node(id="w3", status=NodeStatus(
        state="down"))]  # fmt: skip
    since: dict[str, float] = {}
    assert unserved(nodes, {"a", "w1"}, since, now=100.0, limit=3.5) == []
    assert since == {"w2": 100.0}
    assert unserved(nodes, {"a", "w1"}, since, now=103.0, limit=3.5) == []
    # w2's agent reconnected to another manager meanwhile: it starts over.
    assert unserved(nodes, {"a", "w1", "w2"}, since, now=103.4, limit=3.5) == []
    assert since == {}
    assert unserved(nodes, {"a"}, since, now=104.0, limit=3.5) == []
    assert unserved(nodes, {"a"}, since, now=107.6, limit=3.5) == ["w1", "w2"]


def test_a_manager_is_reachable_while_its_node_is_claimed() -> None:
    assert reachability(manager("a"), {"a"}) is None
    assert reachability(manager("a"), set()) == "unreachable"
    assert reachability(manager("a", "unreachable"), {"a"}) == "reachable"
    assert reachability(manager("a", "unknown"), {"a"}) == "reachable"
    assert reachability(Node(id="w1"), set()) is None  # a worker has none
