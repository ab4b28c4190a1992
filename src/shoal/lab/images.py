"""Images built without any registry, from Debian's ``busybox-static``.

``image_set(prefix)`` gives, for a repository prefix (``shoal-test`` for the tests,
``shoal-lab`` for the lab registry):

* ``<prefix>/busybox:1`` — ``/bin/busybox`` plus a symlink per applet (sh, sleep, echo,
  cat, hostname, wget, nc, httpd, ip, …), ``/etc/passwd``/``group``; ``CMD ["sh"]``.
* ``<prefix>/whoami:1`` and ``:2`` — the same plus ``/serve``: busybox ``httpd`` on
  ``$PORT`` (default 80) answering

  - ``/``          ``Hostname: <hostname>\\nVersion: <1|2>\\n``
  - ``/hostname``  ``<hostname>\\n``
  - ``/version``   ``<1|2>\\n``
  - ``/cgi-bin/whoami``  hostname, version, the client's address and the container's IPv4
    addresses (a CGI, evaluated per request).

  SIGTERM stops it at once (no 10 s stop timeout). The two tags differ in content, so they
  have different image IDs (rolling updates, rollbacks).

Images are imported with ``POST /images/create?fromSrc=-`` (``docker import``) from a
deterministic tarball; ``ensure_images`` labels each with ``shoal.test.digest`` and skips an
image that is already there with the same content (idempotent, ~0.2 s per import otherwise).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import tarfile
import urllib.parse
from functools import lru_cache

from shoal.lab.api import api_request

DIGEST_LABEL = "shoal.test.digest"

_MTIME = 1_700_000_000
_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_SERVE = r"""#!/bin/sh
# whoami: answer HTTP with this container's hostname and the image's version.
port="${PORT:-80}"
version="$(cat /etc/whoami-version)"
host="$(hostname)"
printf 'Hostname: %s\nVersion: %s\n' "$host" "$version" > /www/index.html
printf '%s\n' "$host" > /www/hostname
printf '%s\n' "$version" > /www/version
httpd -f -v -p "$port" -h /www &
pid=$!
trap 'kill "$pid" 2>/dev/null; exit 0' TERM INT
wait "$pid"
"""

_CGI = r"""#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
echo "Hostname: $(hostname)"
echo "Version: $(cat /etc/whoami-version)"
addr=${REMOTE_ADDR#\[}; addr=${addr%\]}; echo "RemoteAddr: ${addr#::ffff:}"
ip -4 -o addr show | while read -r _ dev _ addr _; do echo "IP: $addr ($dev)"; done
"""

_PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
_GROUP = "root:x:0:\nnogroup:x:65534:\n"


def busybox_binary() -> str:
    """Path of a *statically linked* busybox (Debian package ``busybox-static``)."""
    for cand in (os.environ.get("SHOAL_TEST_BUSYBOX"), "/bin/busybox", shutil.which("busybox")):
        if cand and os.path.isfile(cand) and _is_static_elf(cand):
            return cand
    raise FileNotFoundError(
        "no statically linked busybox found: apt-get install busybox-static (scripts/setup.sh)"
    )


def _is_static_elf(path: str) -> bool:
    """An ELF64 little-endian executable without a PT_INTERP program header."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
            return False
        (phoff,) = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != 3 for i in range(phnum))


@lru_cache(maxsize=1)
def _applets() -> tuple[str, ...]:
    out = subprocess.run(
        [busybox_binary(), "--list"], capture_output=True, text=True, check=True
    ).stdout
    return tuple(sorted(a for a in out.split() if a and "/" not in a and a != "busybox"))


def _rootfs(extra: dict[str, tuple[bytes, int]]) -> bytes:
    """A deterministic rootfs tarball: busybox, applet links, /etc basics, extra files."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:

        def add(
            name: str,
            *,
            data: bytes | None = None,
            mode: int = 0o755,
            kind: bytes = tarfile.REGTYPE,
            link: str = "",
        ) -> None:
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.mtime, ti.linkname = kind, mode, _MTIME, link
            ti.uname = ti.gname = "root"
            if data is not None:
                ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data) if data is not None else None)

        for d in (
            "bin",
            "dev",
            "etc",
            "proc",
            "root",
            "sys",
            "usr",
            "usr/bin",
            "var",
            "www",
            "www/cgi-bin",
        ):
            add(d, kind=tarfile.DIRTYPE)
        add("tmp", kind=tarfile.DIRTYPE, mode=0o1777)
        with open(busybox_binary(), "rb") as f:
            add("bin/busybox", data=f.read())
        for applet in _applets():
            add(f"bin/{applet}", kind=tarfile.SYMTYPE, link="busybox")
        add("usr/bin/env", kind=tarfile.SYMTYPE, link="../../bin/busybox")
        add("etc/passwd", data=_PASSWD.encode(), mode=0o644)
        add("etc/group", data=_GROUP.encode(), mode=0o644)
        for name, (data, mode) in sorted(extra.items()):
            add(name, data=data, mode=mode)
    return buf.getvalue()


def _digest(tar: bytes, changes: list[str]) -> str:
    h = hashlib.sha256(tar)
    h.update(json.dumps(changes).encode())
    return h.hexdigest()[:24]


def image_id(host: str, ref: str) -> str | None:
    status, body = api_request(host, "GET", f"/images/{ref}/json")
    return json.loads(body)["Id"] if status == 200 else None


def import_image(
    host: str, ref: str, tar: bytes, changes: list[str], message: str = "shoal image"
) -> str:
    """``docker import`` through the Engine API; returns the image ID."""
    repo, tag = ref.rsplit(":", 1)
    query = urllib.parse.urlencode(
        [("fromSrc", "-"), ("repo", repo), ("tag", tag), ("message", message)]
        + [("changes", c) for c in changes]
    )
    status, body = api_request(
        host,
        "POST",
        f"/images/create?{query}",
        body=tar,
        headers={"Content-Type": "application/x-tar"},
    )
    if status != 200:
        raise RuntimeError(f"import {ref}: HTTP {status}: {body.decode(errors='replace')}")
    for line in body.decode().splitlines():
        if line.strip():
            msg = json.loads(line)
            if "error" in msg or "errorDetail" in msg:
                raise RuntimeError(f"import {ref}: {msg}")
    iid = image_id(host, ref)
    if iid is None:
        raise RuntimeError(f"import {ref}: image missing after import: {body!r}")
    return iid


Images = dict[str, tuple[bytes, list[str]]]


@lru_cache(maxsize=4)
def image_set(prefix: str) -> Images:
    """ref → (rootfs tarball, Dockerfile-style changes) for busybox:1, whoami:1 and :2 under
    prefix (cached: do not mutate)."""
    base_changes = [f"ENV {_PATH}"]
    images = {f"{prefix}/busybox:1": (_rootfs({}), [*base_changes, 'CMD ["sh"]'])}
    for version in ("1", "2"):
        tar = _rootfs(
            {
                "serve": (_SERVE.encode(), 0o755),
                "www/cgi-bin/whoami": (_CGI.encode(), 0o755),
                "etc/whoami-version": (f"{version}\n".encode(), 0o644),
            }
        )
        changes = [*base_changes, "EXPOSE 80/tcp", 'CMD ["/serve"]']
        images[f"{prefix}/whoami:{version}"] = (tar, changes)
    return images


def ensure_images(
    host: str, images: Images, refs: tuple[str, ...] | None = None, message: str = "shoal image"
) -> dict[str, str]:
    """Make sure the images (or those of them named in refs) exist in the engine at host,
    each labelled with its content digest; returns ref → image ID."""
    ids = {}
    for ref, (tar, changes) in images.items():
        if refs is not None and ref not in refs:
            continue
        digest = _digest(tar, changes)
        status, body = api_request(host, "GET", f"/images/{ref}/json")
        if status == 200:
            info = json.loads(body)
            if ((info.get("Config") or {}).get("Labels") or {}).get(DIGEST_LABEL) == digest:
                ids[ref] = info["Id"]
                continue
        ids[ref] = import_image(
            host, ref, tar, [*changes, f"LABEL {DIGEST_LABEL}={digest}"], message
        )
    return ids
