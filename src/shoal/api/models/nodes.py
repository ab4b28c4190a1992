"""Nodes (moby `swarm.Node`): the spec an operator sets, what the node reports of itself, and
its status as a worker and as a manager."""

from __future__ import annotations

from pydantic import Field

from shoal.api.models.base import GoJSON, Meta, Model
from shoal.api.models.services import Platform, Resources
from shoal.api.models.swarm import TLSInfo


class NodeSpec(Model):
    GO_JSON = GoJSON(always={"Labels": {}})

    name: str | None = None
    labels: dict[str, str] | None = None
    role: str = "worker"
    availability: str = "active"


class EngineDescription(Model):
    engine_version: str | None = None
    labels: dict[str, str] | None = None
    plugins: list[dict[str, str]] | None = None


class NodeDescription(Model):
    GO_JSON = GoJSON(always={"Platform": {}, "Resources": {}, "Engine": {}, "TLSInfo": {}})

    hostname: str | None = None
    platform: Platform | None = None
    resources: Resources | None = None
    engine: EngineDescription | None = None
    tls_info: TLSInfo | None = None


class NodeStatus(Model):
    state: str = "unknown"
    message: str | None = None
    addr: str | None = None


class ManagerStatus(Model):
    leader: bool | None = None
    reachability: str | None = None
    addr: str | None = None


class Node(Meta):
    GO_JSON = GoJSON(always={"Description": {}})

    spec: NodeSpec = Field(default_factory=NodeSpec)
    description: NodeDescription | None = None
    status: NodeStatus = Field(default_factory=NodeStatus)
    manager_status: ManagerStatus | None = None
