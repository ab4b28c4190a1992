"""``/proc`` readers: which process is which, its memory and its CPU seconds; the resource
figures the benchmarks report (per process, and summed over the workers of a lab)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from shoal.lab.procs import cmdline as cmdline_of
from shoal.lab.procs import pids as all_pids

__all__ = [
    "all_pids",
    "children",
    "cmdline_of",
    "comm_of",
    "cpu_delta",
    "cpu_now",
    "cpu_seconds",
    "idle_cpu",
    "mib",
    "ppid_of",
    "proc_kb",
    "resources",
    "with_worker_sums",
]

Pids = dict[str, int | None]


def proc_kb(pid: int | None, field: str) -> int | None:
    """A kB field of ``/proc/<pid>/status`` (VmRSS, VmHWM …)."""
    if not pid:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds the process has used."""
    if not pid:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def ppid_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def comm_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def children(pid: int, name: str | None = None) -> list[int]:
    """The processes whose parent is pid (and whose command name is name)."""
    return [p for p in all_pids() if ppid_of(p) == pid and (name is None or comm_of(p) == name)]


def mib(kb: int | None) -> float | None:
    return None if kb is None else round(kb / 1024, 1)


def with_worker_sums(values: dict[str, float | None]) -> dict[str, float | None]:
    """Add ``<proc>-workers`` = the sum over ``<proc>-w1``, ``<proc>-w2`` … (if all known)."""
    out = dict(values)
    groups: dict[str, list[float | None]] = {}
    for key, v in values.items():
        proc, _, node = key.rpartition("-")
        if proc and node.startswith("w") and node[1:].isdigit():
            groups.setdefault(proc, []).append(v)
    for proc, vals in groups.items():
        known = [v for v in vals if v is not None]
        out[f"{proc}-workers"] = round(sum(known), 2) if known and len(known) == len(vals) else None
    return out


def cpu_now(pids: Pids) -> dict[str, float | None]:
    """CPU seconds of each process, now."""
    return {k: cpu_seconds(p) for k, p in pids.items()}


def cpu_delta(a: dict[str, float | None], b: dict[str, float | None]) -> dict[str, float | None]:
    """CPU seconds used between two ``cpu_now``s (and the workers' sums)."""
    return with_worker_sums({
        k: None if a.get(k) is None or b.get(k) is None else round(b[k] - a[k], 2)  # type: ignore[operator]
        for k in b
    })  # fmt: skip


def idle_cpu(pids: Pids, seconds: float) -> dict[str, float | None]:
    """CPU use (% of one core) of each pid over `seconds`."""
    before = cpu_now(pids)
    time.sleep(seconds)
    out: dict[str, float | None] = {}
    for k, p in pids.items():
        a, b = before[k], cpu_seconds(p)
        out[k] = None if a is None or b is None else round(100 * (b - a) / seconds, 1)
    return out


def resources(pids: Pids, idle_s: float) -> dict[str, Any]:
    """RSS and peak RSS (MiB), CPU seconds so far and idle CPU over idle_s of each process."""
    out: dict[str, Any] = {"pids": pids}
    out["rss_mib"] = with_worker_sums({k: mib(proc_kb(p, "VmRSS")) for k, p in pids.items()})
    out["peak_rss_mib"] = with_worker_sums({k: mib(proc_kb(p, "VmHWM")) for k, p in pids.items()})
    out["cpu_total_s"] = cpu_now(pids)
    if idle_s > 0:
        out["idle_cpu_pct"] = with_worker_sums(idle_cpu(pids, idle_s))
        out["idle_window_s"] = idle_s
    return out
