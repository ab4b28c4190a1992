"""`shoal lab` state: names, the address plan, persistence, subnet choice (no root needed)."""

from __future__ import annotations

import ipaddress

import pytest

from shoal.lab import state as lab_state
from shoal.lab.state import LabError, LabState, check_name


@pytest.fixture(autouse=True)
def lab_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOAL_LAB_DIR", str(tmp_path))
    monkeypatch.setattr(lab_state, "_local_networks", lambda: [])
    return tmp_path


@pytest.mark.parametrize("name", ["lab", "a", "e2e1f2e3f", "my-lab-2", "x" * 15])
def test_good_names(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "Lab", "1lab", "-lab", "lab_1", "x" * 16, "a/b", "a b"])
def test_bad_names(name):
    with pytest.raises(LabError):
        check_name(name)


def test_address_plan_and_names():
    st = LabState(name="lab", index=7)
    assert st.subnet == ipaddress.IPv4Network("10.211.7.0/24")
    assert (st.gateway, st.bridge, st.registry_addr) == ("10.211.7.1", "shl7", "10.211.7.2:5000")
    m1, w2, reg = st.new_node("manager", 1), st.new_node("worker", 2), st.new_node("registry", 1)
    assert (m1.name, m1.addr, m1.veth, m1.short) == ("lab-m1", "10.211.7.11", "shl7-m1", "m1")
    assert (w2.name, w2.addr, w2.veth) == ("lab-w2", "10.211.7.102", "shl7-w2")
    assert (reg.name, reg.addr) == ("lab-registry", "10.211.7.2")
    # Interface names fit IFNAMSIZ (15) at the limits of the plan.
    big = LabState(name="x" * 15, index=254)
    for node in (big.new_node("manager", 89), big.new_node("worker", 150)):
        assert len(node.veth) <= 15
        assert ipaddress.IPv4Address(node.addr) in big.subnet
    assert big.docker_host("n").endswith("/" + "x" * 15 + "/n/docker.sock")


def test_state_round_trip(lab_dir):
    st = LabState(name="lab", index=3)
    node = st.new_node("worker", 1)
    node.holder_pid, node.ns, node.cgroup_dirs = 42, {"net": "net:[1]"}, ["/sys/fs/cgroup/x"]
    st.nodes[node.name] = node
    st.save()
    assert (lab_dir / "lab" / "lab.json").exists()
    assert lab_state.load("lab") == st
    assert lab_state.find_node("lab-w1")[1] == node
    with pytest.raises(LabError):
        lab_state.find_node("lab-w9")


def test_damaged_state_is_reported(lab_dir):
    (lab_dir / "lab").mkdir()
    (lab_dir / "lab" / "lab.json").write_text("{ nope")
    with pytest.raises(LabError, match="damaged"):
        lab_state.load("lab")


def test_subnets_are_not_shared(monkeypatch):
    with lab_state.locked("a", create=True):
        a = lab_state.create("a")
    with lab_state.locked("b", create=True):
        b = lab_state.create("b")
    assert (a.index, b.index) == (1, 2)
    assert lab_state.create("a").index == 1  # existing state is kept
    # Networks in use on the machine are skipped.
    monkeypatch.setattr(
        lab_state, "_local_networks", lambda: [ipaddress.IPv4Network("10.211.3.0/24")]
    )
    with lab_state.locked("c", create=True):
        assert lab_state.create("c").index == 4
    assert [x.name for x in lab_state.all_labs()] == ["a", "b", "c"]


def test_locked_refuses_a_missing_lab():
    with pytest.raises(LabError, match="no lab"), lab_state.locked("nope", create=False):
        pass
