"""Building the real images' rootfs tarballs from Debian packages, into a cache.

* The **base**: ``mmdebstrap`` (minbase variant, no recommends, no docs) makes a bookworm
  rootfs tarball once: ``<cache>/base-bookworm-<key>.tar`` (half a minute or so).
* An **image**: the base unpacked into a temporary directory under the cache, then, in a
  private mount and pid namespace (``unshare --mount --pid --fork --kill-child``: ``/proc``,
  ``/dev``, a tmpfs ``/tmp`` and the shared apt caches ``<cache>/apt-archives`` (the
  ``.deb``s) and ``<cache>/apt-lists`` (the package lists) bind-mounted into it),
  ``chroot … apt-get install --no-install-recommends <packages>`` (``policy-rc.d`` keeps
  services from starting); the recipe's files are written; a second chroot runs the
  recipe's ``setup``; what apt left in the rootfs under the mounts is removed; GNU tar packs
  it (``/dev``, ``/proc``, ``/sys``, ``/tmp`` empty) into
  ``<cache>/<name>-<tag>-<rootfs key>.tar``, beside a ``.json`` with what was built, when,
  how long it took and the tarball's sha256 (the image layer's diff id, ``archive``).

The cache is ``$SHOAL_IMAGE_CACHE`` or ``/var/cache/shoal/images``; one builder at a time
holds its ``lock`` (``flock``), so concurrent ``shoal lab`` commands and test runs build an
image once and the others reuse it. A tarball is only ever renamed into place complete.
Needs root, ``mmdebstrap`` and the Debian mirrors (``scripts/setup.sh`` installs it).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from shoal.lab.debian import archive
from shoal.lab.debian.recipes import (
    BASE_OPTIONS,
    MIRRORS,
    SUITE,
    Recipe,
    base_key,
    install_script,
    rootfs_key,
    setup_script,
)

Progress = Callable[[str], None]

DEFAULT_CACHE = "/var/cache/shoal/images"
_POLICY_RC = "#!/bin/sh\n# no services start while an image is built\nexit 101\n"


class BuildError(RuntimeError):
    pass


def quiet(_: str) -> None:
    pass


def cache_dir() -> Path:
    return Path(os.environ.get("SHOAL_IMAGE_CACHE") or DEFAULT_CACHE)


def tarball_path(recipe: Recipe, cache: Path | None = None) -> Path:
    return (cache or cache_dir()) / f"{recipe.slug}-{rootfs_key(recipe)}.tar"


def base_path(cache: Path | None = None) -> Path:
    return (cache or cache_dir()) / f"base-{SUITE}-{base_key()}.tar"


@dataclass
class Built:
    recipe: Recipe
    path: Path
    size: int
    seconds: float  # of this call (0 when cached)
    cached: bool


def cached(recipe: Recipe, cache: Path | None = None) -> Built | None:
    path = tarball_path(recipe, cache)
    if not path.is_file():
        return None
    return Built(recipe, path, path.stat().st_size, 0.0, True)


@contextlib.contextmanager
def cache_lock(cache: Path) -> Iterator[None]:
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / "lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def build(
    recipes: list[Recipe], *, rebuild: bool = False, progress: Progress = quiet
) -> list[Built]:
    """The recipes' tarballs, built unless cached (all of them again with rebuild)."""
    cache = cache_dir()
    out = []
    rebuild_base = rebuild  # once per call, not once per image
    with cache_lock(cache):
        for stale in cache.glob("build-*"):  # left by a builder that was killed
            shutil.rmtree(stale, ignore_errors=True)
        for stale in cache.glob("*.tmp.tar"):
            stale.unlink()
        for recipe in recipes:
            hit = None if rebuild else cached(recipe, cache)
            if hit is not None:
                out.append(hit)
                continue
            _check_tools()
            t0 = time.monotonic()
            base = _ensure_base(cache, rebuild_base, progress)
            rebuild_base = False
            progress(f"{recipe.ref()}: building from {base.name}")
            path = _build_image(cache, base, recipe)
            built = Built(recipe, path, path.stat().st_size, time.monotonic() - t0, False)
            _write_meta(built)
            _remove_stale(cache, recipe, keep=path)
            progress(f"{recipe.ref()}: {built.size / 1e6:.0f} MB in {built.seconds:.0f} s")
            out.append(built)
    return out


def _check_tools() -> None:
    if os.geteuid() != 0:
        raise BuildError("building the lab's Debian images needs root")
    for tool in ("mmdebstrap", "unshare", "chroot", "tar"):
        if not shutil.which(tool):
            raise BuildError(f"{tool} not found: apt-get install mmdebstrap (scripts/setup.sh)")


def _run(argv: list[str], log: Path, what: str) -> None:
    with open(log, "ab") as f:
        f.write(f"\n$ {shlex.join(argv)}\n".encode())
        f.flush()
        proc = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-4000:]
        raise BuildError(f"{what} failed (exit {proc.returncode}, log {log}):\n{tail}")


def _ensure_base(cache: Path, rebuild: bool, progress: Progress) -> Path:
    path = base_path(cache)
    if path.is_file() and not rebuild:
        return path
    progress(f"base: mmdebstrap {SUITE} minbase")
    tmp = path.with_suffix(".tmp.tar")
    log = cache / "base.log"
    log.write_text("")
    _run(["mmdebstrap", "--mode=root", *BASE_OPTIONS, SUITE, str(tmp), *MIRRORS], log, "mmdebstrap")
    tmp.rename(path)
    for old in cache.glob(f"base-{SUITE}-*.tar"):
        if old != path:
            old.unlink()
    return path


def _chroot(root: Path, script: str, log: Path, what: str, cache: Path) -> None:
    (root / "shoal-build.sh").write_text(script)
    r = shlex.quote(str(root))
    mounts = [
        f"mount -t proc proc {r}/proc",
        f"mount --rbind /dev {r}/dev",
        f"mount -t tmpfs tmpfs {r}/tmp",
    ]
    for shared, inside in (
        ("apt-archives", "var/cache/apt/archives"),
        ("apt-lists", "var/lib/apt/lists"),
    ):
        mounts.append(f"mount --bind {shlex.quote(str(cache / shared))} {r}/{inside}")
    inner = " && ".join([*mounts, f"exec chroot {r} /bin/sh -e /shoal-build.sh"])
    _run(["unshare", "--mount", "--pid", "--fork", "--kill-child", "--propagation", "private",
          "sh", "-c", inner], log, what)  # fmt: skip


def _build_image(cache: Path, base: Path, recipe: Recipe) -> Path:
    log = cache / f"{recipe.slug}.log"
    log.write_text("")
    for shared in ("apt-archives", "apt-lists"):
        (cache / shared / "partial").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"build-{recipe.slug}-", dir=cache) as tmp:
        root = Path(tmp, "rootfs")
        root.mkdir()
        _run(["tar", "-xf", str(base), "-C", str(root), "--numeric-owner"], log, "unpack base")
        policy = root / "usr/sbin/policy-rc.d"
        policy.write_text(_POLICY_RC)
        policy.chmod(0o755)
        resolv = root / "etc/resolv.conf"
        resolv.unlink(missing_ok=True)
        shutil.copyfile("/etc/resolv.conf", resolv)
        _chroot(root, install_script(recipe), log, f"{recipe.name}: apt-get install", cache)
        for f in recipe.files:
            dest = root / f.path.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(f.text)
            dest.chmod(f.mode)
        _chroot(root, setup_script(recipe), log, f"{recipe.name}: setup", cache)
        for leftover in ("var/lib/apt/lists", "var/cache/apt"):  # under the shared mounts
            for p in (root / leftover).glob("*"):
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink()
        (root / "var/cache/apt/archives/partial").mkdir(parents=True)
        (root / "var/lib/apt/lists/partial").mkdir(parents=True)
        resolv.write_text("")  # the engine mounts its own
        out = tarball_path(recipe, cache)
        part = out.with_suffix(".tmp.tar")
        _run(
            ["tar", "-cf", str(part), "-C", str(root), "--numeric-owner", "--xattrs",
             "--sort=name", "--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*",
             "--exclude=./tmp/*", "."],
            log, f"{recipe.name}: tar",
        )  # fmt: skip
        part.rename(out)
    return out


def _write_meta(built: Built) -> None:
    meta = {
        "ref": built.recipe.ref(),
        "rootfs_key": rootfs_key(built.recipe),
        "packages": list(built.recipe.packages),
        "size": built.size,
        "diff_id": archive.file_sha256(built.path),
        "seconds": round(built.seconds, 1),
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    built.path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")


def _remove_stale(cache: Path, recipe: Recipe, keep: Path) -> None:
    """Tarballs of older versions of the recipe."""
    for old in cache.glob(f"{recipe.slug}-*.tar"):
        if old != keep and not old.name.endswith(".tmp.tar"):
            old.unlink()
            old.with_suffix(".json").unlink(missing_ok=True)
