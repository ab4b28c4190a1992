"""What the daemons logged: shoald's lines by level with the WARNING/ERROR messages grouped
and counted, etcd's warnings, the lines a lab's daemons wrote since a mark; copies kept."""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

NOTABLE_LEVELS = ("WARNING", "ERROR", "CRITICAL")


def count_levels(
    lines: Iterable[str], key: Callable[[str, str], str]
) -> tuple[dict[str, int], dict[str, int]]:
    """shoald's log lines (``<date> <time> <LEVEL> <logger> <message>``) → lines per level,
    and the notable ones (WARNING and worse, tracebacks) per ``key(level, message)``."""
    levels: dict[str, int] = {}
    notable: dict[str, int] = {}
    for ln in lines:
        parts = ln.split(" ", 4)
        lvl = parts[2] if len(parts) > 3 else "?"
        levels[lvl] = levels.get(lvl, 0) + 1
        if lvl in NOTABLE_LEVELS or "Traceback" in ln:
            k = key(lvl, parts[4] if len(parts) > 4 else ln)
            notable[k] = notable.get(k, 0) + 1
    return levels, notable


def most(counts: dict[str, int], n: int) -> list[tuple[str, int]]:
    """The n most frequent, most frequent first."""
    return sorted(counts.items(), key=lambda kv: -kv[1])[:n]


def generic(msg: str) -> str:
    """Collapse IDs (25-char swarm IDs, 64-hex container IDs) so that messages group."""
    msg = re.sub(r"\b[0-9a-z]{25}\b", "<id>", msg)
    return re.sub(r"\b[0-9a-f]{12,64}\b", "<hex>", msg)


def lab_node_summary(path: Path, quiet_ok: bool) -> dict[str, Any] | None:
    """One lab node's shoald log: line count, levels, the most frequent notable messages
    (IDs collapsed). None if unreadable, or if ``quiet_ok`` and nothing is notable."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    levels, notable = count_levels(lines, lambda lvl, msg: generic(f"{lvl} {msg}")[:170])
    if quiet_ok and not notable:
        return None
    return {"lines": len(lines), "levels": levels, "notable": most(notable, 12)}


def shoald_findings(log: Path, etcd_log: Path) -> dict[str, Any]:
    """A single shoald's log (levels, notable messages) and its etcd's warnings."""
    lines = log.read_text(errors="replace").splitlines()
    levels, notable = count_levels(lines, lambda _lvl, msg: msg[:160])
    etcd_notable: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for ln in etcd_log.read_text(errors="replace").splitlines():
            # zap (JSON) or capnslog ("<date> <time> W | pkg: message") lines
            if any(m in ln for m in ('"level":"warn"', '"level":"error"', " W | ", " E | ")):
                k = ln.split(" | ", 1)[-1][:160]
                etcd_notable[k] = etcd_notable.get(k, 0) + 1
    return {"lines": len(lines), "levels": levels, "notable": most(notable, 15),
            "etcd_warnings": sum(etcd_notable.values()),
            "etcd_notable": most(etcd_notable, 10)}  # fmt: skip


def copy_logs(pairs: Iterable[tuple[Path, Path]]) -> None:
    """Copy each (source, destination) that exists; a file that cannot be copied is skipped."""
    for src, dst in pairs:
        if src.exists():
            with contextlib.suppress(OSError):
                shutil.copy(src, dst)


def keep_shoald_logs(res: dict[str, Any], log: Path, etcd_log: Path, keep: str | None) -> None:
    """After a round on one shoald: its log's findings in `res`, and, with `keep` (a
    directory), copies of its and its etcd's logs there."""
    with contextlib.suppress(Exception):
        res["shoald_log"] = shoald_findings(log, etcd_log)
    if keep:
        dst = Path(keep)
        dst.mkdir(parents=True, exist_ok=True)
        tag = f"-round{res.get('round', 1)}"
        copy_logs([(log, dst / f"shoald{tag}.log"), (etcd_log, dst / f"etcd{tag}.log")])


ROUTINE = re.compile(r"cleaning up after shim disconnected|cleanup warnings ")
WARNINGS = re.compile(r" (WARNING|ERROR|CRITICAL) |Traceback|level=(warning|error|fatal)")


class LogMarks:
    """Where each log ended when made; later, the WARNING/ERROR lines written since
    (shoald's, and dockerd's but for its routine messages about exited containers)."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files
        self.at = {k: self._size(p) for k, p in files.items()}

    @staticmethod
    def _size(p: Path) -> int:
        try:
            return p.stat().st_size
        except OSError:
            return 0

    def notable(self, limit: int = 40) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for k, p in self.files.items():
            try:
                with p.open("rb") as f:
                    f.seek(self.at[k])
                    text = f.read().decode(errors="replace")
            except OSError:
                continue
            hits = [
                ln[:400]
                for ln in text.splitlines()
                if WARNINGS.search(ln) and not ROUTINE.search(ln)
            ]
            if hits:
                more = [f"… {len(hits) - limit} more"] if len(hits) > limit else []
                out[k] = hits[:limit] + more
        return out
