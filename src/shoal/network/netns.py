"""Named network namespaces (``/run/netns/<name>``, as ``ip netns`` keeps them) and work done
inside one: sockets made there, sysctls written there.

A thread that enters a network namespace (setns) changes only its own view, so each such
piece of work runs on a short-lived thread of its own; the sockets it makes stay in that
namespace for their whole life and are then used from shoald's event loop like any other.
No process is forked.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import socket
import threading
from collections.abc import Callable
from typing import TypeVar

from shoal.network.names import NETNS_DIR

CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MS_REC = 16384
MS_SHARED = 1 << 20
MNT_DETACH = 2

T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def path(name: str, directory: str = NETNS_DIR) -> str:
    return os.path.join(directory, name)


def listed(directory: str = NETNS_DIR) -> list[str]:
    try:
        return sorted(os.listdir(directory))
    except FileNotFoundError:
        return []


def exists(name: str, directory: str = NETNS_DIR) -> bool:
    """A namespace is mounted under the name (not just the empty file it would be mounted on,
    which an interrupted create or delete leaves)."""
    return _is_nsfs(path(name, directory))


def mounted(ns_path: str) -> bool:
    """A namespace is mounted at ns_path (a container's sandbox key, say)."""
    return _is_nsfs(ns_path)


def run_in(ns_path: str, fn: Callable[[], T]) -> T:
    """fn() on a thread inside the network namespace at ns_path (blocking; short work)."""
    result: dict[str, object] = {}

    def work() -> None:
        try:
            fd = os.open(ns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _check(_libc.setns(fd, CLONE_NEWNET), f"setns {ns_path}")
            finally:
                os.close(fd)
            result["value"] = fn()
        except BaseException as e:  # re-raised in the caller
            result["error"] = e

    t = threading.Thread(target=work, name="shoal-netns", daemon=True)
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["value"]  # type: ignore[return-value]


def socket_in(ns_path: str, family: int, kind: int, proto: int = 0) -> socket.socket:
    """A socket that lives in the namespace at ns_path."""
    return run_in(ns_path, lambda: socket.socket(family, kind, proto))


def sysctl(values: dict[str, str]) -> None:
    """Write net sysctls in the caller's namespace (keys like
    ``net/ipv6/conf/all/disable_ipv6``); those the kernel does not have are skipped."""
    for key, value in values.items():
        with contextlib.suppress(FileNotFoundError), open(f"/proc/sys/{key}", "w") as f:
            f.write(value)


def sysctl_in(ns_path: str, values: dict[str, str]) -> None:
    """`sysctl` inside the namespace at ns_path."""
    run_in(ns_path, lambda: sysctl(values))


def create(name: str, directory: str = NETNS_DIR) -> str:
    """Make the named namespace (as ``ip netns add``); returns its path. If the name exists
    already, it is kept."""
    target = path(name, directory)
    if _is_nsfs(target):
        return target
    _share_dir(directory)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(target, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444))

    def make() -> None:
        _check(_libc.unshare(CLONE_NEWNET), "unshare")
        tid = threading.get_native_id()
        _check(
            _libc.mount(
                f"/proc/self/task/{tid}/ns/net".encode(), target.encode(), None, MS_BIND, None
            ),
            f"mount {target}",
        )

    try:
        _run_detached(make)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(target)
        raise
    return target


def delete(name: str, directory: str = NETNS_DIR) -> None:
    """Remove the named namespace (as ``ip netns delete``); its devices go once nothing else
    holds it (close its sockets first)."""
    target = path(name, directory)
    if _libc.umount2(target.encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):
            raise OSError(err, f"umount {target}: {os.strerror(err)}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(target)


def _run_detached(fn: Callable[[], None]) -> None:
    """fn() on a thread of its own, which then ends (it may have left our namespace)."""
    result: dict[str, BaseException] = {}

    def work() -> None:
        try:
            fn()
        except BaseException as e:
            result["error"] = e

    t = threading.Thread(target=work, name="shoal-netns-new", daemon=True)
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]


def _is_nsfs(p: str) -> bool:
    """A bind-mounted namespace (not the empty file it is mounted on)."""
    try:
        return os.stat(p).st_dev != os.stat(os.path.dirname(p)).st_dev
    except FileNotFoundError:
        return False


def _share_dir(directory: str) -> None:
    """As iproute2 does: the directory is a shared mount point, so namespaces mounted in it
    are seen from other mount namespaces that share it."""
    os.makedirs(directory, exist_ok=True)
    d = directory.encode()
    if _libc.mount(b"none", d, None, MS_SHARED | MS_REC, None) == 0:
        return
    _check(_libc.mount(d, d, b"none", MS_BIND | MS_REC, None), f"bind {directory}")
    _check(_libc.mount(b"none", d, None, MS_SHARED | MS_REC, None), f"share {directory}")
