"""Validation of swarm request bodies, with the exact answers Docker's own swarm mode gives.

Pure: no I/O. Inputs are the JSON bodies the docker CLI / docker-py send, decoded to plain
dicts (Docker field names; durations integer nanoseconds; any field may be absent or null).

Docker rejects a bad body at one of three places, and the answer differs by place:

1. the Go JSON decoder (type errors)           -> `InvalidParameter`, 400,
   `invalid JSON: json: cannot unmarshal number -1 into Go struct field
   ReplicatedService.Mode.Replicated.Replicas of type uint64`   (`check_json_types`)
2. moby's converters in `daemon/cluster`        -> `InvalidParameter`, 400, bare text
   (`invalid RestartCondition: "x"`, `mismatched Runtime and *Spec fields`, …)
3. swarmkit's control API                       -> `InvalidArgument`, 400, shown as
   `rpc error: code = InvalidArgument desc = <message>`; constraint parse errors come back
   as code `Unknown` (HTTP 500), update-only refusals as `Unimplemented` (HTTP 501).

`validate_*` run the three stages in Docker's order and raise the first error. Every error
is a `shoal.api.errors.ShoalError`: answer with `err.status` and `{"message": str(err)}`
(`str()` carries the `rpc error: …` prefix; `err.message` is the bare text). All 400s are
`InvalidArgument` (daemon-side ones the subclass `InvalidParameter`); `RPCUnknown` (500),
`Unimplemented` (501) and `DaemonError` (500) are not, so catch `ShoalError` to see them all.

Stateful checks (network, secret and config existence; name conflicts) belong to the caller;
`check_port_conflicts` and `check_service_update` are the pure parts of swarmkit's.
Sources and the rules are listed in docs/design/validation.md.

The package follows those stages: `jsontypes` (1), `daemon` (2), `swarmkit` (3, and
`validate_service_spec`, all three for a service), `stateful` (the pure parts of the stateful
checks), `cluster` (nodes and the swarm spec), `names` (names and image references),
`goformat` (Go's `%q` and `%g`) and `helpers`. Import from `shoal.api.validation`.
"""

from __future__ import annotations

from shoal.api.errors import (
    DaemonError,
    InvalidArgument,
    InvalidParameter,
    RPCUnknown,
    Unimplemented,
)
from shoal.api.validation.cluster import validate_cluster_spec, validate_node_spec
from shoal.api.validation.goformat import go_format_g, go_quote
from shoal.api.validation.jsontypes import JSON_ERROR_PREFIX, check_json_types
from shoal.api.validation.names import (
    is_valid_image_reference,
    validate_annotations,
    validate_config_or_secret_name,
    validate_name,
)
from shoal.api.validation.stateful import check_port_conflicts, check_service_update
from shoal.api.validation.swarmkit import (
    DUMMY_CONTEXT,
    Expander,
    swarmkit_validate_service_spec,
    validate_service_spec,
)

__all__ = [
    "DUMMY_CONTEXT",
    "JSON_ERROR_PREFIX",
    "DaemonError",
    "Expander",
    "InvalidArgument",
    "InvalidParameter",
    "RPCUnknown",
    "Unimplemented",
    "check_json_types",
    "check_port_conflicts",
    "check_service_update",
    "go_format_g",
    "go_quote",
    "is_valid_image_reference",
    "swarmkit_validate_service_spec",
    "validate_annotations",
    "validate_cluster_spec",
    "validate_config_or_secret_name",
    "validate_name",
    "validate_node_spec",
    "validate_service_spec",
]
