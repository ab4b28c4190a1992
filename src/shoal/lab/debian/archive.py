"""A recipe's rootfs tarball as a ``docker load`` archive: one layer and an image config
written here, so every field of the config is ours (``docker import --change`` knows no
``STOPSIGNAL``, for one).

The archive (streamed to ``POST /images/load``, never written to disk) holds
``manifest.json``, ``<config sha256>.json`` and ``<diff id>/layer.tar`` — the cached tarball
itself, whose sha256 is the layer's diff id. The image ID is the sha256 of the config:
the same recipe and tarball give the same image ID in every engine.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shoal.lab.debian.recipes import DIGEST_LABEL, PATH, Recipe, image_digest

_BLOCK = 512
_CHUNK = 1 << 20


def architecture() -> str:
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(m, m)


def container_config(recipe: Recipe) -> dict[str, Any]:
    """The image's ``config``: Env, Entrypoint, Cmd, ExposedPorts, Volumes, StopSignal, User,
    WorkingDir, Labels (with ``shoal.lab.digest``)."""
    env = {"PATH": PATH}
    env.update(dict(recipe.env))
    config: dict[str, Any] = {"Env": [f"{k}={v}" for k, v in env.items()]}
    if recipe.entrypoint:
        config["Entrypoint"] = list(recipe.entrypoint)
    if recipe.cmd:
        config["Cmd"] = list(recipe.cmd)
    if recipe.ports:
        config["ExposedPorts"] = {p: {} for p in recipe.ports}
    if recipe.volumes:
        config["Volumes"] = {v: {} for v in recipe.volumes}
    if recipe.stop_signal:
        config["StopSignal"] = recipe.stop_signal
    if recipe.user:
        config["User"] = recipe.user
    if recipe.workdir:
        config["WorkingDir"] = recipe.workdir
    config["Labels"] = {**dict(recipe.labels), DIGEST_LABEL: image_digest(recipe)}
    return config


def image_config(recipe: Recipe, diff_id: str, created: str) -> dict[str, Any]:
    """The whole image config (``application/vnd.docker.container.image.v1+json``)."""
    return {
        "architecture": architecture(),
        "os": "linux",
        "created": created,
        "config": container_config(recipe),
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [
            {
                "created": created,
                "created_by": "shoal lab images build " + recipe.name
                + (f" (Debian packages: {' '.join(recipe.packages)})" if recipe.packages else ""),
            }
        ],
    }  # fmt: skip


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


class LoadArchive:
    """The ``docker load`` stream for one image: ``len()`` is its Content-Length, iterating
    gives its bytes (the layer read from disk a MB at a time)."""

    def __init__(
        self, recipe: Recipe, tags: list[str], tarball: Path, diff_id: str, created: str
    ) -> None:
        self.tarball = tarball
        self.layer_size = tarball.stat().st_size
        config = json.dumps(image_config(recipe, diff_id, created), sort_keys=True).encode()
        self.image_id = "sha256:" + hashlib.sha256(config).hexdigest()
        config_name = self.image_id.split(":", 1)[1] + ".json"
        self.layer_name = diff_id.split(":", 1)[1] + "/layer.tar"
        manifest = [{"Config": config_name, "RepoTags": tags, "Layers": [self.layer_name]}]
        self.head = _member(config_name, config) + _member(
            "manifest.json", json.dumps(manifest).encode()
        )
        self.layer_header = _header(self.layer_name, self.layer_size)

    def __len__(self) -> int:
        return len(self.head) + _BLOCK + _padded(self.layer_size) + 2 * _BLOCK

    def __iter__(self) -> Iterator[bytes]:
        yield self.head
        yield self.layer_header
        with open(self.tarball, "rb") as f:
            while chunk := f.read(_CHUNK):
                yield chunk
        yield b"\0" * (_padded(self.layer_size) - self.layer_size + 2 * _BLOCK)


def _header(name: str, size: int) -> bytes:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = size, 0o644, 0
    return ti.tobuf(format=tarfile.USTAR_FORMAT)


def _member(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    buf.write(_header(name, len(data)))
    buf.write(data)
    buf.write(b"\0" * (_padded(len(data)) - len(data)))
    return buf.getvalue()


def _padded(n: int) -> int:
    return (n + _BLOCK - 1) // _BLOCK * _BLOCK
