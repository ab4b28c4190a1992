"""The lab registry: Debian's ``docker-registry`` on its own host, and the lab's images.

It runs in a host of its own (``<lab>-registry``, ``10.211.N.2``: namespaces and an init,
no engine) and serves ``10.211.N.2:5000`` over plain HTTP; every lab dockerd lists the lab
subnet in ``insecure-registries``. ``push_images`` builds ``shoal-lab/busybox:1``,
``shoal-lab/whoami:1`` and ``:2`` from busybox-static (``shoal.lab.images``) into one
node's engine, tags them ``<registry>/shoal-lab/…`` and pushes them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from shoal.lab.api import api_request
from shoal.lab.host import Host
from shoal.lab.images import ensure_images, image_set
from shoal.lab.state import LabError

CONFIG = """\
version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {data}
  delete:
    enabled: true
http:
  addr: {addr}
"""


def binary() -> str:
    found = shutil.which("docker-registry") or shutil.which("registry")
    if not found:
        raise LabError(
            "docker-registry not found: apt-get install docker-registry (scripts/setup.sh)"
        )
    return found


def start(host: Host, addr: str) -> int:
    """Start the registry inside host, listening on addr; returns its pid once it answers."""
    data = os.path.join(host.dir, "data")
    os.makedirs(data, exist_ok=True)
    config = Path(host.dir, "registry.yml")
    config.write_text(CONFIG.format(data=data, addr=addr))
    log = os.path.join(host.dir, "registry.log")
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
    pid = host.spawn([binary(), "serve", str(config)], log, env)
    deadline = time.monotonic() + 20.0
    while not answers(host, addr):
        code = host.exit_status(pid)
        if code is not None or time.monotonic() > deadline:
            tail = Path(log).read_text(errors="replace")[-3000:] if os.path.exists(log) else ""
            raise LabError(f"the lab registry did not start (exit {code}):\n{tail}")
        time.sleep(0.05)
    return pid


def answers(host: Host, addr: str) -> bool:
    ip, port = addr.rsplit(":", 1)
    with contextlib.suppress(OSError):
        status, _ = host.http_get(int(port), "/v2/", host=ip, timeout=2.0)
        return status == 200
    return False


def _push(engine: str, ref: str) -> None:
    name, tag = ref.rsplit(":", 1)
    auth = base64.urlsafe_b64encode(b"{}").decode()
    status, body = api_request(
        engine,
        "POST",
        f"/images/{urllib.parse.quote(name, safe='/:')}/push?tag={tag}",
        headers={"X-Registry-Auth": auth},
        timeout=120.0,
    )
    if status != 200:
        raise LabError(f"push {ref}: HTTP {status}: {body.decode(errors='replace')}")
    for line in body.decode(errors="replace").splitlines():
        if line.strip():
            msg = json.loads(line)
            if "error" in msg or "errorDetail" in msg:
                raise LabError(f"push {ref}: {msg.get('error') or msg.get('errorDetail')}")


def push_images(engine: str, registry: str) -> list[str]:
    """Build the lab images into engine under ``registry/``, push them; returns the refs."""
    images = image_set(f"{registry}/shoal-lab")
    ensure_images(engine, images, message="shoal lab image")
    for ref in images:
        _push(engine, ref)
    return list(images)
