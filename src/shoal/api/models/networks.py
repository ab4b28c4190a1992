"""Swarm networks (moby `api/types/swarm/network.go`): the stored object, which tasks also
carry in their `NetworksAttachments`, and its conversions from `docker network create`'s
request (`network.CreateRequest`) and to `docker network ls/inspect`'s `NetworkResource`."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field

from shoal.api.models.base import GoJSON, Meta, Model

VXLAN_ID_OPTION = "com.docker.network.driver.overlay.vxlanid_list"


class Driver(Model):
    GO_JSON = GoJSON(omitempty=frozenset({"Name", "Options"}))

    name: str = ""
    options: dict[str, str] | None = None


class IPAMConfig(Model):
    subnet: str | None = None
    range: str | None = None
    gateway: str | None = None


class IPAMOptions(Model):
    driver: Driver | None = None
    configs: list[IPAMConfig] | None = None


class ConfigFrom(Model):
    network: str = ""


class NetworkSpec(Model):
    name: str = ""
    labels: dict[str, str] | None = None
    driver_configuration: Driver | None = None
    ipv6_enabled: bool | None = None
    internal: bool | None = None
    attachable: bool | None = None
    ingress: bool | None = None
    ipam_options: IPAMOptions | None = None
    config_from: ConfigFrom | None = None
    scope: str | None = None


class Network(Meta):
    """A swarm network. `Spec` is the user's; `DriverState` (the VXLAN ID) and `IPAMOptions`
    (the subnets and gateways in use, the ones given or the ones chosen) are the allocator's."""

    spec: NetworkSpec = Field(default_factory=NetworkSpec)
    driver_state: Driver | None = None
    ipam_options: IPAMOptions | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def vni(self) -> int | None:
        raw = (self.driver_state.options or {}).get(VXLAN_ID_OPTION) if self.driver_state else None
        return int(raw) if raw else None

    def allocated(self) -> bool:
        return self.vni is not None and bool(self.ipam_options and self.ipam_options.configs)

    def subnet(self) -> IPAMConfig | None:
        """The (first) subnet in use, once allocated."""
        configs = self.ipam_options.configs if self.ipam_options else None
        return configs[0] if configs else None


class NetworkAttachment(Model):
    """A task's place on one network (`Task.NetworksAttachments[]`). `Network` is the swarm
    network's JSON as it was when the task got its address (kept as sent: `network()`)."""

    network_: dict[str, Any] | None = Field(
        default=None, alias="Network", validation_alias=AliasChoices("Network", "network_")
    )
    addresses: list[str] | None = None  # CIDR notation: the address and the subnet's length

    def network(self) -> Network:
        return Network.model_validate(self.network_ or {})


def ingress_spec() -> NetworkSpec:
    """The routing mesh's network, as `swarm init` makes it (SwarmKit's `newIngressNetwork`:
    no driver or IPAM given, so the allocator's defaults: overlay, the pool's first subnet —
    10.0.0.0/24 by default — and the first VXLAN ID, 4096)."""
    return NetworkSpec(
        name="ingress", labels={}, ingress=True, scope="swarm",
        driver_configuration=Driver(), ipam_options=IPAMOptions(driver=Driver()),
    )  # fmt: skip


def spec_from_create(body: dict[str, Any]) -> NetworkSpec:
    """moby's `BasicNetworkCreateToGRPC`: a `docker network create` request as a spec."""
    ipam = body.get("IPAM") or None
    options: IPAMOptions | None = None
    if ipam is not None:
        options = IPAMOptions(
            driver=Driver(name=ipam.get("Driver") or "default", options=ipam.get("Options")),
            configs=[
                IPAMConfig(subnet=c.get("Subnet"), range=c.get("IPRange"), gateway=c.get("Gateway"))
                for c in ipam.get("Config") or []
            ]
            or None,
        )
    config_from = body.get("ConfigFrom") or None
    return NetworkSpec(
        name=body.get("Name") or "",
        labels=body.get("Labels") or None,  # empty: nil after SwarmKit's gRPC, null in Docker's
        driver_configuration=Driver(
            name=body.get("Driver") or "overlay", options=body.get("Options") or {}
        ),  # fmt: skip
        ipv6_enabled=bool(body.get("EnableIPv6")) or None,
        internal=bool(body.get("Internal")) or None,
        attachable=bool(body.get("Attachable")) or None,
        ingress=bool(body.get("Ingress")) or None,
        ipam_options=options,
        config_from=ConfigFrom(network=config_from.get("Network") or "")
        if isinstance(config_from, dict) and config_from.get("Network")
        else None,
        scope="swarm",
    )


def to_resource(network: Network) -> dict[str, Any]:
    """moby's `BasicNetworkFromGRPC`: the `NetworkResource` of `docker network ls/inspect`."""
    spec = network.spec
    ipam = network.ipam_options or spec.ipam_options or IPAMOptions()
    driver = ipam.driver or Driver(name="default")
    out: dict[str, Any] = {
        "Name": spec.name,
        "Id": network.id,
        "Created": network.created_at or "0001-01-01T00:00:00Z",
        "Scope": "swarm",
        "Driver": network.driver_state.name
        if network.driver_state
        else ((spec.driver_configuration.name if spec.driver_configuration else "") or "overlay"),
        "EnableIPv6": bool(spec.ipv6_enabled),
        "IPAM": {
            "Driver": driver.name or "default",
            "Options": driver.options,
            "Config": [
                {
                    k: v
                    for k, v in (("Subnet", c.subnet), ("IPRange", c.range), ("Gateway", c.gateway))
                    if v
                }  # fmt: skip
                for c in ipam.configs or []
            ],
        },
        "Internal": bool(spec.internal),
        "Attachable": bool(spec.attachable),
        "Ingress": bool(spec.ingress),
        "ConfigFrom": {"Network": spec.config_from.network if spec.config_from else ""},
        "ConfigOnly": False,
        "Containers": {},
        "Options": {  # the allocator's driver state, from the spec's driver options
            **((spec.driver_configuration.options if spec.driver_configuration else None) or {}),
            **((network.driver_state.options if network.driver_state else None) or {}),
        },
        "Labels": spec.labels,
    }
    return out


class Attachment(Meta):
    """A plain container on an attachable swarm network (`docker run --network`): its node,
    its address (the allocator's) and the names it answers to (its node's, once it runs).
    Stored only; not a Docker API object."""

    node_id: str = ""
    network_id: str = ""
    endpoint: str = ""  # the engine's endpoint ID, as the node's IPAM driver was asked
    address: str | None = None  # CIDR, once allocated
    names: list[str] | None = None
