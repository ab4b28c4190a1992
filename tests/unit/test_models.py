"""The swarm models (`shoal.api.models`) against Docker's JSON: round trips of real request and
response bodies, and every declared field name checked against the Engine API swagger."""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import pkgutil
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from shoal.api import models as M

# shared/ stands beside the repository (in CI too); /work/shared on the developers' machines.
_SHARED = Path(__file__).resolve().parents[3] / "shared"
ANCHORS = (_SHARED if _SHARED.is_dir() else Path("/work/shared")) / "anchors" / "docker-engine-api"
SWAGGERS = ("v1.41.yaml", "swagger.yaml")  # the API shoal answers to is between the two
SEC = 1_000_000_000


def roundtrip(cls: type[M.Model], body: dict[str, Any]) -> dict[str, Any]:
    """A Docker answer read and written again as shoal's API writes it."""
    return cls.from_api(copy.deepcopy(body)).to_api()


def kept(cls: type[M.Model], body: dict[str, Any]) -> dict[str, Any]:
    """A request body read and written again as the store keeps it (`store/kinds.py`)."""
    return cls.from_api(copy.deepcopy(body)).model_dump(by_alias=True, exclude_none=True)


def drop_nulls(value: Any) -> Any:
    """Go sends `"Labels": null` for a nil map; the models leave empty fields out
    (omitempty). Only *declared* nulls go: nulls inside undeclared (extra) fields stay."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


# ---------------------------------------------------------------- request bodies

# docker-cli-api-surface.md §3.5.2: `docker service create --replicas 2 --name web
# --publish published=80,target=80 nginx:alpine`, as observed on the wire.
SERVICE_CREATE = {
    "Name": "web",
    "Labels": {},
    "TaskTemplate": {
        "ContainerSpec": {"Image": "nginx:alpine", "Init": False, "DNSConfig": {}},
        "Resources": {"Limits": {}, "Reservations": {}},
        "Placement": {},
        "ForceUpdate": 0,
    },
    "Mode": {"Replicated": {"Replicas": 2}},
    "EndpointSpec": {
        "Mode": "vip",
        "Ports": [
            {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 80, "PublishMode": "ingress"}
        ],
    },
}

# §3.14: `docker stack deploy`, service with secrets, configs and a network by name.
STACK_SERVICE = {
    "Name": "st_web",
    "Labels": {"com.docker.stack.image": "nginx:alpine", "com.docker.stack.namespace": "st"},
    "TaskTemplate": {
        "ContainerSpec": {
            "Image": "nginx:alpine",
            "Labels": {"com.docker.stack.namespace": "st"},
            "Privileges": {
                "CredentialSpec": None,
                "SELinuxContext": None,
                "NoNewPrivileges": False,
            },
            "Secrets": [
                {
                    "File": {"Name": "s2", "UID": "0", "GID": "0", "Mode": 292},
                    "SecretID": "sec123",
                    "SecretName": "s2",
                }
            ],
            "Configs": [
                {
                    "File": {"Name": "c2", "UID": "0", "GID": "0", "Mode": 292},
                    "ConfigID": "con123",
                    "ConfigName": "c2",
                }
            ],
        },
        "Resources": {},
        "Placement": {},
        "Networks": [{"Target": "st_front", "Aliases": ["web"]}],
        "ForceUpdate": 0,
    },
    "Mode": {"Replicated": {"Replicas": 2}},
    "EndpointSpec": {
        "Ports": [
            {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "ingress"}
        ]
    },
}

# A create with most flags the CLI has (shape of the docker CLI 28 body).
SERVICE_CREATE_FULL = {
    "Name": "batch",
    "Labels": {"team": "a"},
    "TaskTemplate": {
        "ContainerSpec": {
            "Image": "busybox:1.36@sha256:" + "a" * 64,
            "Labels": {"c": "d"},
            "Command": ["/bin/sh", "-c"],
            "Args": ["echo hi"],
            "Hostname": "h1",
            "Env": ["A=1"],
            "Dir": "/srv",
            "User": "1000",
            "Groups": ["audio"],
            "TTY": True,
            "OpenStdin": True,
            "ReadOnly": True,
            "Mounts": [
                {
                    "Type": "bind",
                    "Source": "/data",
                    "Target": "/d",
                    "ReadOnly": True,
                    "BindOptions": {"Propagation": "rslave"},
                },
                {
                    "Type": "volume",
                    "Source": "v",
                    "Target": "/v",
                    "VolumeOptions": {
                        "NoCopy": True,
                        "Labels": {"x": "y"},
                        "DriverConfig": {"Name": "local", "Options": {"o": "bind"}},
                    },
                },
                {
                    "Type": "tmpfs",
                    "Target": "/t",
                    "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 1023},
                },
            ],
            "StopSignal": "SIGINT",
            "StopGracePeriod": 20 * SEC,
            "Healthcheck": {
                "Test": ["CMD-SHELL", "true"],
                "Interval": 2 * SEC,
                "Timeout": SEC,
                "Retries": 3,
                "StartPeriod": 5 * SEC,
            },
            "Hosts": ["10.0.0.1 db"],
            "DNSConfig": {"Nameservers": ["8.8.8.8"], "Search": ["x.org"], "Options": ["ndots:1"]},
            "Isolation": "default",
            "Init": True,
            "Sysctls": {"net.core.somaxconn": "1024"},
            "CapabilityAdd": ["NET_ADMIN"],
            "CapabilityDrop": ["MKNOD"],
            "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}],
        },
        "Resources": {
            "Limits": {"NanoCPUs": 500000000, "MemoryBytes": 67108864, "Pids": 100},
            "Reservations": {
                "NanoCPUs": 250000000,
                "MemoryBytes": 33554432,
                "GenericResources": [{"DiscreteResourceSpec": {"Kind": "gpu", "Value": 1}}],
            },
        },
        "RestartPolicy": {
            "Condition": "on-failure",
            "Delay": 5 * SEC,
            "MaxAttempts": 3,
            "Window": 60 * SEC,
        },
        "Placement": {
            "Constraints": ["node.role==worker", "node.labels.zone==a"],
            "Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}],
            "MaxReplicas": 2,
            "Platforms": [{"Architecture": "amd64", "OS": "linux"}],
        },
        "Networks": [{"Target": "net1", "Aliases": ["b"], "DriverOpts": {"k": "v"}}],
        "LogDriver": {"Name": "json-file", "Options": {"max-size": "1m"}},
        "ForceUpdate": 1,
        "Runtime": "container",
    },
    "Mode": {"ReplicatedJob": {"MaxConcurrent": 2, "TotalCompletions": 4}},
    "UpdateConfig": {
        "Parallelism": 2,
        "Delay": SEC,
        "FailureAction": "pause",
        "Monitor": 5 * SEC,
        "MaxFailureRatio": 0.25,
        "Order": "start-first",
    },
    "RollbackConfig": {
        "Parallelism": 1,
        "FailureAction": "pause",
        "Monitor": 5 * SEC,
        "MaxFailureRatio": 0,
        "Order": "stop-first",
    },
    "EndpointSpec": {
        "Mode": "dnsrr",
        "Ports": [
            {
                "Name": "http",
                "Protocol": "udp",
                "TargetPort": 53,
                "PublishedPort": 5353,
                "PublishMode": "host",
            }
        ],
    },
}

# §3.3: the Spec of `docker swarm init`'s body, as observed.
SWARM_INIT_SPEC = {
    "Labels": None,
    "Orchestration": {},
    "Raft": {"ElectionTick": 0, "HeartbeatTick": 0},
    "Dispatcher": {},
    "CAConfig": {},
    "TaskDefaults": {},
    "EncryptionConfig": {"AutoLockManagers": False},
}

# `docker swarm update --task-history-limit 10 --cert-expiry 48h …`: a full SwarmSpec.
SWARM_SPEC_FULL = {
    "Name": "default",
    "Labels": {"a": "b"},
    "Orchestration": {"TaskHistoryRetentionLimit": 10},
    "Raft": {
        "SnapshotInterval": 10000,
        "KeepOldSnapshots": 0,
        "LogEntriesForSlowFollowers": 500,
        "ElectionTick": 10,
        "HeartbeatTick": 1,
    },
    "Dispatcher": {"HeartbeatPeriod": 5 * SEC},
    "CAConfig": {
        "NodeCertExpiry": 48 * 3600 * SEC,
        "ExternalCAs": [{"Protocol": "cfssl", "URL": "https://ca.example", "Options": {}}],
        "ForceRotate": 1,
    },
    "TaskDefaults": {"LogDriver": {"Name": "json-file"}},
    "EncryptionConfig": {"AutoLockManagers": True},
}

# §3.4: `docker node update --availability drain self`.
NODE_SPEC = {"Labels": {}, "Role": "manager", "Availability": "drain"}


@pytest.mark.parametrize(
    "body",
    [SERVICE_CREATE, STACK_SERVICE, SERVICE_CREATE_FULL],
    ids=["service-create", "stack-deploy", "service-create-full"],
)
def test_service_spec_round_trip(body: dict[str, Any]) -> None:
    assert kept(M.ServiceSpec, body) == body


def test_service_create_without_replicas_keeps_empty_replicated() -> None:
    body = {**SERVICE_CREATE, "Mode": {"Replicated": {}}}
    spec = M.ServiceSpec.from_api(body)
    assert spec.mode.kind == "replicated"
    assert spec.to_api()["Mode"] == {"Replicated": {}}


@pytest.mark.parametrize(
    ("mode", "kind"),
    [
        ({"Replicated": {"Replicas": 1}}, "replicated"),
        ({"Global": {}}, "global"),
        ({"ReplicatedJob": {"MaxConcurrent": 1}}, "replicated-job"),
        ({"GlobalJob": {}}, "global-job"),
    ],
)
def test_service_modes(mode: dict[str, Any], kind: str) -> None:
    spec = M.ServiceSpec.from_api({"Name": "x", "TaskTemplate": {}, "Mode": mode})
    assert spec.mode.kind == kind
    assert spec.to_api()["Mode"] == mode


def test_parsed_fields_land_on_attributes_not_extras() -> None:
    spec = M.ServiceSpec.from_api(SERVICE_CREATE_FULL)
    cs = spec.task_template.container_spec
    assert cs is not None
    assert (
        cs.tty is True
        and cs.dns_config == SERVICE_CREATE_FULL["TaskTemplate"]["ContainerSpec"]["DNSConfig"]
    )
    assert cs.healthcheck is not None and cs.healthcheck.retries == 3
    assert cs.stop_grace_period == 20 * SEC
    assert spec.task_template.resources.limits.nano_cpus == 500000000
    assert spec.task_template.restart_policy.max_attempts == 3
    assert spec.mode.replicated_job.total_completions == 4
    assert spec.update_config.order == "start-first"
    assert spec.endpoint_spec.ports[0].publish_mode == "host"
    # Declared fields must not be shadowed by extras of the same JSON name.
    for model in (spec, spec.task_template, cs, spec.task_template.resources.limits):
        declared = {f.alias for f in type(model).model_fields.values()}
        assert not declared & set(model.model_extra or {}), type(model).__name__


def test_undeclared_fields_are_kept_verbatim() -> None:
    spec = M.ServiceSpec.from_api(STACK_SERVICE)
    out = spec.to_api()["TaskTemplate"]["ContainerSpec"]
    # NoNewPrivileges false is left out, as Docker 20.10 shows it (it has no such field)
    assert out["Privileges"] == {"CredentialSpec": None, "SELinuxContext": None}
    body = copy.deepcopy(STACK_SERVICE)
    body["TaskTemplate"]["ContainerSpec"]["Privileges"]["NoNewPrivileges"] = True
    out = M.ServiceSpec.from_api(body).to_api()["TaskTemplate"]["ContainerSpec"]
    assert out["Privileges"]["NoNewPrivileges"] is True


def test_swarm_init_spec_round_trip() -> None:
    assert kept(M.SwarmSpec, SWARM_INIT_SPEC) == drop_nulls(SWARM_INIT_SPEC)


def test_swarm_spec_full_round_trip() -> None:
    assert kept(M.SwarmSpec, SWARM_SPEC_FULL) == SWARM_SPEC_FULL
    spec = M.SwarmSpec.from_api(SWARM_SPEC_FULL)
    assert spec.orchestration.task_history_retention_limit == 10
    assert spec.ca_config.node_cert_expiry == 48 * 3600 * SEC
    assert spec.dispatcher.heartbeat_period == 5 * SEC
    assert spec.encryption_config.auto_lock_managers is True


def test_node_spec_round_trip() -> None:
    assert kept(M.NodeSpec, NODE_SPEC) == NODE_SPEC
    spec = M.NodeSpec.from_api(NODE_SPEC)
    assert (spec.role, spec.availability, spec.labels) == ("manager", "drain", {})


# ---------------------------------------------------------------- response objects

NODE = {
    "ID": "24ifsmvkjbyhk",
    "Version": {"Index": 8},
    "CreatedAt": "2016-06-07T20:31:11.853781916Z",
    "UpdatedAt": "2016-06-07T20:31:11.999868824Z",
    "Spec": {
        "Name": "my-node",
        "Role": "manager",
        "Availability": "active",
        "Labels": {"foo": "bar"},
    },
    "Description": {
        "Hostname": "bf3067039e47",
        "Platform": {"Architecture": "x86_64", "OS": "linux"},
        "Resources": {
            "NanoCPUs": 4000000000,
            "MemoryBytes": 8272408576,
            "GenericResources": [{"NamedResourceSpec": {"Kind": "gpu", "Value": "GPU-1"}}],
        },
        "Engine": {
            "EngineVersion": "24.0.7",
            "Labels": {"foo": "bar"},
            "Plugins": [
                {"Type": "Log", "Name": "json-file"},
                {"Type": "Network", "Name": "overlay"},
            ],
        },
        "TLSInfo": {
            "TrustRoot": "-----BEGIN CERTIFICATE-----\n…\n-----END CERTIFICATE-----\n",
            "CertIssuerSubject": "MBMxETAPBgNVBAMTCHN3YXJtLWNh",
            "CertIssuerPublicKey": "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE",
        },
    },
    "Status": {"State": "ready", "Message": "", "Addr": "172.17.0.2"},
    "ManagerStatus": {"Leader": True, "Reachability": "reachable", "Addr": "10.0.0.46:2377"},
}

# A spec as Docker answers it: what moby's conversion always fills in.
SERVICE_SPEC = {
    **SERVICE_CREATE,
    "TaskTemplate": {
        **SERVICE_CREATE["TaskTemplate"],
        "ContainerSpec": {
            **SERVICE_CREATE["TaskTemplate"]["ContainerSpec"],
            "Isolation": "default",
        },
        "Runtime": "container",
    },
}

SERVICE = {
    "ID": "9mnpnzenvg8p8tdbtq4wvbkcz",
    "Version": {"Index": 19},
    "CreatedAt": "2016-06-07T21:05:51.880065305Z",
    "UpdatedAt": "2016-06-07T21:07:29.962229872Z",
    "Spec": SERVICE_SPEC,
    "PreviousSpec": {**SERVICE_SPEC, "Mode": {"Replicated": {"Replicas": 1}}},
    "Endpoint": {
        "Spec": {"Mode": "vip", "Ports": SERVICE_CREATE["EndpointSpec"]["Ports"]},
        "Ports": SERVICE_CREATE["EndpointSpec"]["Ports"],
        "VirtualIPs": [{"NetworkID": "4qvuz4ko70xaltuqbt8956gd1", "Addr": "10.255.0.2/16"}],
    },
    "UpdateStatus": {
        "State": "completed",
        "StartedAt": "2016-06-07T21:07:00Z",
        "CompletedAt": "2016-06-07T21:07:29.962229872Z",
        "Message": "update completed",
    },
    "ServiceStatus": {"RunningTasks": 2, "DesiredTasks": 2, "CompletedTasks": 0},
}

JOB_SERVICE = {
    "ID": "jobid",
    "Version": {"Index": 3},
    "Spec": {
        "Name": "batch",
        "Labels": {},
        "TaskTemplate": {
            "ContainerSpec": {"Image": "busybox", "Isolation": "default"},
            "ForceUpdate": 0,
            "Runtime": "container",
        },
        "Mode": {"ReplicatedJob": {"MaxConcurrent": 2, "TotalCompletions": 4}},
    },
    "Endpoint": {"Spec": {}},
    "JobStatus": {"JobIteration": {"Index": 1}, "LastExecution": "2020-01-01T00:00:00Z"},
}

TASK = {
    "ID": "0kzzo1i0y4jz6027t0k7aezc7",
    "Version": {"Index": 71},
    "CreatedAt": "2016-06-07T21:07:31.171892745Z",
    "UpdatedAt": "2016-06-07T21:07:31.376370513Z",
    "Name": "web.1.0kzzo1i0y4jz6027t0k7aezc7",
    "Labels": {},
    "Spec": {
        "ContainerSpec": {"Image": "redis", "Isolation": "default"},
        "ForceUpdate": 0,
        "Resources": {"Limits": {}, "Reservations": {}},
        "RestartPolicy": {"Condition": "any", "MaxAttempts": 0},
        "Placement": {},
    },
    "ServiceID": "9mnpnzenvg8p8tdbtq4wvbkcz",
    "Slot": 1,
    "NodeID": "60gvrl6tm78dmak4yl7srz94v",
    "AssignedGenericResources": [{"DiscreteResourceSpec": {"Kind": "SSD", "Value": 3}}],
    "Status": {
        "Timestamp": "2016-06-07T21:07:31.290032978Z",
        "State": "running",
        "Message": "started",
        "Err": "",
        "ContainerStatus": {
            "ContainerID": "e5d62702a1b48d01c3e02ca1e0212a250801fa8d67caca0b6f35919ebc12f035",
            "PID": 677,
            "ExitCode": 0,
        },
        "PortStatus": {
            "Ports": [
                {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 30000, "PublishMode": "host"}
            ]
        },
    },
    "DesiredState": "running",
    "NetworksAttachments": [
        {"Network": {"ID": "4qvuz4ko70xaltuqbt8956gd1"}, "Addresses": ["10.255.0.10/16"]}
    ],
    "JobIteration": {},
}

SWARM = {
    "ID": "abajmipo7b4xz5ip2nrla6b11",
    "Version": {"Index": 373531},
    "CreatedAt": "2016-08-18T10:44:24.496525531Z",
    "UpdatedAt": "2017-08-09T07:09:37.632105588Z",
    "Spec": SWARM_SPEC_FULL,
    "TLSInfo": {
        "TrustRoot": "-----BEGIN CERTIFICATE-----\n",
        "CertIssuerSubject": "MBMx",
        "CertIssuerPublicKey": "MFkw",
    },
    "RootRotationInProgress": False,
    "DataPathPort": 4789,
    "DefaultAddrPool": ["10.10.0.0/16", "20.20.0.0/16"],
    "SubnetSize": 24,
    "JoinTokens": {
        "Worker": "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2-1awxwuwd3z9j1z3puu7rc",
        "Manager": "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2-7p73s1dx5in4tatdymyhg",
    },
}


@pytest.mark.parametrize(
    ("cls", "body"),
    [
        (M.Node, NODE),
        (M.Service, SERVICE),
        (M.Service, JOB_SERVICE),
        (M.Task, TASK),
        (M.Swarm, SWARM),
    ],
    ids=["node", "service", "job-service", "task", "swarm"],
)
def test_object_round_trip(cls: type[M.Model], body: dict[str, Any]) -> None:
    assert roundtrip(cls, body) == body


def test_task_fields_parse() -> None:
    t = M.Task.from_api(TASK)
    assert (t.id, t.slot, t.node_id, t.service_id) == (
        TASK["ID"],
        1,
        TASK["NodeID"],
        TASK["ServiceID"],
    )
    assert t.version.index == 71
    assert t.status.container_status.pid == 677
    assert t.status.port_status.ports[0].published_port == 30000
    assert t.job_iteration.index == 0


def test_special_json_spellings() -> None:
    """The names Docker does not spell in plain PascalCase."""
    out = M.Task(id="x", node_id="n", service_id="s").to_api()
    assert {"ID", "NodeID", "ServiceID"} <= set(out)
    assert M.Resources(nano_cpus=1).to_api() == {"NanoCPUs": 1}
    assert M.ContainerSpec(tty=True, dns_config={}).to_api() == {
        "TTY": True, "DNSConfig": {}, "Isolation": "default"
    }  # fmt: skip
    assert M.ContainerStatus(container_id="c", pid=1).to_api() == {
        "ContainerID": "c", "PID": 1, "ExitCode": 0
    }  # fmt: skip
    assert M.SwarmSpec().to_api()["CAConfig"] == {}
    assert M.Swarm(tls_info=M.TLSInfo(trust_root="x")).to_api()["TLSInfo"] == {"TrustRoot": "x"}
    assert "Global" in M.ServiceMode.from_api({"Global": {}}).to_api()


# ---------------------------------------------------------------- as Docker's Go types write them


def test_fields_docker_always_writes() -> None:
    spec = M.ServiceSpec.from_api(
        {"Name": "web", "TaskTemplate": {"ContainerSpec": {"Image": "a"}}, "UpdateConfig": {}}
    )
    out = M.Service(id="s", spec=spec, previous_spec=spec).to_api()
    for key in ("Spec", "PreviousSpec"):
        assert out[key]["Labels"] == {}
        task = out[key]["TaskTemplate"]
        assert (task["Runtime"], task["ForceUpdate"]) == ("container", 0)
        assert task["ContainerSpec"] == {"Image": "a", "Isolation": "default"}
        assert out[key]["UpdateConfig"] == {
            "Parallelism": 0, "FailureAction": "pause", "MaxFailureRatio": 0,
            "Order": "stop-first",
        }  # fmt: skip
    assert out["Endpoint"] == {"Spec": {}}
    rp = M.RestartPolicy(condition="none").to_api()
    assert rp == {"Condition": "none", "MaxAttempts": 0}


def test_fields_go_leaves_out_or_writes_otherwise() -> None:
    task = M.Task(
        id="t", slot=0, spec=M.TaskSpec.from_api({"Runtime": "container"}),
        job_iteration=M.JobIteration(index=0), endpoint=M.Endpoint(),
        status=M.TaskStatus(container_status=M.ContainerStatus(container_id="c", pid=7)),
    ).to_api()  # fmt: skip
    assert "Slot" not in task and "Endpoint" not in task and task["JobIteration"] == {}
    assert task["Spec"] == {"ForceUpdate": 0}  # a task's spec shows no runtime
    assert task["Labels"] == {}
    assert task["Status"]["ContainerStatus"] == {"ContainerID": "c", "PID": 7, "ExitCode": 0}
    assert task["Status"]["PortStatus"] == {}
    ratio = M.UpdateConfig.from_api({"MaxFailureRatio": 0, "Delay": 0}).to_api()
    assert type(ratio["MaxFailureRatio"]) is int and "Delay" not in ratio
    assert M.UpdateConfig(max_failure_ratio=0.25).to_api()["MaxFailureRatio"] == 0.25
    cs = M.ContainerSpec.from_api({"Image": "a", "TTY": False, "ReadOnly": True}).to_api()
    assert cs == {"Image": "a", "ReadOnly": True, "Isolation": "default"}


def test_the_store_keeps_what_was_sent() -> None:
    """`GO_JSON` is the API's only: the store's encoding holds the spec as sent."""
    from shoal.store.kinds import decode, encode
    from shoal.store.seal import Sealer

    sealer = Sealer.new()[0]
    spec = M.ServiceSpec.from_api({"Name": "web", "TaskTemplate": {"ContainerSpec": {}}})
    service = M.Service(id="s1", spec=spec)
    stored = json.loads(encode(service, sealer))
    assert stored["Spec"] == {"Name": "web", "TaskTemplate": {"ContainerSpec": {}}, "Mode": {}}
    back = decode("services", "s1", encode(service, sealer), 3, sealer)
    assert back.to_api() == {**service.to_api(), "Version": {"Index": 3}}


@pytest.mark.parametrize(
    ("sent", "shown"),
    [(None, ["10.0.0.0/8"]), ([], None), (["10.20.0.0/16"], ["10.20.0.0/16"])],
    ids=["none-sent", "empty-sent", "given"],
)
def test_default_address_pool_shows_as_swarmkit_shows_it(
    sent: list[str] | None, shown: list[str] | None
) -> None:
    swarm = M.Swarm(default_addr_pool=sent)
    assert swarm.to_api()["DefaultAddrPool"] == shown
    assert swarm.address_pools() == (sent or ["10.0.0.0/8"])


def test_a_service_without_ports_has_an_empty_endpoint_spec() -> None:
    assert M.allocated_endpoint_spec(None) == M.EndpointSpec()
    assert M.allocated_endpoint_spec(M.EndpointSpec(mode="dnsrr")) == M.EndpointSpec()
    ported = M.EndpointSpec(mode="vip", ports=[M.PortConfig(target_port=80, published_port=8)])
    assert M.allocated_endpoint_spec(ported) == ported
    service = M.Service(spec=M.ServiceSpec(endpoint_spec=M.EndpointSpec(mode="vip")))
    # An earlier shoal gave such tasks `{"Mode": "vip"}`: still up to date.
    old = M.Task(endpoint=M.Endpoint(spec=M.EndpointSpec(mode="vip")))
    assert M.up_to_date(old, service)
    service.spec.endpoint_spec = ported
    assert not M.up_to_date(old, service)


def test_a_spec_read_back_means_the_same() -> None:
    """A client sends back what it read (`docker service scale`): the same task spec."""
    sent = M.TaskSpec.from_api({"ContainerSpec": {"Image": "a"}})
    read = M.ServiceSpec(task_template=sent).to_api()["TaskTemplate"]
    assert read["Runtime"] == "container" and read["ContainerSpec"]["Isolation"] == "default"
    assert M.same_task_spec(M.TaskSpec.from_api(read), sent)


def test_times_as_go_writes_them() -> None:
    import datetime as dt

    def t(*a: int) -> str:
        return M.format_time(dt.datetime(*a, tzinfo=dt.UTC))

    assert t(2020, 1, 2, 3, 4, 5, 678900) == "2020-01-02T03:04:05.6789Z"
    assert t(2020, 1, 2, 3, 4, 5) == "2020-01-02T03:04:05Z"
    assert t(1, 1, 1) == "0001-01-01T00:00:00Z"  # Go's zero time
    plus2 = dt.timezone(dt.timedelta(hours=2))
    assert M.format_time(dt.datetime(2020, 1, 2, 5, 0, 0, 1, tzinfo=plus2)) == (
        "2020-01-02T03:00:00.000001Z"
    )
    assert M.timestamp(1.5) == "1970-01-01T00:00:01.5Z"


def test_time_helpers() -> None:
    t = M.parse_time("2016-06-07T21:07:31.290032978Z")
    assert t == pytest.approx(1465333651.290032978)
    assert M.parse_time("2016-06-07T21:07:31Z") == 1465333651.0
    import datetime as dt

    s = M.format_time(dt.datetime(2020, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC))
    assert s == "2020-01-02T03:04:05.678901Z"
    assert M.parse_time(s) == pytest.approx(
        dt.datetime(2020, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC).timestamp()
    )
    assert M.parse_time(M.now()) > 1.6e9


# ---------------------------------------------------------------- names against the swagger

# Model → where its properties are defined in the swagger: a definition name followed by
# property names to walk (arrays are walked into their items). Several places: the union.
PLACES: dict[str, list[tuple[str, ...]]] = {
    "Version": [("ObjectVersion",)],
    "Meta": [("ClusterInfo",)],
    "Resources": [("Limit",), ("ResourceObject",)],
    "ResourceRequirements": [("TaskSpec", "Resources")],
    "RestartPolicy": [("TaskSpec", "RestartPolicy")],
    "PlacementPreference": [("TaskSpec", "Placement", "Preferences")],
    "Platform": [("Platform",)],
    "Placement": [("TaskSpec", "Placement")],
    "Healthcheck": [("HealthConfig",)],
    "Mount": [("Mount",)],
    "BindOptions": [("Mount", "BindOptions")],
    "VolumeOptions": [("Mount", "VolumeOptions")],
    "TmpfsOptions": [("Mount", "TmpfsOptions")],
    "ContainerSpec": [("TaskSpec", "ContainerSpec")],
    "NetworkAttachmentConfig": [("NetworkAttachmentConfig",)],
    "TaskSpec": [("TaskSpec",)],
    "ReplicatedService": [("ServiceSpec", "Mode", "Replicated")],
    "ReplicatedJob": [("ServiceSpec", "Mode", "ReplicatedJob")],
    "ServiceMode": [("ServiceSpec", "Mode")],
    "UpdateConfig": [("ServiceSpec", "UpdateConfig"), ("ServiceSpec", "RollbackConfig")],
    "PortConfig": [("EndpointPortConfig",)],
    "EndpointSpec": [("EndpointSpec",)],
    "ServiceSpec": [("ServiceSpec",)],
    "Endpoint": [("Service", "Endpoint")],
    "UpdateStatus": [("Service", "UpdateStatus")],
    "JobIteration": [("ObjectVersion",)],
    "JobStatus": [("Service", "JobStatus")],
    "ServiceStatus": [("Service", "ServiceStatus")],
    "Service": [("Service",)],
    "ContainerStatus": [("Task", "Status", "ContainerStatus")],
    "PortStatus": [("PortStatus",), ("Task", "Status", "PortStatus")],
    "TaskStatus": [("Task", "Status")],
    "Task": [("Task",)],
    "NodeSpec": [("NodeSpec",)],
    "EngineDescription": [("EngineDescription",)],
    "TLSInfo": [("TLSInfo",)],
    "NodeDescription": [("NodeDescription",)],
    "NodeStatus": [("NodeStatus",)],
    "ManagerStatus": [("ManagerStatus",)],
    "Node": [("Node",)],
    "SecretSpec": [("SecretSpec",)],
    "Secret": [("Secret",)],
    "ConfigSpec": [("ConfigSpec",)],
    "Config": [("Config",)],
    "FileTarget": [
        ("TaskSpec", "ContainerSpec", "Secrets", "File"),
        ("TaskSpec", "ContainerSpec", "Configs", "File"),
    ],
    "SecretReference": [("TaskSpec", "ContainerSpec", "Secrets")],
    "ConfigReference": [("TaskSpec", "ContainerSpec", "Configs")],
    "OrchestrationConfig": [("SwarmSpec", "Orchestration")],
    "RaftConfig": [("SwarmSpec", "Raft")],
    "DispatcherConfig": [("SwarmSpec", "Dispatcher")],
    "CAConfig": [("SwarmSpec", "CAConfig")],
    "EncryptionConfig": [("SwarmSpec", "EncryptionConfig")],
    "SwarmSpec": [("SwarmSpec",)],
    "JoinTokens": [("JoinTokens",)],
    "Swarm": [("Swarm",)],
    "NetworkAttachment": [("NetworkAttachment",)],
}

# Models of Go types the swagger does not describe (its `NetworkAttachment.Network` points at
# `NetworkResource`, which is not what the API sends there): their JSON names as moby's
# `api/types/swarm/network.go` (and `network.ConfigReference`) spell them.
GO_TYPES: dict[str, set[str]] = {
    "Network": {"ID", "Version", "CreatedAt", "UpdatedAt", "Spec", "DriverState", "IPAMOptions"},
    "NetworkSpec": {
        "Name", "Labels", "DriverConfiguration", "IPv6Enabled", "Internal", "Attachable",
        "Ingress", "IPAMOptions", "ConfigFrom", "Scope",
    },
    "Driver": {"Name", "Options"},
    "IPAMOptions": {"Driver", "Configs"},
    "IPAMConfig": {"Subnet", "Range", "Gateway"},
    "ConfigFrom": {"Network"},
    # shoal's own, stored only: a container on an attachable network.
    "Attachment": {"ID", "Version", "CreatedAt", "UpdatedAt", "NodeID", "NetworkID", "Endpoint",
                   "Address", "Names"},
}  # fmt: skip

# Where the swagger itself is wrong about the wire: Go's `Healthcheck` field of
# swarm.ContainerSpec is sent as "Healthcheck" (the CLI and docker-py send that); the swagger
# documents "HealthCheck". Only case differences may be listed here.
SWAGGER_MISSPELLINGS = {("ContainerSpec", "Healthcheck"): "HealthCheck"}

# Fields of Docker's Go types (api/types/swarm) that the swagger does not document.
GO_ONLY = {("Service", "PreviousSpec")}
# Kept in the store for the agent and scheduler (as SwarmKit's Task has it), never shown.
STORE_ONLY = {
    ("Task", "Endpoint"),
    ("Service", "RegistryAuth"),
    ("Service", "PreviousRegistryAuth"),
    ("Swarm", "UnlockKey"),
}


# How many models `shoal.api.models` defines: counted by hand, so that a discovery that finds
# nothing (or misses a module) fails here instead of checking nothing. Change it with the models.
MODEL_COUNT = 63


def all_models() -> list[type[M.Model]]:
    """Every model class defined in `shoal.api.models`, in any of its modules."""
    modules = [M] + [
        importlib.import_module(f"{M.__name__}.{info.name}")
        for info in pkgutil.iter_modules(getattr(M, "__path__", []))
    ]
    return [
        c
        for module in modules
        for _, c in inspect.getmembers(module, inspect.isclass)
        if issubclass(c, M.Model) and c is not M.Model and c.__module__ == module.__name__
    ]


def test_every_model_is_found_and_exported() -> None:
    models = all_models()
    assert len(models) == MODEL_COUNT, sorted(c.__name__ for c in models)
    assert len({c.__name__ for c in models}) == len(models), "two models share a name"
    unexported = [c.__name__ for c in models if getattr(M, c.__name__, None) is not c]
    assert not unexported, f"export these from {M.__name__}: {unexported}"


@cache
def definitions(name: str) -> dict[str, Any]:
    import yaml  # pyyaml: a test dependency

    return yaml.safe_load((ANCHORS / name).read_text())["definitions"]


def _resolve(defs: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A schema's properties, following $ref, allOf and array items."""
    while True:
        if "$ref" in schema:
            schema = defs[schema["$ref"].rsplit("/", 1)[1]]
        elif schema.get("type") == "array" and "items" in schema:
            schema = schema["items"]
        else:
            break
    props = dict(schema.get("properties") or {})
    for part in schema.get("allOf") or []:
        props.update(_resolve(defs, part))
    return props


def swagger_properties(model: str) -> tuple[set[str], list[str]]:
    """(property names, the places that exist) for a model, over both swagger files."""
    names: set[str] = set()
    found = []
    for file in SWAGGERS:
        defs = definitions(file)
        for place in PLACES[model]:
            if place[0] not in defs:
                continue
            props = _resolve(defs, defs[place[0]])
            ok = True
            for step in place[1:]:
                if step not in props:
                    ok = False
                    break
                props = _resolve(defs, props[step])
            if ok:
                names |= set(props)
                found.append(f"{file}:{'.'.join(place)}")
    return names, found


def test_every_model_has_a_swagger_place() -> None:
    missing = [c.__name__ for c in all_models() if c.__name__ not in PLACES | GO_TYPES]
    assert not missing, f"add these models to PLACES or GO_TYPES: {missing}"


@pytest.mark.parametrize("model", sorted(GO_TYPES))
def test_go_type_field_names(model: str) -> None:
    cls = getattr(M, model)
    names = {field.serialization_alias or field.alias for field in cls.model_fields.values()}
    assert names == GO_TYPES[model]


@pytest.mark.parametrize("model", sorted(PLACES))
def test_model_field_names_exist_in_swagger(model: str) -> None:
    cls = getattr(M, model)
    names, found = swagger_properties(model)
    assert found, f"{model}: none of {PLACES[model]} found in the swagger files"
    wrong = []
    for attr, field in cls.model_fields.items():
        alias = field.serialization_alias or field.alias
        assert alias, f"{model}.{attr} has no JSON name"
        if alias in names or (model, alias) in GO_ONLY | STORE_ONLY:
            continue
        doc = SWAGGER_MISSPELLINGS.get((model, alias))
        if doc is not None and doc in names and doc.lower() == alias.lower():
            continue
        close = sorted(n for n in names if n.lower() == alias.lower())
        wrong.append(
            f"{attr} → {alias!r}" + (f" (swagger: {close})" if close else " (not in swagger)")
        )
    assert not wrong, f"{model} ({', '.join(found)}): {wrong}"


def test_store_only_fields_are_not_shown() -> None:
    task = M.Task(id="t", endpoint=M.Endpoint(ports=[M.PortConfig(target_port=80)]))
    assert "Endpoint" not in task.to_api()
    assert M.Task.model_validate_json(task.model_dump_json(by_alias=True)).endpoint is not None
    service = M.Service(id="s", registry_auth="new", previous_registry_auth="old")
    assert not {"RegistryAuth", "PreviousRegistryAuth"} & set(service.to_api())
    assert "new" not in json.dumps(service.to_api()) and "old" not in json.dumps(service.to_api())
    again = M.Service.model_validate_json(service.model_dump_json(by_alias=True))
    assert (again.registry_auth, again.previous_registry_auth) == ("new", "old")
    swarm = M.Swarm(id="w", unlock_key="SWMKEY-1-secret")
    assert "SWMKEY" not in json.dumps(swarm.to_api())
    assert M.Swarm.model_validate_json(swarm.model_dump_json(by_alias=True)).unlock_key


def test_store_only_fields_are_listed() -> None:
    """The fields models keep from their Docker JSON (`GO_JSON.never`) are the ones this
    module lets the swagger lack."""
    declared = {
        (c.__name__, name)
        for c in all_models()
        if issubclass(c, M.Meta)
        for name in c.GO_JSON.never
    }
    assert declared == STORE_ONLY


def test_swagger_check_catches_a_misspelt_alias() -> None:
    """The check above is not vacuous: a wrong spelling is not among the names."""
    names, _ = swagger_properties("Resources")
    assert "NanoCPUs" in names
    assert "NanoCpus" not in names
    names, _ = swagger_properties("ContainerSpec")
    assert "DNSConfig" in names and "DnsConfig" not in names and "TTY" in names


def test_swagger_spelling_of_healthcheck_is_understood() -> None:
    """dockerd decodes JSON case-insensitively (Go's encoding/json), so a client written from
    the swagger that sends `HealthCheck` gets its healthcheck. Here it must not end up as an
    ignored extra field."""
    hc = {"Test": ["CMD", "true"], "Interval": SEC}
    spec = M.ContainerSpec.from_api({"Image": "busybox", "HealthCheck": hc})
    assert spec.healthcheck is not None
    assert spec.healthcheck.test == ["CMD", "true"]
