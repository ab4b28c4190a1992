"""The wire between managers and agents: every message as a typed model, validated on both ends.

Two exchanges run on the cluster port (2377/tcp, TLS):

* **Join** (`POST /join`, JSON): a node without a certificate sends a `JoinRequest` (token and
  a certificate request) and gets a `JoinAnswer` (its node ID and certificate; a manager also
  the data key and its etcd cluster).
* **Session** (`GET /session`, a WebSocket over mutual TLS): the agent opens with a `Hello`,
  then both sides send JSON messages tagged by `type`. Manager → agent: `Assignment` (a full
  set first, then increments), `NetworkState`, `Attached`, `HeartbeatAck`, `Managers`,
  `RoleChange`, `LogRequest`, `LogCancel`.
* **Renew** (`POST /renew`, mutual TLS): a node whose role changed sends a `RenewRequest` and
  gets a `JoinAnswer` for the role the store gives it.
  Agent → manager: `Heartbeat`, `StatusReport`, `Attach`, `Detach`, `Named`, `NetworkApplied`,
  `Stopping`, `LogChunk`, `LogEnd`.

The in-process session of a manager's own agent passes the same `Assignment` objects.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from shoal.api.models import Config, NodeDescription, Secret, Task, TaskStatus


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", ser_json_bytes="base64", val_json_bytes="base64")


# ---------------------------------------------------------------- join


class JoinRequest(_Message):
    JoinToken: str
    CSR: str
    Hostname: str = ""
    Addr: str = ""  # the node's advertise address (no port)
    Availability: str = "active"
    ClusterAddr: str = ""  # a manager's: its cluster port (host:port)
    EtcdPeerURL: str = ""  # a manager's: where its etcd member will listen for peers


class JoinAnswer(_Message):
    """A manager joining also gets the swarm's data key and the etcd cluster its member
    joins (as a learner: the manager that answered added it)."""

    NodeID: str
    Certificate: str
    RootCA: str
    SwarmID: str
    Managers: list[str] = Field(default_factory=list)
    DataKey: bytes | None = Field(default=None, repr=False)
    EtcdCluster: dict[str, str] = Field(default_factory=dict)  # member name → peer URL


class RenewRequest(_Message):
    """A node whose role changed asks for a certificate of its new role (`POST /renew`, mutual
    TLS with its current certificate): the role is the one its Node object has in the store.
    Its addresses are what it will be as a manager; the answer is a `JoinAnswer` (a manager's
    with the data key and the etcd cluster its member joins as a learner)."""

    CSR: str
    Addr: str = ""  # the node's advertise address (no port)
    ClusterAddr: str = ""  # its cluster port (host:port)
    EtcdPeerURL: str = ""


# ---------------------------------------------------------------- session: manager → agent


class ServiceInfo(_Message):
    """What an agent needs to know of a service to run its tasks. `registry_auth`, the
    service's registry credentials (`X-Registry-Auth`), is sent only in the assignments of a
    node that has a task of the service, and used only to pull that task's image."""

    name: str
    labels: dict[str, str] | None = None
    registry_auth: str | None = Field(default=None, repr=False)  # never in a log line


class Assignment(_Message):
    """The tasks a node runs: all of them (`full`), or what changed since the last set; with
    them, their services, and the secrets and configs (payloads included) that those of its
    tasks that are to run refer to — a node gets a secret only with a task that needs it."""

    type: Literal["assignment"] = "assignment"
    full: bool
    tasks: list[Task] = Field(default_factory=list)  # new or changed (all of them when full)
    removed: list[str] = Field(default_factory=list)  # IDs of tasks no longer assigned
    services: dict[str, ServiceInfo] = Field(default_factory=dict)
    secrets: list[Secret] = Field(default_factory=list)
    configs: list[Config] = Field(default_factory=list)


class NetworkPlan(_Message):
    """A swarm network as every node that has it runs it (its VXLAN segment, its subnet)."""

    id: str
    name: str
    vni: int  # the VXLAN network identifier
    subnet: str  # CIDR
    gateway: str  # the subnet's gateway address (held by each node's bridge of the network)
    internal: bool = False  # no way out (no gateway bridge)
    attachable: bool = False  # plain `docker run --network` may join it
    mtu: int = 1450  # the underlay's MTU minus VXLAN's 50
    labels: dict[str, str] = Field(default_factory=dict)
    ingress: bool = False  # the routing mesh's network: on every node, the host joined to it


class EndpointRecord(_Message):
    """An address on a swarm network — a task's or an attached container's — wherever it is,
    with the names it answers to in the network's DNS."""

    network_id: str
    ip: str  # without prefix length
    node_addr: str  # the underlay address of the node it is on (VXLAN peer)
    names: list[str] = Field(default_factory=list)  # service, tasks.<service>, aliases, hostname
    task_id: str = ""  # "" for an attached container


class Backend(_Message):
    """A task in a service's rotation: running (healthy, where it has a healthcheck) and not
    told to stop. Its address on the balancer's network, and the node it is on."""

    task_id: str
    ip: str  # without prefix length
    node_addr: str  # the underlay address of its node


class IngressPort(_Message):
    """A port the routing mesh publishes on every node."""

    protocol: Literal["tcp", "udp", "sctp"] = "tcp"
    published: int  # on every node
    target: int  # on the tasks
    local: bool = False  # only to tasks on the receiving node, the client's address kept


class Balancer(_Message):
    """One service on one network, as every node that has the network balances it: its
    virtual IP there (any port and protocol to the VIP goes to the same port of one backend),
    and on the ingress network the ports the mesh publishes. Backends are picked at random
    per connection; a connection stays on its backend."""

    service_id: str
    network_id: str
    vip: str = ""  # without prefix length; "" for none (`--endpoint-mode dnsrr`)
    names: list[str] = Field(default_factory=list)  # what resolves to the VIP: service, aliases
    ports: list[IngressPort] = Field(default_factory=list)  # ingress network only
    backends: list[Backend] = Field(default_factory=list)


class NetworkState(_Message):
    """Everything a node's network data plane needs, in full: the networks it has (those of
    its tasks, every attachable one, the ingress network), every endpoint on them, here and
    elsewhere, the services balanced on them, and this node's own address on the ingress
    network. `version` grows with every state a node is sent; the node reports the one it
    applied (`NetworkApplied`), so that a task leaves every rotation before it is stopped."""

    type: Literal["networks"] = "networks"
    version: int = 0
    networks: list[NetworkPlan] = Field(default_factory=list)
    endpoints: list[EndpointRecord] = Field(default_factory=list)
    balancers: list[Balancer] = Field(default_factory=list)
    ingress_address: str = ""  # CIDR; "" while the node has none


class HeartbeatAck(_Message):
    type: Literal["heartbeat"] = "heartbeat"
    period: float  # seconds until the next heartbeat is due


class Managers(_Message):
    """The cluster-port addresses of the managers, for the agent to fail over to."""

    type: Literal["managers"] = "managers"
    managers: list[str]


class RoleChange(_Message):
    """The node's role in the store (`docker node promote/demote`) is not the one its
    certificate names: it asks for a certificate of that role (`RenewRequest`) and becomes
    a manager or a worker, keeping its task containers."""

    type: Literal["role"] = "role"
    role: Literal["manager", "worker"]


class Attached(_Message):
    """The answer to `Attach`: the address (CIDR), or why there is none."""

    type: Literal["attached"] = "attached"
    id: str
    address: str = ""
    error: str = ""


class LogRequest(_Message):
    type: Literal["logs"] = "logs"
    id: str
    container: str
    params: dict[str, str]
    tty: bool = False


class LogCancel(_Message):
    type: Literal["logs_cancel"] = "logs_cancel"
    id: str


# ---------------------------------------------------------------- session: agent → manager


class Hello(_Message):
    type: Literal["hello"] = "hello"
    description: NodeDescription
    addr: str = ""


class Heartbeat(_Message):
    type: Literal["heartbeat"] = "heartbeat"


class StatusReport(_Message):
    type: Literal["status"] = "status"
    statuses: dict[str, TaskStatus]


class Attach(_Message):
    """A plain container joins an attachable swarm network on this node (the engine asked
    shoal's IPAM for an address): the manager allocates one, answered by `Attached`."""

    type: Literal["attach"] = "attach"
    id: str  # this request
    network_id: str
    endpoint: str  # what the node's IPAM driver knows of the request (retries ask the same)


class Detach(_Message):
    """The attached container's address is free again (the engine released it)."""

    type: Literal["detach"] = "detach"
    network_id: str
    address: str  # without prefix length


class Named(_Message):
    """The names an attached container answers to (its name, its aliases), once it runs."""

    type: Literal["named"] = "named"
    network_id: str
    address: str  # without prefix length
    names: list[str]


class Stopping(_Message):
    """shoald stops and means to come back (a restart): its connection dropping is not its
    host dying, so the node keeps its full heartbeat grace before it is marked down."""

    type: Literal["stopping"] = "stopping"


class NetworkApplied(_Message):
    """The node's data plane carries out the network state of this version (and those before)."""

    type: Literal["network_applied"] = "network_applied"
    version: int


class LogChunk(_Message):
    type: Literal["log"] = "log"
    id: str
    stream: int  # 1 stdout, 2 stderr
    data: bytes  # base64 on the wire


class LogEnd(_Message):
    type: Literal["log_end"] = "log_end"
    id: str


ToAgent = Annotated[
    Assignment
    | NetworkState
    | HeartbeatAck
    | Managers
    | RoleChange
    | Attached
    | LogRequest
    | LogCancel,
    Field(discriminator="type"),
]
ToManager = Annotated[
    Hello
    | Heartbeat
    | StatusReport
    | Attach
    | Detach
    | Named
    | NetworkApplied
    | Stopping
    | LogChunk
    | LogEnd,
    Field(discriminator="type"),
]
_TO_AGENT: TypeAdapter[ToAgent] = TypeAdapter(ToAgent)
_TO_MANAGER: TypeAdapter[ToManager] = TypeAdapter(ToManager)


def encode(message: _Message) -> str:
    """A message as the JSON text sent on the wire (models inside keep Docker's names)."""
    return message.model_dump_json(by_alias=True, exclude_none=True)


def to_agent(text: str | bytes) -> ToAgent:
    """Parse and validate a manager's message (raises pydantic.ValidationError)."""
    return _TO_AGENT.validate_json(text)


def to_manager(text: str | bytes) -> ToManager:
    """Parse and validate an agent's message (raises pydantic.ValidationError)."""
    return _TO_MANAGER.validate_json(text)


def invalid(e: ValidationError) -> str:
    """What was wrong with a message, for a log line: where and why, never the values (an
    assignment carries secrets)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
        for err in e.errors(include_url=False, include_input=False)
    )
