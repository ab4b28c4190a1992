"""The real images into an engine (``docker load`` of the cached tarball as a one-layer
image, streamed: ``archive``) and on to a lab registry.

``ensure(host, recipes, prefix)`` makes sure the engine at host has ``<prefix>/<name>:<tag>``
for each recipe, labelled ``shoal.lab.digest`` with the recipe's ``image_digest``: an image
that is there with that label is left alone (a second call takes milliseconds), otherwise the
tarball is built (or taken from the cache) and loaded with the recipe's config.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from shoal.lab.api import UnixHTTPConnection, api_request, socket_path_of
from shoal.lab.debian import archive
from shoal.lab.debian import build as builder
from shoal.lab.debian.recipes import DIGEST_LABEL, Recipe, image_digest
from shoal.lab.registry import push

PARALLEL = 3
T = TypeVar("T")


def has_image(host: str, ref: str, digest: str) -> bool:
    status, body = api_request(host, "GET", f"/images/{urllib.parse.quote(ref, safe='/:')}/json")
    if status != 200:
        return False
    labels = (json.loads(body).get("Config") or {}).get("Labels") or {}
    return bool(labels.get(DIGEST_LABEL) == digest)


def _layer_facts(built: builder.Built) -> tuple[str, str]:
    """(diff id, created) of a cached tarball, from its .json (computed once if missing)."""
    meta_path = built.path.with_suffix(".json")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        meta = {}
    if not meta.get("diff_id"):
        meta["diff_id"] = archive.file_sha256(built.path)
        meta.setdefault(
            "built", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(built.path.stat().st_mtime))
        )
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return str(meta["diff_id"]), str(meta["built"])


def load_image(host: str, built: builder.Built, tags: list[str]) -> str:
    """``POST /images/load`` of the tarball as a one-layer image tagged tags; the image ID."""
    diff_id, created = _layer_facts(built)
    body = archive.LoadArchive(built.recipe, tags, built.path, diff_id, created)
    conn = UnixHTTPConnection(socket_path_of(host), timeout=600.0)
    try:
        headers = {"Content-Type": "application/x-tar", "Content-Length": str(len(body))}
        conn.request("POST", "/images/load?quiet=1", body=iter(body), headers=headers)
        resp = conn.getresponse()
        answer = resp.read().decode(errors="replace")
    except BrokenPipeError:  # the engine refused it before reading it all: say why
        resp = conn.getresponse()
        answer = resp.read().decode(errors="replace")
    finally:
        conn.close()
    if resp.status != 200:
        raise RuntimeError(f"load {tags[0]}: HTTP {resp.status}: {answer}")
    for line in answer.splitlines():
        if line.strip():
            msg = json.loads(line)
            if "error" in msg or "errorDetail" in msg:
                raise RuntimeError(f"load {tags[0]}: {msg}")
    return body.image_id


def ensure(
    host: str,
    recipes: list[Recipe],
    prefix: str = "shoal-lab",
    *,
    progress: builder.Progress = builder.quiet,
) -> list[str]:
    """The recipes' images in the engine at host under prefix (built if need be); the refs."""
    refs = [r.ref(prefix) for r in recipes]
    missing = [r for r in recipes if not has_image(host, r.ref(prefix), image_digest(r))]
    built = builder.build(missing, progress=progress)

    def load(b: builder.Built) -> None:
        load_image(host, b, [b.recipe.ref(prefix)])
        progress(f"{b.recipe.ref(prefix)}: loaded")

    _parallel(load, built)
    return refs


def _parallel(fn: Callable[[T], None], items: list[T]) -> None:
    """fn on each item, a few at a time (loads and pushes are mostly I/O and compression in
    the engine); the first error is raised once all are done."""
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        futures = [pool.submit(fn, i) for i in items]
    for f in futures:
        f.result()


def push_to_registry(
    engine: str,
    registry: str,
    recipes: list[Recipe],
    *,
    progress: builder.Progress = builder.quiet,
) -> list[str]:
    """The recipes' images pushed to the registry as ``registry/shoal-lab/<name>:<tag>``
    (imported into engine first when missing there); the refs."""
    refs = ensure(engine, recipes, f"{registry}/shoal-lab", progress=progress)

    def push_one(ref: str) -> None:
        push(engine, ref)
        progress(f"{ref}: pushed")

    _parallel(push_one, refs)
    return refs
