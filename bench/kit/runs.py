"""How a benchmark run goes: progress lines, SIGTERM/SIGHUP turned into a clean teardown,
the systems interleaved round after round, the machine it ran on, the JSON it writes."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import REPO

Rounds = dict[str, list[dict[str, Any]]]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def exit_on_signals() -> None:
    """SIGTERM and SIGHUP become SystemExit, so that `finally` blocks remove the labs."""

    def _raise_exit(signum: int, _frame: Any) -> None:
        log(f"signal {signum}: cleaning up")
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_exit)


def machine_info(*, etcd: bool = False, commit: bool = True) -> dict[str, Any]:
    """CPUs, kernel, Python, the docker CLI's and dockerd's versions (``etcd``: etcd's too),
    the load; ``commit``: this repository's commit and its uncommitted changes under src/."""

    def output(cmd: list[str], first_line: bool = True) -> str:
        with contextlib.suppress(Exception):
            text = subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
            return text.splitlines()[0] if first_line else text
        return "?"

    out: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "docker_cli": output(["docker", "--version"]),
        "dockerd": output(["dockerd", "--version"]),
    }
    if etcd:
        out["etcd"] = output(["etcd", "--version"])
    out["loadavg_before"] = os.getloadavg()
    if commit:
        git = ["git", "-C", str(REPO)]
        out["shoal_commit"] = output([*git, "rev-parse", "--short", "HEAD"], first_line=False)
        # Uncommitted changes under src/ (what the labs' shoalds run), by file.
        out["shoal_src_changes"] = output([*git, "status", "--porcelain", "--", "src"], False)
    return out


def run_record(benchmark: str, params: dict[str, Any], machine: dict[str, Any]) -> dict[str, Any]:
    """The head of a run's JSON: which benchmark, its parameters, the machine, when."""
    return {"benchmark": benchmark, "params": params, "machine": machine,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}  # fmt: skip


def add_lab_options(p: argparse.ArgumentParser, what: str = "the image") -> None:
    """The options of the benchmarks on labs: pre-pulling, the JSON, logs and labs kept."""
    p.add_argument("--no-prepull", action="store_true",
                   help=f"do not pull {what} into the workers' engines beforehand")  # fmt: skip
    p.add_argument("--json", help="write the results (every round, every sample) to this file")
    p.add_argument("--keep-logs", metavar="DIR", help="copy shoald/dockerd/etcd logs into DIR")
    p.add_argument("--keep-labs", action="store_true", help="leave the labs up (debugging)")
    p.add_argument("--shoald-log-level", default="", help="SHOAL_LAB_LOG_LEVEL for the labs")


def new_round(system: str, number: int) -> dict[str, Any]:
    """The result of one round of one system, before it runs."""
    return {"system": system, "round": number, "loadavg": os.getloadavg()}


def guarded(system: str, res: dict[str, Any], run: Callable[[], None]) -> None:
    """run(); a failure is logged and kept in res["error"], and the run goes on."""
    try:
        run()
    except Exception as e:  # noqa: BLE001 — report it, go on with the next system
        log(f"  {system} failed: {type(e).__name__}: {e}")
        res["error"] = f"{type(e).__name__}: {e}"


def interleaved(
    systems: list[str], rounds: int, run: Callable[[str, dict[str, Any]], None], done: str = ""
) -> Rounds:
    """Every system once per round, in turn (so that a noisy minute hits every system
    alike): ``run(system, result)`` with the wall time added; ``done`` ends the log line."""
    out: Rounds = {s: [] for s in systems}
    for i in range(rounds):
        for s in systems:
            log(f"── {s}" + (f" (round {i + 1}/{rounds})" if rounds > 1 else ""))
            t0 = time.monotonic()
            res = new_round(s, i + 1)
            out[s].append(res)
            guarded(s, res, functools.partial(run, s, res))
            res["wall_s"] = round(time.monotonic() - t0, 2)
            log(f"  {s} done (wall {res['wall_s']}s{done})")
    return out


def write_json(out: dict[str, Any], path: str | None, indent: int = 2) -> None:
    if path:
        Path(path).write_text(json.dumps(out, indent=indent, default=str) + "\n")
        log(f"results written to {path}")


def exit_code(rounds: Rounds) -> int:
    """1 if any round of any system failed."""
    return 1 if any(r.get("error") for rs in rounds.values() for r in rs) else 0
