"""Pure decisions of `docker node promote/demote`: the quorum check for a demotion (SwarmKit's
`CanRemoveMember`) and which demoted managers the leader takes out of the cluster."""

from __future__ import annotations

from shoal.api.models import ManagerStatus, Node, NodeSpec, NodeStatus
from shoal.manager.controlapi.nodes import can_remove_member
from shoal.manager.roles import demoted


def node(id: str, role: str = "manager", reach: str | None = "reachable") -> Node:
    return Node(
        id=id,
        spec=NodeSpec(role=role, availability="active", labels={}),
        status=NodeStatus(state="ready"),
        manager_status=ManagerStatus(leader=False, reachability=reach, addr=f"{id}:2377")
        if reach is not None
        else None,
    )


def test_three_reachable_managers_may_lose_one() -> None:
    nodes = [node("m1"), node("m2"), node("m3")]
    assert all(can_remove_member(nodes, n.id) for n in nodes)


def test_a_reachable_manager_may_not_go_while_another_is_down() -> None:
    nodes = [node("m1"), node("m2"), node("m3", reach="unreachable")]
    assert not can_remove_member(nodes, "m1")  # the leader itself: same answer
    assert not can_remove_member(nodes, "m2")


def test_an_unreachable_manager_may_go_and_then_one_of_the_two_left() -> None:
    nodes = [node("m1"), node("m2"), node("m3", reach="unreachable")]
    assert can_remove_member(nodes, "m3")
    two = [node("m1"), node("m2")]
    assert can_remove_member(two, "m2")


def test_five_managers_with_two_down_lose_none_of_the_others() -> None:
    nodes = [node(f"m{i}") for i in range(1, 4)] + [
        node("m4", reach="unreachable"),
        node("m5", reach="unreachable"),
    ]
    assert not can_remove_member(nodes, "m3")
    assert can_remove_member(nodes, "m5")


def test_workers_and_managers_not_yet_members_do_not_count() -> None:
    nodes = [node("m1"), node("m2"), node("w1", role="worker", reach=None), node("p", reach=None)]
    assert can_remove_member(nodes, "m2")


def test_the_leader_takes_out_demoted_managers_but_itself() -> None:
    nodes = [
        node("m1", role="worker"),  # the leader, demoted: it hands over and goes itself
        node("m2", role="worker", reach="unreachable"),
        node("m3"),
        node("w1", role="worker", reach=None),
    ]
    assert [n.id for n in demoted(nodes, "m1")] == ["m2"]
