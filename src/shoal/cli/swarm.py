"""`shoal swarm backup|restore`: a running manager's backup, a swarm restored from one on a
host outside any swarm. Both talk to the local shoald on its Docker API socket
(`$DOCKER_HOST`, default `unix:///run/shoal/docker.sock`), under `/shoal/swarm/…`."""

from __future__ import annotations

import http.client
import json
import os
import socket
import sys
import urllib.parse
from pathlib import Path

import typer

app = typer.Typer(help="Backups and restores of a swarm.", no_args_is_help=True)

DEFAULT_HOST = "unix:///run/shoal/docker.sock"
KEY_HEADER = "X-Shoal-Backup-Key"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def _request(
    method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> http.client.HTTPResponse:
    host = os.environ.get("DOCKER_HOST") or DEFAULT_HOST
    if not host.startswith("unix://"):
        _fail(f"DOCKER_HOST {host}: only a unix socket to the local shoald is supported")
    conn = _UnixConnection(host.removeprefix("unix://"), timeout=300)
    try:
        conn.request(method, path, body=body, headers=headers or {})
    except OSError as e:
        _fail(f"cannot reach shoald at {host}: {e}")
    return conn.getresponse()


def _fail(msg: str) -> None:
    typer.echo(f"Error: {msg}", err=True)
    raise typer.Exit(1)


def _check(resp: http.client.HTTPResponse) -> bytes:
    data = resp.read()
    if resp.status != 200:
        try:
            msg = json.loads(data)["message"]
        except (ValueError, KeyError, TypeError):
            msg = data.decode(errors="replace")
        _fail(f"Error response from daemon: {msg}")
    return data


OutArg = typer.Argument(..., help="where to write the backup")
InArg = typer.Argument(..., help="a backup of `shoal swarm backup`")
KeyOpt = typer.Option("", "--key", help="the backup's key (else read from stdin, or asked for)")
AdvertiseOpt = typer.Option("", "--advertise-addr", help="as `swarm init`'s")
ListenOpt = typer.Option("", "--listen-addr", help="as `swarm init`'s")


@app.command()
def backup(file: Path = OutArg) -> None:
    """Write a backup of the swarm (run on a manager): its whole state as etcd's snapshot,
    and its data key wrapped with a key you keep (printed, or the unlock key with autolock
    on). The file alone reveals nothing."""
    resp = _request("POST", "/shoal/swarm/backup")
    data = _check(resp)
    key = resp.getheader(KEY_HEADER)
    tmp = file.with_name(file.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    tmp.replace(file)
    typer.echo(f"Swarm backup written to {file} ({len(data)} bytes).")
    if key:
        typer.echo("To restore it you need this key; keep it apart from the backup:\n")
        typer.echo(f"    {key}\n")
    else:
        typer.echo("Autolock is on: the swarm's unlock key restores it.")


@app.command()
def restore(
    file: Path = InArg,
    key: str = KeyOpt,
    advertise_addr: str = AdvertiseOpt,
    listen_addr: str = ListenOpt,
) -> None:
    """Bring a swarm back from a backup on a host outside any swarm: this node becomes its
    only manager, in the place of the manager the backup was taken on."""
    if not key:
        if sys.stdin.isatty():
            key = typer.prompt("Backup key", hide_input=True)
        else:
            key = sys.stdin.readline()
    query = urllib.parse.urlencode({"advertise-addr": advertise_addr, "listen-addr": listen_addr})
    headers = {KEY_HEADER: key.strip(), "Content-Type": "application/octet-stream"}
    resp = _request("POST", f"/shoal/swarm/restore?{query}", file.read_bytes(), headers)
    node_id = json.loads(_check(resp))
    typer.echo(f"Swarm restored: current node ({node_id}) is its only manager.")
