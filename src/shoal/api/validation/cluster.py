"""Nodes and the swarm (cluster) spec: `docker node update`, `docker swarm init|update`."""

from __future__ import annotations

from typing import Any

from shoal.api.errors import DaemonError, InvalidArgument, InvalidParameter, ShoalError
from shoal.api.validation.goformat import go_quote
from shoal.api.validation.helpers import _list, _num, _obj, _text
from shoal.api.validation.jsontypes import check_json_types


def validate_node_spec(spec: Any) -> None:
    """`POST /nodes/{id}/update`: JSON types, then moby `NodeSpecToGRPC` (Role and
    Availability are required). swarmkit's `validateNodeSpec` only rejects a nil spec."""
    check_json_types("NodeSpec", spec)
    spec = _obj(spec)
    role = _text(spec.get("Role"))
    if role.upper() not in ("WORKER", "MANAGER"):
        raise InvalidParameter(f"invalid Role: {go_quote(role)}")
    availability = _text(spec.get("Availability"))
    if availability.upper() not in ("ACTIVE", "PAUSE", "DRAIN"):
        raise InvalidParameter(f"invalid Availability: {go_quote(availability)}")


def validate_cluster_spec(spec: Any, *, init: bool = False) -> None:
    """`POST /swarm/update` (default) or the `Spec` of `POST /swarm/init` (`init=True`).

    Zero durations mean "keep the current value" and are not checked. At init Docker applies
    the spec after the swarm exists and reports a failure as a plain 500
    `error updating cluster settings: …`; shoal may check first, the text is the same."""
    if init:
        check_json_types("InitRequest", {"Spec": spec})
    else:
        check_json_types("Spec", spec)
    spec = _obj(spec)
    if _text(spec.get("Name")) not in ("", "default"):
        raise InvalidParameter('swarm spec must be named "default"')
    try:
        ca = _obj(spec.get("CAConfig"))
        for ext in map(_obj, _list(ca.get("ExternalCAs"))):
            protocol = _text(ext.get("Protocol"))
            if protocol.upper() != "CFSSL":
                raise InvalidParameter(f"invalid protocol: {go_quote(protocol)}")
        expiry = _num(ca.get("NodeCertExpiry"))
        if expiry != 0 and expiry < 3600 * 10**9:
            raise InvalidArgument("minimum certificate expiry time is: 1h0m0s")
        if _num(_obj(spec.get("Dispatcher")).get("HeartbeatPeriod")) < 0:
            raise InvalidArgument("heartbeat time period cannot be a negative duration")
    except ShoalError as e:
        if init:
            raise DaemonError(f"error updating cluster settings: {e}") from None
        raise
