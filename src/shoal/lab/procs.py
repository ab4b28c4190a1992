"""Processes, namespaces, cgroups and mounts as ``/proc`` shows them (no root-only magic).

Used to find and kill everything that belongs to a lab host or a test engine: processes in
its namespaces, in its cgroups, or whose command line names its directory.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

# containerd's task state under a dockerd exec root (one init.pid per running container).
TASK_GLOB = "containerd/daemon/io.containerd.runtime.v2.task/*/*/init.pid"


def pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def alive(pid: int | None) -> bool:
    """True if pid exists and is not a zombie."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def start_time(pid: int | None) -> str | None:
    """The process's start time in clock ticks: with the pid, identifies one process."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def same_process(pid: int | None, start: str | None) -> bool:
    """pid is alive and is still the process that started at ``start`` (not a reused pid)."""
    return bool(pid) and start is not None and start_time(pid) == start and alive(pid)


def ns_id(pid: int, kind: str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return None


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def kill(pid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def wait_dead(pid_list: Iterable[int], timeout: float) -> bool:
    """Wait until none of the pids is alive; True if they all died in time."""
    todo = [p for p in pid_list if p]
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in todo):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def mentioning(text: str) -> list[int]:
    """Live pids whose command line contains text."""
    return [p for p in pids() if text in cmdline(p) and alive(p)]


def container_inits(exec_root: str) -> set[int]:
    """Pids of the containers' init processes, from containerd's task state."""
    found = set()
    for f in glob.glob(os.path.join(exec_root, TASK_GLOB)):
        with contextlib.suppress(OSError, ValueError):
            found.add(int(Path(f).read_text().strip()))
    return found


def cgroup_dirs(pid: int, parent: str) -> list[str]:
    """The directories ``--cgroup-parent parent`` maps to, for a daemon running as pid."""
    mounts: list[tuple[str, str, str, set[str]]] = []  # (fstype, root, mountpoint, opts)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            lf, rf = left.split(), right.split()
            if rf[0] in ("cgroup", "cgroup2"):
                mounts.append((rf[0], lf[3], lf[4], set(rf[2].split(","))))
    dirs = []
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for fstype, root, mountpoint, opts in mounts:
            if controllers == "" and fstype != "cgroup2":
                continue
            if controllers and (fstype != "cgroup" or not set(controllers.split(",")) <= opts):
                continue
            rel = os.path.relpath(path, root) if root != "/" else path.lstrip("/")
            if rel.startswith(".."):
                continue
            dirs.append(os.path.normpath(os.path.join(mountpoint, rel, parent)))
            break
    return dirs


def cgroup_mounts() -> list[str]:
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            if right.split()[0] in ("cgroup", "cgroup2"):
                points.append(left.split()[4])
    return points


def find_cgroups(pattern: str, max_depth: int = 6) -> list[str]:
    """Cgroup directories (in every hierarchy) whose whole name matches the regex pattern."""
    regex = re.compile(pattern)
    found = []
    for top in cgroup_mounts():
        base = top.rstrip("/").count("/")
        for root, dirs, _ in os.walk(top):
            keep = []
            for d in dirs:
                if regex.fullmatch(d):
                    found.append(os.path.join(root, d))
                elif root.count("/") - base < max_depth:
                    keep.append(d)
            dirs[:] = keep
    return found


def cgroup_procs(dirs: Sequence[str]) -> set[int]:
    procs: set[int] = set()
    for top in dirs:
        for root, _, files in os.walk(top):
            if "cgroup.procs" in files:
                with contextlib.suppress(OSError), open(os.path.join(root, "cgroup.procs")) as f:
                    procs.update(int(x) for x in f.read().split())
    return procs


def remove_cgroups(dirs: Sequence[str], timeout: float = 5.0) -> None:
    """rmdir the cgroup trees (retrying while the kernel still tears tasks down)."""
    deadline = time.monotonic() + timeout
    while True:
        for top in dirs:
            for root, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
                with contextlib.suppress(OSError):
                    os.rmdir(root)
        if not any(os.path.exists(c) for c in dirs) or time.monotonic() > deadline:
            return
        time.sleep(0.05)


def mounts_under(path: str) -> list[str]:
    """Mount points at or below path in this mount namespace, deepest first."""
    prefix = path.rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        points = [ln.split()[4] for ln in f]
    return sorted(
        (p for p in points if p.startswith(prefix) or p == path.rstrip("/")), key=len, reverse=True
    )


def unmount_under(path: str) -> None:
    for mp in mounts_under(path):
        subprocess.run(["umount", "-l", mp], capture_output=True)
