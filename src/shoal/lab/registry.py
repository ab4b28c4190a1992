"""The lab registries: Debian's ``docker-registry`` on its own host, and the lab's images.

They run in a host of their own (``<lab>-registry``, ``10.211.N.2``: namespaces and an init,
no engine) and serve plain HTTP; every lab dockerd lists the lab subnet in
``insecure-registries``:

* ``10.211.N.2:5000`` — open to all. ``push_images`` builds ``shoal-lab/busybox:1``,
  ``shoal-lab/whoami:1`` and ``:2`` from busybox-static (``shoal.lab.images``) into one
  node's engine, tags them ``<registry>/shoal-lab/…`` and pushes them.
* ``10.211.N.2:5001`` — the same software behind a login (htpasswd, bcrypt: one user, the
  lab's, its password made at ``up``), holding private copies of ``shoal-lab/whoami:1`` and
  ``:2`` (``push_private``): for ``docker login`` and ``--with-registry-auth``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
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
AUTH = """\
auth:
  htpasswd:
    realm: shoal-lab
    path: {htpasswd}
"""
PRIVATE_IMAGES = ("shoal-lab/whoami:1", "shoal-lab/whoami:2")
BCRYPT_COST = 5  # the registry checks the password on every request: keep that cheap


def binary() -> str:
    found = shutil.which("docker-registry") or shutil.which("registry")
    if not found:
        raise LabError(
            "docker-registry not found: apt-get install docker-registry (scripts/setup.sh)"
        )
    return found


def htpasswd_path(host: Host) -> str:
    return os.path.join(host.dir, "htpasswd")


def write_htpasswd(path: str, user: str, password: str) -> None:
    """The registry's password file: one user, a bcrypt hash (Debian's ``htpasswd``, from
    apache2-utils; the password goes through its standard input). The registry reads the
    file again when it changes: a new password counts from the next request on."""
    tool = shutil.which("htpasswd")
    if not tool:
        raise LabError("htpasswd not found: apt-get install apache2-utils (scripts/setup.sh)")
    proc = subprocess.run(
        [tool, "-n", "-i", "-B", "-C", str(BCRYPT_COST), user],
        input=password, capture_output=True, text=True, check=False,
    )  # fmt: skip
    line = proc.stdout.strip()
    if proc.returncode != 0 or not line.startswith(f"{user}:$2"):
        raise LabError(f"htpasswd failed (exit {proc.returncode}): {proc.stderr.strip()}")
    tmp = Path(path + ".tmp")
    tmp.write_text(line + "\n")
    tmp.replace(path)


def start(host: Host, addr: str, *, htpasswd: str | None = None) -> int:
    """Start a registry inside host, listening on addr (behind a login when an htpasswd file
    is given); returns its pid once it answers."""
    name = "registry-auth" if htpasswd else "registry"
    data = os.path.join(host.dir, "data-auth" if htpasswd else "data")
    os.makedirs(data, exist_ok=True)
    config = Path(host.dir, f"{name}.yml")
    text = CONFIG.format(data=data, addr=addr)
    if htpasswd:
        text += AUTH.format(htpasswd=htpasswd)
    config.write_text(text)
    log = os.path.join(host.dir, f"{name}.log")
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
    pid = host.spawn([binary(), "serve", str(config)], log, env)
    deadline = time.monotonic() + 20.0
    while not answers(host, addr, login=bool(htpasswd)):
        code = host.exit_status(pid)
        if code is not None or time.monotonic() > deadline:
            tail = Path(log).read_text(errors="replace")[-3000:] if os.path.exists(log) else ""
            raise LabError(f"the lab registry {addr} did not start (exit {code}):\n{tail}")
        time.sleep(0.05)
    return pid


def answers(host: Host, addr: str, login: bool = False) -> bool:
    """The registry at addr answers its API root (401 when it wants a login)."""
    ip, port = addr.rsplit(":", 1)
    with contextlib.suppress(OSError):
        status, _ = host.http_get(int(port), "/v2/", host=ip, timeout=2.0)
        return status == (401 if login else 200)
    return False


def registry_auth(user: str = "", password: str = "", server: str = "") -> str:
    """An ``X-Registry-Auth`` header value (base64url of the JSON AuthConfig)."""
    config = {"username": user, "password": password, "serveraddress": server} if user else {}
    return base64.urlsafe_b64encode(json.dumps(config).encode()).decode()


def push(engine: str, ref: str, auth: str | None = None) -> None:
    """Push ref from engine to the registry its name starts with."""
    name, tag = ref.rsplit(":", 1)
    auth = auth or registry_auth()
    status, body = api_request(
        engine,
        "POST",
        f"/images/{urllib.parse.quote(name, safe='/:')}/push?tag={tag}",
        headers={"X-Registry-Auth": auth},
        timeout=600.0,  # the lab's Debian images are a few hundred MB
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
        push(engine, ref)
    return list(images)


def push_private(engine: str, registry: str, private: str, user: str, password: str) -> list[str]:
    """Copy ``PRIVATE_IMAGES`` (built by ``push_images`` under ``registry/``) to the registry
    that wants a login, ``private/``; returns their refs there."""
    auth = registry_auth(user, password, private)
    refs = []
    for image in PRIVATE_IMAGES:
        name, tag = image.rsplit(":", 1)
        query = urllib.parse.urlencode({"repo": f"{private}/{name}", "tag": tag})
        status, body = api_request(engine, "POST", f"/images/{registry}/{image}/tag?{query}")
        if status >= 300:
            raise LabError(f"tag {image} for {private}: HTTP {status}: {body.decode()}")
        push(engine, f"{private}/{image}", auth)
        refs.append(f"{private}/{image}")
    return refs
