"""Task → `POST /containers/create` body (`shoal.agent.container`), pure."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.agent.container import (
    create_body,
    port_status,
    stop_timeout,
    swarm_labels,
)
from shoal.api.models import ContainerSpec, PortConfig, Task
from shoal.api.naming import container_name

SEC = 1_000_000_000


def mk_task(
    container: dict[str, Any] | None = None,
    *,
    resources: dict[str, Any] | None = None,
    slot: int | None = 2,
    node: str = "node1",
    tid: str = "taskid1",
    log_driver: dict[str, Any] | None = None,
) -> Task:
    spec: dict[str, Any] = {"ContainerSpec": {"Image": "busybox:1", **(container or {})}}
    if resources is not None:
        spec["Resources"] = resources
    if log_driver is not None:
        spec["LogDriver"] = log_driver
    data: dict[str, Any] = {
        "ID": tid,
        "ServiceID": "svcid1",
        "NodeID": node,
        "Spec": spec,
        "DesiredState": "running",
        "Status": {"State": "assigned"},
    }
    if slot is not None:
        data["Slot"] = slot
    return Task.model_validate(data)


def ports(*specs: dict[str, Any]) -> list[PortConfig]:
    return [PortConfig.model_validate(p) for p in specs]


# ---------------------------------------------------------------- name and labels


def test_container_name_replicated() -> None:
    assert container_name(mk_task(slot=3), "web") == "web.3.taskid1"


def test_container_name_global_uses_node_id() -> None:
    assert container_name(mk_task(slot=None, node="nodeA"), "agent") == "agent.nodeA.taskid1"


def test_swarm_labels() -> None:
    labels = create_body(mk_task(), "web", None)["Labels"]
    assert labels["com.docker.swarm.service.id"] == "svcid1"
    assert labels["com.docker.swarm.service.name"] == "web"
    assert labels["com.docker.swarm.task.id"] == "taskid1"
    assert labels["com.docker.swarm.task.name"] == "web.2.taskid1"
    assert labels["com.docker.swarm.node.id"] == "node1"
    assert labels["com.docker.swarm.task"] == ""
    assert swarm_labels(mk_task(), "web") == {
        k: v for k, v in labels.items() if k.startswith("com.docker.swarm.")
    }


def test_user_labels_kept_and_swarm_labels_win() -> None:
    t = mk_task({"Labels": {"app": "x", "com.docker.swarm.task.id": "forged"}})
    labels = create_body(t, "web", None)["Labels"]
    assert labels["app"] == "x"
    assert labels["com.docker.swarm.task.id"] == "taskid1"


# ---------------------------------------------------------------- process


def test_image_env_and_defaults() -> None:
    body = create_body(mk_task({"Env": ["A=1", "B=two words"]}), "web", None)
    assert body["Image"] == "busybox:1"
    assert body["Env"] == ["A=1", "B=two words"]
    assert body["Tty"] is False
    assert body["OpenStdin"] is False
    assert body["HostConfig"]["RestartPolicy"] == {"Name": "no"}  # swarm restarts, not the engine
    for absent in ("Entrypoint", "Cmd", "WorkingDir", "User", "Hostname", "Healthcheck"):
        assert absent not in body


def test_no_env_is_an_empty_list() -> None:
    assert create_body(mk_task(), "web", None)["Env"] == []


def test_command_is_entrypoint_and_args_are_cmd() -> None:
    t = mk_task({"Command": ["/bin/sh", "-c"], "Args": ["echo hi; sleep 5"]})
    body = create_body(t, "web", None)
    assert body["Entrypoint"] == ["/bin/sh", "-c"]
    assert body["Cmd"] == ["echo hi; sleep 5"]


def test_args_alone_keep_the_image_entrypoint() -> None:
    body = create_body(mk_task({"Args": ["sleep", "10"]}), "web", None)
    assert "Entrypoint" not in body
    assert body["Cmd"] == ["sleep", "10"]


def test_dir_user_hostname_tty_stop_signal() -> None:
    t = mk_task(
        {
            "Dir": "/srv",
            "User": "1000:1000",
            "Hostname": "web-host",
            "TTY": True,
            "OpenStdin": True,
            "StopSignal": "SIGINT",
        }
    )
    body = create_body(t, "web", None)
    assert body["WorkingDir"] == "/srv"
    assert body["User"] == "1000:1000"
    assert body["Hostname"] == "web-host"
    assert body["Tty"] is True
    assert body["OpenStdin"] is True
    assert body["StopSignal"] == "SIGINT"


def test_templates_in_hostname_env_and_mount_source_are_expanded() -> None:
    """`docker service create --hostname "{{.Node.ID}}-{{.Service.Name}}" --env
    "SLOT={{.Task.Slot}}"`: SwarmKit expands these placeholders per task (template
    ExpandContainerSpec) before the container is created."""
    t = mk_task(
        {
            "Hostname": "{{.Service.Name}}-{{.Task.Slot}}",
            "Env": ["NODE={{.Node.ID}}", "TASK={{.Task.Name}}", "SID={{.Service.ID}}"],
            "Mounts": [{"Type": "volume", "Source": "data-{{.Task.Slot}}", "Target": "/d"}],
        }
    )
    body = create_body(t, "web", None)
    assert body["Hostname"] == "web-2"
    assert body["Env"] == ["NODE=node1", "TASK=web.2.taskid1", "SID=svcid1"]
    assert body["HostConfig"]["Mounts"][0]["Source"] == "data-2"


# ---------------------------------------------------------------- host config


def test_mounts_bind_volume_tmpfs() -> None:
    mounts = [
        {
            "Type": "bind",
            "Source": "/data",
            "Target": "/d",
            "ReadOnly": True,
            "BindOptions": {"Propagation": "rprivate"},
        },
        {
            "Type": "volume",
            "Source": "vol1",
            "Target": "/v",
            "VolumeOptions": {"NoCopy": True, "Labels": {"k": "v"}},
        },
        {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1 << 20, "Mode": 0o1777}},
    ]
    body = create_body(mk_task({"Mounts": mounts}), "web", None)
    assert body["HostConfig"]["Mounts"] == mounts


def test_no_mounts_no_key() -> None:
    assert "Mounts" not in create_body(mk_task(), "web", None)["HostConfig"]


def test_healthcheck_passed_with_engine_names() -> None:
    hc = {
        "Test": ["CMD", "true"],
        "Interval": 2 * SEC,
        "Timeout": SEC,
        "Retries": 3,
        "StartPeriod": 5 * SEC,
    }
    body = create_body(mk_task({"Healthcheck": hc}), "web", None)
    assert body["Healthcheck"] == hc


def test_healthcheck_none_disables_image_healthcheck() -> None:
    body = create_body(mk_task({"Healthcheck": {"Test": ["NONE"]}}), "web", None)
    assert body["Healthcheck"] == {"Test": ["NONE"]}


def test_limits_and_reservations() -> None:
    res = {
        "Limits": {"NanoCPUs": 1_500_000_000, "MemoryBytes": 64 << 20, "Pids": 100},
        "Reservations": {"NanoCPUs": 500_000_000, "MemoryBytes": 32 << 20},
    }
    host = create_body(mk_task(resources=res), "web", None)["HostConfig"]
    assert host["NanoCpus"] == 1_500_000_000
    assert host["Memory"] == 64 << 20
    assert host["PidsLimit"] == 100
    assert host["MemoryReservation"] == 32 << 20


def test_no_limits_no_keys() -> None:
    host = create_body(mk_task(resources={"Limits": {}, "Reservations": {}}), "web", None)[
        "HostConfig"
    ]
    for key in ("NanoCpus", "Memory", "PidsLimit", "MemoryReservation"):
        assert key not in host


@pytest.mark.parametrize("init", [True, False])
def test_init_passed_through(init: bool) -> None:
    assert create_body(mk_task({"Init": init}), "web", None)["HostConfig"]["Init"] is init


def test_init_unset_leaves_the_daemon_default() -> None:
    assert "Init" not in create_body(mk_task(), "web", None)["HostConfig"]


def test_read_only_groups_caps_sysctls() -> None:
    t = mk_task(
        {
            "ReadOnly": True,
            "Groups": ["audio"],
            "CapabilityAdd": ["NET_ADMIN"],
            "CapabilityDrop": ["MKNOD"],
            "Sysctls": {"net.core.somaxconn": "1024"},
        }
    )
    host = create_body(t, "web", None)["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert host["GroupAdd"] == ["audio"]
    assert host["CapAdd"] == ["NET_ADMIN"]
    assert host["CapDrop"] == ["MKNOD"]
    assert host["Sysctls"] == {"net.core.somaxconn": "1024"}


def test_hosts_and_dns() -> None:
    t = mk_task(
        {
            "Hosts": ["10.0.0.5 db db.local"],
            "DNSConfig": {
                "Nameservers": ["8.8.8.8"],
                "Search": ["example.com"],
                "Options": ["ndots:2"],
            },
        }
    )
    host = create_body(t, "web", None)["HostConfig"]
    assert host["ExtraHosts"] == ["db:10.0.0.5"]
    assert host["Dns"] == ["8.8.8.8"]
    assert host["DnsSearch"] == ["example.com"]
    assert host["DnsOptions"] == ["ndots:2"]


def test_log_driver() -> None:
    t = mk_task(log_driver={"Name": "json-file", "Options": {"max-size": "1m"}})
    host = create_body(t, "web", None)["HostConfig"]
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m"}}


# ---------------------------------------------------------------- ports


def test_host_mode_ports_are_bound() -> None:
    p = ports(
        {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "host"},
        {"Protocol": "udp", "TargetPort": 53, "PublishedPort": 5353, "PublishMode": "host"},
    )
    body = create_body(mk_task(), "web", p)
    assert body["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert body["HostConfig"]["PortBindings"] == {
        "80/tcp": [{"HostIp": "", "HostPort": "8080"}],
        "53/udp": [{"HostIp": "", "HostPort": "5353"}],
    }


def test_host_mode_port_without_published_port_is_dynamic() -> None:
    p = ports({"TargetPort": 80, "PublishMode": "host"})
    body = create_body(mk_task(), "web", p)
    assert body["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": ""}]}


def test_ingress_ports_are_not_bound_on_the_container() -> None:
    p = ports(
        {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "ingress"}
    )
    body = create_body(mk_task(), "web", p)
    assert "ExposedPorts" not in body
    assert "PortBindings" not in body["HostConfig"]


def test_port_status_reads_dynamic_host_port() -> None:
    p = ports(
        {"Protocol": "tcp", "TargetPort": 80, "PublishMode": "host"},
        {"Protocol": "tcp", "TargetPort": 81, "PublishedPort": 9000, "PublishMode": "host"},
        {"Protocol": "tcp", "TargetPort": 82, "PublishedPort": 9001, "PublishMode": "ingress"},
    )
    inspect = {
        "NetworkSettings": {
            "Ports": {
                "80/tcp": [
                    {"HostIp": "0.0.0.0", "HostPort": "32768"},
                    {"HostIp": "::", "HostPort": "32768"},
                ],
                "81/tcp": [{"HostIp": "0.0.0.0", "HostPort": "9000"}],
            }
        }
    }
    out = port_status(inspect, p)
    assert [(q.target_port, q.published_port, q.publish_mode) for q in out] == [
        (80, 32768, "host"),
        (81, 9000, "host"),
    ]


def test_port_status_of_stopped_container_keeps_spec_ports() -> None:
    p = ports({"TargetPort": 80, "PublishedPort": 8080, "PublishMode": "host"})
    assert [q.published_port for q in port_status({}, p)] == [8080]


# ---------------------------------------------------------------- stop grace period


@pytest.mark.parametrize(
    ("grace_ns", "seconds"),
    [
        (None, 10),  # Docker's default grace period
        (0, 0),
        (SEC, 1),
        (30 * SEC, 30),
        (1_500_000_000, 2),  # partial seconds round up: never cut the grace period short
        (1, 1),
        (SEC - 1, 1),
    ],
)
def test_stop_timeout_rounding(grace_ns: int | None, seconds: int) -> None:
    spec = ContainerSpec(image="x", stop_grace_period=grace_ns)
    assert stop_timeout(spec) == seconds
    assert (
        create_body(
            mk_task({"StopGracePeriod": grace_ns} if grace_ns is not None else {}), "w", None
        )["StopTimeout"]
        == seconds
    )
