"""Pure helpers of the Docker API front: version rewriting, log framing, defaults."""

from __future__ import annotations

import struct

from shoal.api.defaults import insert_defaults
from shoal.api.models import Task
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
