"""Pure helpers of the Docker API front: version rewriting, log framing, defaults."""

from __future__ import annotations

import json
import struct

from shoal.api.defaults import insert_defaults
from shoal.api.models import Service, ServiceSpec, Task, Version
from shoal.dockerapi.http import ApiJSON, with_field
from shoal.dockerapi.logs import decorate, details, frame
from shoal.dockerapi.proxy import engine_path


def test_engine_path_lowers_newer_versions_only() -> None:
    assert engine_path("/v1.44/containers/json?all=1", (1, 41)) == "/v1.41/containers/json?all=1"
    assert engine_path("/v1.30/containers/json", (1, 41)) == "/v1.30/containers/json"
    assert engine_path("/containers/json", (1, 41)) == "/containers/json"
    assert engine_path("/v1.45/info", None) == "/v1.45/info"


def test_log_details_are_sorted_and_complete() -> None:
    task = Task(id="t1", service_id="s1", node_id="n1")
    assert details(task) == (
        b"com.docker.swarm.node.id=n1,com.docker.swarm.service.id=s1,com.docker.swarm.task.id=t1"
    )


def test_decorate_puts_details_after_the_timestamp() -> None:
    assert decorate(b"2026-01-01T00:00:00Z hello\n", b"k=v", True) == (
        b"2026-01-01T00:00:00Z k=v hello\n"
    )
    assert decorate(b"hello\n", b"k=v", False) == b"k=v hello\n"


def test_frame_is_stdcopy() -> None:
    out = frame(2, b"abc")
    assert out[:8] == struct.pack(">BxxxL", 2, 3) and out[8:] == b"abc"


def test_insert_defaults_fills_only_absent_objects() -> None:
    """SwarmKit's `InterpolateService`: absent objects take their default whole, present ones
    stay as they are; no endpoint spec is made up."""
    spec = {
        "Name": "web",
        "TaskTemplate": {
            "ContainerSpec": {"Image": "a", "StopGracePeriod": 3},
            "RestartPolicy": {"Condition": "none"},
        },
        "UpdateConfig": {"Parallelism": 4},
    }
    out = insert_defaults(spec)
    task = out["TaskTemplate"]
    assert task["ContainerSpec"] == {"Image": "a", "StopGracePeriod": 3, "DNSConfig": {}}
    assert task["RestartPolicy"] == {"Condition": "none"}
    assert (task["Resources"], task["Placement"]) == ({}, {})
    assert out["UpdateConfig"] == {"Parallelism": 4}
    assert out["RollbackConfig"] == {
        "Parallelism": 1, "FailureAction": "pause", "Monitor": 5_000_000_000,
        "MaxFailureRatio": 0, "Order": "stop-first",
    }  # fmt: skip
    assert "EndpointSpec" not in out
    assert spec["UpdateConfig"] == {"Parallelism": 4} and "Resources" not in spec["TaskTemplate"]


def test_stored_objects_json_is_kept_per_version() -> None:
    texts = ApiJSON(limit=3)
    svc = Service(id="s1", spec=ServiceSpec(name="web"), version=Version(index=7))
    first = texts.of(svc)
    assert json.loads(first) == svc.to_api()
    svc.spec.name = "changed in place"  # a stored version never changes: the text is kept
    assert texts.of(svc) is first
    newer = Service(id="s1", spec=ServiceSpec(name="api"), version=Version(index=8))
    assert json.loads(texts.of(newer))["Spec"]["Name"] == "api"
    unstored = Service(id="s2", spec=ServiceSpec(name="x"))  # no version: never kept
    assert json.loads(texts.of(unstored))["Spec"]["Name"] == "x"
    for i in range(4):  # past the limit it starts over
        texts.of(Service(id=f"t{i}", spec=ServiceSpec(name="t"), version=Version(index=1)))
    assert texts.of(svc) is not first


def test_a_field_added_to_an_objects_text() -> None:
    text = with_field('{"ID":"a","Spec":{}}', "ServiceStatus", {"RunningTasks": 2})
    assert json.loads(text) == {"ID": "a", "Spec": {}, "ServiceStatus": {"RunningTasks": 2}}
    assert list(json.loads(text))[-1] == "ServiceStatus"
