"""A container spec's mounts (moby `mount.Mount`), held as Docker's swarm mode keeps them.

A service spec reaches Docker's store through SwarmKit's types (moby `daemon/cluster/convert`
`containerToGRPC`, read back by `containerSpecFromGRPC`), and that round trip is what
`docker service inspect` shows: the type in lower case (none given: `bind`, SwarmKit's first
value), bind options only with a propagation or non-recursive (propagation then `rprivate`
if none was given), empty label and option maps gone, and only the fields SwarmKit has
(`Consistency`, `CreateMountpoint`, `Subpath`, tmpfs `Options` … are dropped). `Mount` is
that round trip: what it holds is what Docker would show, and what the node's engine gets
(moby's executor `convertMount` writes the same fields under the same names).
"""

from __future__ import annotations

from typing import Self

from pydantic import ConfigDict, model_validator

from shoal.api.models.base import GoJSON, Model
from shoal.api.models.networks import Driver

_TYPES = ("bind", "volume", "tmpfs", "npipe", "cluster")
_PROPAGATIONS = ("rprivate", "private", "rshared", "shared", "rslave", "slave")


class BindOptions(Model):
    model_config = ConfigDict(extra="ignore")  # only SwarmKit's fields survive
    GO_JSON = GoJSON(omitempty=frozenset({"Propagation", "NonRecursive"}))

    propagation: str | None = None
    non_recursive: bool | None = None


class VolumeOptions(Model):
    model_config = ConfigDict(extra="ignore")  # only SwarmKit's fields survive
    GO_JSON = GoJSON(omitempty=frozenset({"NoCopy", "Labels"}))

    no_copy: bool | None = None
    labels: dict[str, str] | None = None
    driver_config: Driver | None = None


class TmpfsOptions(Model):
    model_config = ConfigDict(extra="ignore")  # only SwarmKit's fields survive
    GO_JSON = GoJSON(omitempty=frozenset({"SizeBytes", "Mode"}))

    size_bytes: int | None = None
    mode: int | None = None


class Mount(Model):
    model_config = ConfigDict(extra="ignore")  # only SwarmKit's fields survive
    GO_JSON = GoJSON(omitempty=frozenset({"Source", "Target", "ReadOnly"}))

    type: str | None = None
    source: str | None = None
    target: str | None = None
    read_only: bool | None = None
    bind_options: BindOptions | None = None
    volume_options: VolumeOptions | None = None
    tmpfs_options: TmpfsOptions | None = None

    @model_validator(mode="after")
    def _as_swarmkit_keeps_it(self) -> Self:
        kind = (self.type or "").lower()
        self.type = kind if kind in _TYPES else "bind"
        bind = self.bind_options
        if bind is not None:
            propagation = (bind.propagation or "").lower()
            if propagation not in _PROPAGATIONS and not bind.non_recursive:
                self.bind_options = None  # nothing SwarmKit would keep
            else:
                bind.propagation = propagation if propagation in _PROPAGATIONS else "rprivate"
                bind.non_recursive = bind.non_recursive or None
        vol = self.volume_options
        if vol is not None:
            vol.labels = vol.labels or None
            if vol.driver_config is not None:
                vol.driver_config.options = vol.driver_config.options or None
        return self
