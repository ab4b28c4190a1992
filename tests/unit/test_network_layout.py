"""The data plane's pure parts: names, MACs, pools, the kernel layout wanted for a state and
the changes from what a host has."""

from __future__ import annotations

import pytest

from shoal.network import layout as L
from shoal.network.names import (
    is_host_leftover,
    mac_for,
    netns_name,
    parse_pool_id,
    peer_name,
    pool_id,
    temp_vxlan_name,
    veth_name,
)
from shoal.rpc.messages import EndpointRecord, NetworkPlan, NetworkState

HERE, THERE, ELSEWHERE = "10.0.0.1", "10.0.0.2", "10.0.0.3"
NET = "n1" + "a" * 23


def plan(net: str = NET, vni: int = 4097, subnet: str = "10.9.0.0/24", **kw: object) -> NetworkPlan:
    gw = subnet.rsplit(".", 1)[0] + ".1"
    return NetworkPlan(
        id=net, name=kw.pop("name", "front"), vni=vni, subnet=subnet, gateway=gw, **kw
    )  # type: ignore[arg-type]


def ep(ip: str, node: str, net: str = NET, names: tuple[str, ...] = ()) -> EndpointRecord:
    return EndpointRecord(network_id=net, ip=ip, node_addr=node, names=list(names))


def found_for(want: L.NetworkLayout) -> L.NetworkFound:
    """What the kernel holds once `want` was carried out."""
    return L.NetworkFound(
        netns=want.netns,
        bridge=True,
        bridge_up=True,
        bridge_mtu=want.vxlan.mtu,
        addresses=set(want.addresses),
        vxlan=L.VxlanFound(
            vni=want.vxlan.vni,
            local=want.vxlan.local,
            port=want.vxlan.port,
            learning=False,
            proxy=True,
            mtu=want.vxlan.mtu,
            on_bridge=True,
            up=True,
        ),
        fdb=dict(want.fdb),
        neighbours=dict(want.neighbours),
    )


# ---------------------------------------------------------------- names


def test_mac_derives_from_the_address() -> None:
    assert mac_for("10.0.9.3") == "02:42:0a:00:09:03"
    assert mac_for("172.18.255.1") == "02:42:ac:12:ff:01"


def test_device_names_fit_the_kernel_and_say_whose_they_are() -> None:
    eid = "f" * 64
    for name in (veth_name(eid), peer_name(eid), temp_vxlan_name(NET)):
        assert len(name) <= 15
    assert netns_name(NET) == "shoal-n1aaaaaaaaaa"
    assert is_host_leftover(peer_name(eid)) and is_host_leftover(temp_vxlan_name(NET))
    assert not is_host_leftover("eth0") and not is_host_leftover(veth_name(eid))


def test_pool_ids_name_the_network() -> None:
    assert parse_pool_id(pool_id(NET, "10.9.0.0/24")) == (NET, "10.9.0.0/24")
    for bad in ("", "10.9.0.0/24", "net", "net/notasubnet"):
        with pytest.raises(ValueError):
            parse_pool_id(bad)


# ---------------------------------------------------------------- desired


def test_remote_endpoints_get_forwarding_and_neighbour_entries_local_ones_none() -> None:
    state = NetworkState(
        networks=[plan()],
        endpoints=[ep("10.9.0.2", HERE), ep("10.9.0.3", THERE), ep("10.9.0.4", ELSEWHERE)],
    )
    want = L.desired(state, HERE)[netns_name(NET)]
    assert want.fdb == {mac_for("10.9.0.3"): THERE, mac_for("10.9.0.4"): ELSEWHERE}
    assert want.neighbours == {"10.9.0.3": mac_for("10.9.0.3"), "10.9.0.4": mac_for("10.9.0.4")}
    assert want.addresses == {"10.9.0.1/24", "169.254.254.53/32"}
    assert want.vxlan == L.VxlanSpec(vni=4097, local=HERE, port=4789, mtu=1450)
    assert "front" in want.alias and NET in want.alias


def test_an_address_moving_between_nodes_has_one_destination() -> None:
    state = NetworkState(
        networks=[plan()],
        endpoints=[ep("10.9.0.3", ELSEWHERE), ep("10.9.0.3", THERE), ep("10.9.0.5", THERE)],
    )
    want = L.desired(state, HERE)[netns_name(NET)]
    assert want.fdb[mac_for("10.9.0.3")] == THERE  # the lowest node address, every time
    # an address that is here too is local: no entry sends it away
    state.endpoints.append(ep("10.9.0.5", HERE))
    assert mac_for("10.9.0.5") not in L.desired(state, HERE)[netns_name(NET)].fdb


def test_endpoints_of_networks_not_in_the_state_are_ignored() -> None:
    state = NetworkState(networks=[plan()], endpoints=[ep("10.8.0.3", THERE, net="other")])
    assert L.desired(state, HERE)[netns_name(NET)].fdb == {}


# ---------------------------------------------------------------- changes


def test_a_new_network_is_made_whole() -> None:
    want = L.desired(NetworkState(networks=[plan()], endpoints=[ep("10.9.0.3", THERE)]), HERE)
    ns = netns_name(NET)
    out = L.changes(want, {})
    kinds = [type(c).__name__ for c in out]
    assert kinds == [
        "CreateNetns",
        "CreateBridge",
        "AddAddress",
        "AddAddress",
        "CreateVxlan",
        "AddFdb",
        "SetNeighbour",
    ]
    assert L.AddFdb(ns, mac_for("10.9.0.3"), THERE) in out
    assert all(c.netns == ns for c in out)


def test_what_matches_is_left_alone() -> None:
    want = L.desired(NetworkState(networks=[plan()], endpoints=[ep("10.9.0.3", THERE)]), HERE)
    found = {ns: found_for(layout) for ns, layout in want.items()}
    assert L.changes(want, found) == []


def test_a_removed_endpoint_loses_its_entries_and_nothing_else_changes() -> None:
    before = NetworkState(
        networks=[plan()], endpoints=[ep("10.9.0.3", THERE), ep("10.9.0.4", THERE)]
    )
    found = {ns: found_for(w) for ns, w in L.desired(before, HERE).items()}
    after = NetworkState(networks=[plan()], endpoints=[ep("10.9.0.4", THERE)])
    ns = netns_name(NET)
    assert L.changes(L.desired(after, HERE), found) == [
        L.DeleteFdb(ns, mac_for("10.9.0.3"), THERE),
        L.DeleteNeighbour(ns, "10.9.0.3"),
    ]


def test_an_endpoint_moved_to_another_node_is_pointed_there() -> None:
    before = NetworkState(networks=[plan()], endpoints=[ep("10.9.0.3", THERE)])
    found = {ns: found_for(w) for ns, w in L.desired(before, HERE).items()}
    after = NetworkState(networks=[plan()], endpoints=[ep("10.9.0.3", ELSEWHERE)])
    ns, mac = netns_name(NET), mac_for("10.9.0.3")
    assert L.changes(L.desired(after, HERE), found) == [
        L.DeleteFdb(ns, mac, THERE),
        L.AddFdb(ns, mac, ELSEWHERE),
    ]


def test_a_vxlan_device_that_does_not_match_is_made_anew_with_all_its_entries() -> None:
    state = NetworkState(networks=[plan()], endpoints=[ep("10.9.0.3", THERE)])
    want = L.desired(state, HERE)
    ns = netns_name(NET)
    found = found_for(want[ns])
    assert found.vxlan is not None
    found.vxlan.learning = True  # e.g. made by hand
    out = L.changes(want, {ns: found})
    assert [type(c).__name__ for c in out] == [
        "DeleteVxlan",
        "CreateVxlan",
        "AddFdb",
        "SetNeighbour",
    ]


def test_a_changed_mtu_or_a_down_device_is_set_not_recreated() -> None:
    want = L.desired(NetworkState(networks=[plan(mtu=1400)]), HERE)
    ns = netns_name(NET)
    found = found_for(L.desired(NetworkState(networks=[plan()]), HERE)[ns])
    assert L.changes(want, {ns: found}) == [L.SetBridge(ns, 1400), L.SetVxlan(ns, 1400)]


def test_namespaces_of_networks_no_longer_in_the_state_go_first() -> None:
    other = "n2" + "b" * 23
    want = L.desired(NetworkState(networks=[plan()]), HERE)
    found = {ns: found_for(w) for ns, w in want.items()}
    found[netns_name(other)] = L.NetworkFound(netns_name(other), bridge=True)
    assert L.changes(want, found) == [L.DeleteNetns(netns_name(other))]


def test_a_half_made_network_is_completed() -> None:
    want = L.desired(NetworkState(networks=[plan()]), HERE)
    ns = netns_name(NET)
    half = L.NetworkFound(
        ns, bridge=True, bridge_up=True, bridge_mtu=1450, addresses={"10.9.0.1/24"}
    )
    out = L.changes(want, {ns: half})
    assert out[0] == L.AddAddress(ns, "169.254.254.53/32")
    assert isinstance(out[1], L.CreateVxlan)
    stray = L.NetworkFound(
        ns, bridge=True, bridge_up=True, bridge_mtu=1450, addresses={"10.7.0.1/24"}
    )
    assert L.DeleteAddress(ns, "10.7.0.1/24") in L.changes(want, {ns: stray})
