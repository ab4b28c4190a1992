"""How a node enters a swarm: `swarm init` makes a new one (root CA, data key, the swarm and
node objects, the unlock key with `--autolock`); `swarm join` gets a certificate from a
manager over the cluster port."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp

from shoal.api.defaults import swarm_spec
from shoal.api.errors import INVALID_JOIN_TOKEN, BadRequest, InvalidArgument, Unavailable
from shoal.api.models import (
    ManagerStatus,
    Node,
    NodeDescription,
    NodeSpec,
    NodeStatus,
    Swarm,
    SwarmSpec,
)
from shoal.ca.authority import RootCA, der_of, new_csr, new_key
from shoal.ca.tls import client_context, encrypt_key, write_certs
from shoal.ca.tokens import matches_ca, new_token, parse
from shoal.node.addresses import host_of
from shoal.node.state import LocalState
from shoal.rpc.messages import JoinAnswer, JoinRequest, RenewRequest
from shoal.store.seal import new_unlock_key

CONNECT_TIMEOUT = 5.0


def new_swarm(
    state: LocalState,
    req: dict[str, Any],
    description: NodeDescription,
    availability: str,
    ca: RootCA,
) -> tuple[Swarm, Node]:
    """The swarm object and the first manager's node, from a `swarm init` request."""
    swarm = Swarm(
        id=state.swarm_id,
        spec=SwarmSpec.from_api(swarm_spec(req.get("Spec"))),
        tls_info=ca.tls_info(),
        default_addr_pool=req.get("DefaultAddrPool"),  # None and [] show differently
        subnet_size=req.get("SubnetSize") or 24,
        data_path_port=req.get("DataPathPort") or 4789,
    )  # fmt: skip
    swarm.join_tokens.worker = new_token(ca.der)
    swarm.join_tokens.manager = new_token(ca.der)
    if swarm.spec.encryption_config.auto_lock_managers:
        swarm.unlock_key = new_unlock_key()
    description = description.model_copy(update={"tls_info": swarm.tls_info})
    node = Node(
        id=state.node_id,
        spec=NodeSpec(role="manager", availability=availability, labels={}),
        description=description,
        status=NodeStatus(state="ready", addr=host_of(state.advertise_addr)),
        manager_status=ManagerStatus(
            leader=False, reachability="reachable", addr=state.advertise_addr
        ),
    )
    return swarm, node


async def join(
    manager: str,
    token: str,
    hostname: str,
    addr: str,
    availability: str,
    certs: Path,
    cluster_addr: str = "",
    etcd_peer_url: str = "",
) -> JoinAnswer:
    """Join the swarm at `manager` (host:port): check its CA against the token, send a
    certificate request, write `certs/`. Returns the manager's answer. `cluster_addr` and
    `etcd_peer_url` are what the node would be as a manager (the token decides which it is);
    a manager's key is written encrypted with the data key it got."""
    if parse(token) is None:
        raise InvalidArgument(INVALID_JOIN_TOKEN)
    timeout = aiohttp.ClientTimeout(total=30, sock_connect=CONNECT_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        try:
            async with http.get(f"https://{manager}/ca", ssl=client_context()) as resp:
                ca_pem = await resp.read()
        except (aiohttp.ClientError, TimeoutError) as e:
            raise Unavailable(f"could not reach the manager at {manager}: {e}") from e
        try:
            der = der_of(ca_pem)
        except ValueError as e:
            raise Unavailable(f"{manager} did not send a CA certificate") from e
        if not matches_ca(token, der):
            raise BadRequest(
                "remote CA does not match fingerprint. Expected: " + token.split("-")[2]
            )
        key, key_pem = new_key()
        req = JoinRequest(
            JoinToken=token, CSR=new_csr(key).decode(), Hostname=hostname, Addr=addr,
            Availability=availability, ClusterAddr=cluster_addr, EtcdPeerURL=etcd_peer_url,
        )  # fmt: skip
        async with http.post(
            f"https://{manager}/join", data=req.model_dump_json(),
            headers={"Content-Type": "application/json"}, ssl=client_context(ca_pem=ca_pem),
        ) as resp:  # fmt: skip
            body = await resp.read()
            if resp.status != 200:
                try:
                    message = str(json.loads(body)["message"])
                except (ValueError, KeyError, TypeError):
                    message = f"join refused ({resp.status})"
                raise BadRequest(message)
    answer = JoinAnswer.model_validate_json(body)
    if answer.DataKey is not None:
        key_pem = encrypt_key(key_pem, answer.DataKey)
    write_certs(certs, ca_pem, answer.Certificate.encode(), key_pem)
    return answer


async def renew(
    managers: list[str],
    certs: Path,
    addr: str,
    cluster_addr: str,
    etcd_peer_url: str,
    password: bytes | None = None,
) -> tuple[JoinAnswer, bytes]:
    """A certificate for the role the store now gives this node (`POST /renew` with its
    current certificate), from the first of `managers` that grants it. Returns the answer
    and the new key (PEM, in the clear: the caller writes it once the node's swarm parts
    have stopped)."""
    key, key_pem = new_key()
    req = RenewRequest(
        CSR=new_csr(key).decode(), Addr=addr, ClusterAddr=cluster_addr,
        EtcdPeerURL=etcd_peer_url,
    )  # fmt: skip
    timeout = aiohttp.ClientTimeout(total=40, sock_connect=CONNECT_TIMEOUT)
    errors = []
    ctx = client_context(certs, password=password)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        for manager in managers:
            try:
                async with http.post(
                    f"https://{manager}/renew", data=req.model_dump_json(),
                    headers={"Content-Type": "application/json"}, ssl=ctx,
                ) as resp:  # fmt: skip
                    body = await resp.read()
                    if resp.status == 200:
                        return JoinAnswer.model_validate_json(body), key_pem
                    errors.append(f"{manager}: {resp.status} {body[:200]!r}")
            except (aiohttp.ClientError, TimeoutError) as e:
                errors.append(f"{manager}: {e}")
    raise Unavailable("no manager renewed this node's certificate: " + "; ".join(errors))
