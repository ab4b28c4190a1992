"""Task → engine container: the pure conversion of a task spec into `POST /containers/create`.

Containers are named `<service>.<slot>.<task-id>` and carry the labels Docker's swarm mode puts
on its task containers, so engine-side tools recognise them.
"""

from __future__ import annotations

from typing import Any

from shoal.agent.mounts import expand as expand_mount
from shoal.api import labels, template
from shoal.api.defaults import STOP_GRACE_PERIOD
from shoal.api.models import ContainerSpec, NodeDescription, PortConfig, Task
from shoal.api.naming import container_name
from shoal.engine.networks import DNS_ADDRESS


def swarm_labels(task: Task, service_name: str) -> dict[str, str]:
    return {
        labels.NODE_ID: task.node_id or "",
        labels.SERVICE_ID: task.service_id,
        labels.SERVICE_NAME: service_name,
        labels.TASK: "",
        labels.TASK_ID: task.id,
        labels.TASK_NAME: container_name(task, service_name),
    }


def stop_timeout(spec: ContainerSpec) -> int:
    """The stop grace period in whole seconds, as the engine's stop call takes it."""
    ns = spec.stop_grace_period if spec.stop_grace_period is not None else STOP_GRACE_PERIOD
    return max(0, -(-ns // 1_000_000_000))


def host_ports(ports: list[PortConfig] | None) -> list[PortConfig]:
    return [p for p in ports or [] if p.publish_mode == "host"]


def create_body(
    task: Task,
    service_name: str,
    ports: list[PortConfig] | None,
    node: NodeDescription | None = None,
    service_labels: dict[str, str] | None = None,
    file_mounts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """`file_mounts`: the bind mounts of the task's secret and config files (`agent.files`)."""
    spec = task.spec.container_spec or ContainerSpec()
    container_labels = {**(spec.labels or {}), **swarm_labels(task, service_name)}
    ctx = template.for_task(task, service_name, service_labels, node)
    config: dict[str, Any] = {
        "Image": spec.image,
        "Labels": container_labels,
        "Env": [template.expand(e, ctx) for e in spec.env or []],
        "Tty": bool(spec.tty),
        "OpenStdin": bool(spec.open_stdin),
        "StopTimeout": stop_timeout(spec),
    }
    if spec.command:
        config["Entrypoint"] = spec.command
    if spec.args:
        config["Cmd"] = spec.args
    if spec.dir:
        config["WorkingDir"] = spec.dir
    if spec.user:
        config["User"] = spec.user
    if spec.hostname:
        config["Hostname"] = template.expand(spec.hostname, ctx)
    if spec.stop_signal:
        config["StopSignal"] = spec.stop_signal
    if spec.healthcheck is not None:
        config["Healthcheck"] = spec.healthcheck.to_api()

    host: dict[str, Any] = {"RestartPolicy": {"Name": "no"}}
    if spec.init is not None:
        host["Init"] = spec.init
    mounts = [_expand_mount(m.to_api(), ctx) for m in spec.mounts or []] + (file_mounts or [])
    if mounts:
        host["Mounts"] = mounts
    if spec.read_only:
        host["ReadonlyRootfs"] = True
    if spec.groups:
        host["GroupAdd"] = spec.groups
    if spec.capability_add:
        host["CapAdd"] = spec.capability_add
    if spec.capability_drop:
        host["CapDrop"] = spec.capability_drop
    if spec.sysctls:
        host["Sysctls"] = spec.sysctls
    if spec.ulimits:
        host["Ulimits"] = spec.ulimits
    if spec.hosts:
        host["ExtraHosts"] = [_extra_host(h) for h in spec.hosts]
    dns = spec.dns_config or {}
    if dns.get("Nameservers"):
        host["Dns"] = dns["Nameservers"]
    if dns.get("Search"):
        host["DnsSearch"] = dns["Search"]
    if dns.get("Options"):
        host["DnsOptions"] = dns["Options"]

    res = task.spec.resources
    if res is not None and res.limits is not None:
        if res.limits.nano_cpus:
            host["NanoCpus"] = res.limits.nano_cpus
        if res.limits.memory_bytes:
            host["Memory"] = res.limits.memory_bytes
        if res.limits.pids:
            host["PidsLimit"] = res.limits.pids
    if res is not None and res.reservations is not None and res.reservations.memory_bytes:
        host["MemoryReservation"] = res.reservations.memory_bytes
    log_driver = task.spec.log_driver
    if log_driver and log_driver.get("Name"):
        host["LogConfig"] = {"Type": log_driver["Name"], "Config": log_driver.get("Options") or {}}

    published = host_ports(ports)
    if published:
        exposed: dict[str, dict[str, Any]] = {}
        bindings: dict[str, list[dict[str, str]]] = {}
        for p in published:
            key = f"{p.target_port}/{p.protocol or 'tcp'}"
            exposed[key] = {}
            hp = str(p.published_port) if p.published_port else ""
            bindings.setdefault(key, []).append({"HostIp": "", "HostPort": hp})
        config["ExposedPorts"] = exposed
        host["PortBindings"] = bindings

    attachments = task_addresses(task)
    if attachments:
        # The first network at create, the others connected before the start (the engine
        # takes one network per create).
        name, ip = attachments[0]
        host["NetworkMode"] = name
        config["NetworkingConfig"] = {"EndpointsConfig": {name: endpoint_config(ip)}}
        dns = host.setdefault("Dns", [])
        if DNS_ADDRESS not in dns:
            dns.insert(0, DNS_ADDRESS)

    config["HostConfig"] = host
    return config


def task_addresses(task: Task) -> list[tuple[str, str]]:
    """(network name, address) of each of the task's networks, in its spec's order."""
    out = []
    for att in task.networks_attachments or []:
        network = att.network()
        for cidr in att.addresses or []:
            out.append((network.name, cidr.split("/")[0]))
    return out


def endpoint_config(ip: str) -> dict[str, Any]:
    """The engine's endpoint settings for a task on a swarm network: the address the swarm
    gave it (the engine asks shoal's IPAM for it by name)."""
    return {"IPAMConfig": {"IPv4Address": ip}}


def _expand_mount(mount: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
    return expand_mount(mount, ctx)


def _extra_host(entry: str) -> str:
    """Swarm's `IP host [alias…]` (or `host:IP`) → the engine's `host:IP`."""
    parts = entry.split()
    if len(parts) >= 2:
        return f"{parts[1]}:{parts[0]}"
    return entry


def port_status(inspect: dict[str, Any], ports: list[PortConfig] | None) -> list[PortConfig]:
    """Host-mode ports as bound by the engine (a dynamic published port gets its number)."""
    out = []
    bound = (inspect.get("NetworkSettings") or {}).get("Ports") or {}
    for p in host_ports(ports):
        key = f"{p.target_port}/{p.protocol or 'tcp'}"
        published = p.published_port or 0
        for b in bound.get(key) or []:
            if b.get("HostPort"):
                published = int(b["HostPort"])
                break
        out.append(p.model_copy(update={"published_port": published}))
    return out
