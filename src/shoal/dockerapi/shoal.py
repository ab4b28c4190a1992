"""shoal's own endpoints beside the Engine API, under `/shoal/`: swarm backups and restores
(`shoal swarm backup|restore`). Nothing of Docker's uses these paths."""

from __future__ import annotations

from aiohttp import web

from shoal.api.errors import BadRequest
from shoal.dockerapi.http import Routes, json_response, node_of

KEY_HEADER = "X-Shoal-Backup-Key"


async def backup(request: web.Request) -> web.StreamResponse:
    """The backup file as the body; the key made for it in `X-Shoal-Backup-Key` (absent
    when autolock is on: the swarm's unlock key opens it)."""
    data, key = await node_of(request).backup()
    headers = {"Content-Type": "application/octet-stream"}
    if key is not None:
        headers[KEY_HEADER] = key
    return web.Response(body=data, headers=headers)


async def restore(request: web.Request) -> web.StreamResponse:
    """The backup file as the body, its key in `X-Shoal-Backup-Key`; `?advertise-addr=` and
    `?listen-addr=` as `swarm init`'s. Answers the node ID."""
    key = request.headers.get(KEY_HEADER, "").strip()
    if not key:
        raise BadRequest("the backup's key is required (X-Shoal-Backup-Key)")
    req = {
        "AdvertiseAddr": request.query.get("advertise-addr", ""),
        "ListenAddr": request.query.get("listen-addr", ""),
    }
    node_id = await node_of(request).restore(await request.read(), key, req)
    return json_response(node_id)


def add_routes(routes: Routes) -> None:
    routes.add("POST", "/shoal/swarm/backup", backup)
    routes.add("POST", "/shoal/swarm/restore", restore, fresh=False)
