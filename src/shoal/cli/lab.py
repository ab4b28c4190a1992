"""`shoal lab`: clusters of hosts on this machine (see `shoal.lab.lab`)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

import typer

from shoal.cli.lab_images import app as images_app
from shoal.lab import lab as ops
from shoal.lab import status as lab_status
from shoal.lab import teardown
from shoal.lab.node import LabNode
from shoal.lab.state import LabError, all_labs, find_node, load

app = typer.Typer(
    help="Clusters of hosts on this machine: each host a network namespace with its own "
    "dockerd and shoald, on a lab bridge, with a lab registry.",
    no_args_is_help=True,
)

DEFAULT_NAME = os.environ.get("SHOAL_LAB") or "lab"
app.add_typer(images_app, name="images")

NameOpt = typer.Option(DEFAULT_NAME, "--name", "-n", help="the lab ($SHOAL_LAB, default 'lab')")
NodeArg = typer.Argument(..., help="a node: lab-m1, lab-w2 … (or m1, w2 with --name)")


def _fail(msg: str, code: int = 1) -> None:
    typer.echo(f"shoal lab: {msg}", err=True)
    raise typer.Exit(code)


def _progress(msg: str) -> None:
    typer.echo(f"  {msg}", err=True)


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _status_table(name: str, notes: bool = True) -> str:
    """The nodes' table; notes (why a join failed) go to stderr."""
    _, nodes = lab_status.status(name)
    rows = [("NODE", "ROLE", "ADDRESS", "STATE", "SWARM", "DOCKER_HOST")]
    rows += [(n.name, n.role, n.addr, n.state, n.swarm, n.docker_host) for n in nodes]
    if notes:
        for n in nodes:
            if n.note:
                typer.echo(f"{n.name}: {n.note}", err=True)
    return _table(rows)


def _node(node: str, name: str | None) -> LabNode:
    """Find node in lab name (if given) or in any lab; m1 is short for <name>-m1."""
    try:
        try:
            state, ns = find_node(node, name)
        except LabError:
            if name and not node.startswith(f"{name}-"):
                state, ns = find_node(f"{name}-{node}", name)
            else:
                raise
    except LabError as e:
        _fail(str(e))
        raise  # unreachable
    return ops.Lab(state).node(ns.name)


@app.command()
def up(
    name: str = NameOpt,
    managers: int = typer.Option(1, "--managers", "-m", help="number of managers"),
    workers: int = typer.Option(2, "--workers", "-w", help="number of workers"),
    swarm: bool = typer.Option(True, "--swarm/--no-swarm", help="init and join the swarm"),
    images: bool = typer.Option(True, "--images/--no-images", help="push the lab images"),
    external_etcd: bool = typer.Option(
        False,
        "--external-etcd",
        help="keep the swarm in an etcd cluster apart (3 members on the registry host, TLS) "
        "instead of the managers' own members: shoald --etcd-endpoints",
    ),  # fmt: skip
    real_images: bool = typer.Option(
        False,
        "--real-images",
        help="push the Debian-built images too (nginx, postgres, …: `shoal lab images`; "
        "built once into their cache, minutes the first time)",
    ),
) -> None:
    """Create the lab (or complete and start it: idempotent) and print its nodes.

    Exit status 3: the hosts are up but some swarm join or image push failed (reported)."""
    typer.echo(f"shoal lab: up {name} (managers: {managers}, workers: {workers})", err=True)
    try:
        result = ops.up(
            name,
            managers,
            workers,
            swarm=swarm,
            images=images,
            external_etcd=external_etcd,
            real_images=[] if real_images else None,
            progress=_progress,
        )
    except (LabError, RuntimeError, OSError) as e:
        _fail(f"{e}\n(the lab is left as it is: `shoal lab up` again, or `shoal lab down`)")
        return
    typer.echo(_status_table(name, notes=False))
    typer.echo(
        f"registry: {result.state.registry_addr}, with a login: "
        f"{result.state.auth_registry_addr}   ({result.seconds:.1f}s)",
        err=True,
    )
    if result.errors:
        for err in result.errors:
            typer.echo(f"shoal lab: {err}", err=True)
        raise typer.Exit(3)


@app.command("ls")
def ls(
    name: str = NameOpt,
    all_: bool = typer.Option(False, "--all", "-a", help="list the labs instead"),
) -> None:
    """The lab's nodes: address, state, swarm role, DOCKER_HOST."""
    if all_:
        labs = all_labs()
        rows = [("LAB", "SUBNET", "NODES", "REGISTRY")]
        rows += [(x.name, str(x.subnet), str(len(x.nodes) - 1), x.registry_addr) for x in labs]
        typer.echo(_table(rows))
        return
    try:
        typer.echo(_status_table(name))
    except LabError as e:
        others = ", ".join(x.name for x in all_labs())
        _fail(f"{e}" + (f"; labs: {others}" if others else ""))


@app.command()
def env(
    node: str = NodeArg,
    name: str | None = typer.Option(None, "--name", "-n"),
    engine: bool = typer.Option(False, "--engine", help="the node's dockerd instead of shoald"),
) -> None:
    """Print `export DOCKER_HOST=…` for the node's shoald: eval $(shoal lab env lab-m1)."""
    n = _node(node, name)
    host = n.engine.host if engine else n.docker_host
    typer.echo(f"export DOCKER_HOST={host}")


@app.command()
def ip(node: str = NodeArg, name: str | None = typer.Option(None, "--name", "-n")) -> None:
    """Print the node's address on the lab network."""
    typer.echo(_node(node, name).state.addr)


@app.command(
    "exec",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def exec_(
    ctx: typer.Context,
    node: str = NodeArg,
    name: str | None = typer.Option(None, "--name", "-n"),
) -> None:
    """Run a command inside the node (its network, hostname and mounts) with DOCKER_HOST
    set to its shoald: shoal lab exec lab-w1 -- docker info"""
    cmd = list(ctx.args)
    if cmd[:1] == ["--"]:
        cmd = cmd[1:]
    if not cmd:
        cmd = [os.environ.get("SHELL") or "/bin/sh"]
    n = _node(node, name)
    if not n.host_running:
        _fail(f"{n.state.name} is down (`shoal lab start {n.state.name}`)")
    env = dict(os.environ, DOCKER_HOST=n.docker_host, SHOAL_LAB_NODE=n.state.name)
    for var in ("DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        env.pop(var, None)
    argv = [*n.host.exec_prefix(), *cmd]
    sys.stdout.flush()
    os.execvpe(argv[0], argv, env)


def _action(action: str, node: str, name: str | None) -> None:
    n = _node(node, name)
    t0 = time.monotonic()
    try:
        ops.node_action(n.lab.name, n.state.name, action)
    except (LabError, RuntimeError, OSError) as e:
        _fail(str(e))
    typer.echo(f"{n.state.name}: {action} ({time.monotonic() - t0:.1f}s)", err=True)


@app.command()
def start(node: str = NodeArg, name: str | None = typer.Option(None, "--name", "-n")) -> None:
    """Start the node's dockerd and shoald again (same state), re-creating its host if gone."""
    _action("start", node, name)


@app.command()
def stop(node: str = NodeArg, name: str | None = typer.Option(None, "--name", "-n")) -> None:
    """Stop shoald and dockerd cleanly (SIGTERM; containers are stopped)."""
    _action("stop", node, name)


@app.command()
def kill(node: str = NodeArg, name: str | None = typer.Option(None, "--name", "-n")) -> None:
    """SIGKILL every process on the node: shoald, etcd, dockerd, containerd, containers."""
    _action("kill", node, name)


@app.command()
def partition(node: str = NodeArg, name: str | None = typer.Option(None, "--name", "-n")) -> None:
    """Cut the node off the lab network (its veth off the bridge and down)."""
    _action("partition", node, name)


@app.command()
def heal(node: str = NodeArg, name: str | None = typer.Option(None, "--name", "-n")) -> None:
    """Reconnect a partitioned node."""
    _action("heal", node, name)


@app.command("registry")
def registry_(
    name: str = NameOpt,
    auth: bool = typer.Option(
        False, "--auth", help="the registry that wants a login: print ADDRESS USER PASSWORD"
    ),
    password: str | None = typer.Option(
        None, "--password", help="with --auth: give its user this new password first"
    ),
) -> None:
    """Print the lab registry's address (images: <addr>/shoal-lab/whoami:1, :2, busybox:1).

    With --auth: the registry behind a login (private copies of shoal-lab/whoami:1 and :2),
    its user and its password, on one line:
    read -r reg user pass <<<"$(shoal lab registry --auth)";
    echo "$pass" | docker login -u "$user" --password-stdin "$reg" """
    if password is not None and not auth:
        _fail("--password changes the password of the registry behind a login: add --auth")
    try:
        state = ops.set_registry_password(name, password) if password is not None else load(name)
    except LabError as e:
        _fail(str(e))
        return
    if state is None:
        _fail(f"no lab {name!r}")
        return
    if auth:
        typer.echo(f"{state.auth_registry_addr} {state.registry_user} {state.registry_password}")
    else:
        typer.echo(state.registry_addr)


@app.command()
def down(name: str = NameOpt) -> None:
    """Remove the lab: hosts, processes, namespaces, mounts, bridge, iptables rules, data."""
    t0 = time.monotonic()
    try:
        removed = teardown.down(name, progress=_progress)
    except (LabError, RuntimeError, OSError) as e:
        _fail(str(e))
        return
    if removed:
        typer.echo(f"shoal lab: {name} removed ({time.monotonic() - t0:.1f}s)", err=True)
    else:
        typer.echo(f"shoal lab: no lab {name!r}", err=True)
