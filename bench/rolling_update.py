#!/usr/bin/env python3
"""Rolling update, side by side: shoal vs Docker's own swarm mode on identical lab hosts.

Per system, one ``shoal lab`` of 1 manager (drained) + ``--workers`` (3) workers
(``labkit.BenchLab``: shoal's swarm on a plain ``shoal lab up``; Docker's swarm mode with
``docker swarm init/join`` straight on the engines of a ``shoal lab up --no-swarm``), both
labs up for the whole run, default settings. ``whoami:1`` and ``:2`` are pulled into every
worker's engine first. Then ``--rounds`` (3) rounds per system, interleaved (shoal, Docker,
shoal, …), each:

1. ``docker service create -d --name web --replicas 20 --init --update-parallelism 2
   --update-delay 0s --update-order stop-first <registry>/shoal-lab/whoami:1``; wait until
   20 tasks run (``GET /tasks``) and ``docker service ls`` says 20/20;
2. one **prober** per worker host starts *inside the host's network namespace*
   (``nsenter --net``; the task containers' bridge addresses are only reachable there): every
   ``--probe-interval`` (0.1) s it lists the engine's running containers labelled
   ``com.docker.swarm.service.name=web`` and sends each ``GET /version`` on port 80 of its
   bridge address (raw asyncio, ``--probe-timeout`` 0.3 s), printing one JSON line per sweep
   (``{t, node, s: [[task id, version] …], x: [[task id, why] …]}``, ``t`` on the machine's
   monotonic clock). The coordinator merges the hosts' latest sweeps into "replicas serving"
   over time. **Validity check**: before the update the probers must see 20 serving ``1``
   (reported if not), and ``--baseline`` (2) s of quiet probing is kept to show the probe's
   own noise;
3. the clock starts; ``docker service update -d --image …/whoami:2 web`` (``-d``: the CLI
   does not poll). ``GET /tasks`` and ``GET /services/web`` are polled every ``--poll`` (0.2)
   s until 20 tasks run ``:2`` and ``UpdateStatus.State`` is ``completed`` (**total update
   time**), and the probers have seen 20 serving ``2``; also recorded: when the last ``:2``
   task was first seen running, the tasks' own timestamps, per slot when the old task was told
   to stop, stopped answering, and when the new one answered;
4. serving during the update: the minimum number of replicas answering, and **the longest
   moment with fewer than 18** (replicas − parallelism) answering, and the time below 18 in all;
5. ``docker service rm web`` until no engine has a container of it; ``--settle`` (2) s.

    python bench/rolling_update.py [--rounds 3] [--systems shoal,docker] [--json out.json]
                                   [--replicas 20] [--parallelism 2] [--workers 3]
                                   [--keep-logs DIR] [--keep-labs]

Needs root and what ``shoal lab`` needs (``scripts/setup.sh``). See
``docs/design/benchmarks.md``. ``rolling_update.py probe …`` is the prober itself (started by
the benchmark, not meant to be run by hand).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from labkit import (  # noqa: E402
    SERVICE,
    SERVICE_LABEL,
    BenchLab,
    all_task_containers,
    api_get,
    clean_env,
    dig,
    docker_cli,
    docker_ok,
    exit_on_signals,
    fmt,
    is_running,
    log,
    machine_info,
    service_status,
    service_tasks,
    unique_name,
)

SYSTEMS = ("shoal", "docker")
NAMES = {"shoal": "shoal", "docker": "Docker swarm"}
OLD, NEW = "1", "2"


# --------------------------------------------------------------------------- the prober
# Runs inside one lab host's network namespace: `rolling_update.py probe --engine SOCK …`.


async def _engine_get(sock: str, path: str) -> Any:
    """GET path from the engine's unix socket (HTTP/1.0: no chunking, closed after)."""
    reader, writer = await asyncio.open_unix_connection(sock)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n".encode())
        data = await reader.read()
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    if len(parts) < 2 or parts[1] != b"200":
        raise RuntimeError(f"engine: {head[:120]!r}")
    return json.loads(body)


async def _probe(ip: str, port: int, timeout: float) -> tuple[str, str]:
    """GET /version from ip:port → (version, "") or ("", why not)."""
    if not ip:
        return "", "no-ip"
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(ip, port)
            writer.write(b"GET /version HTTP/1.0\r\nHost: probe\r\n\r\n")
            data = await reader.read()
    except TimeoutError:
        return "", "timeout"
    except ConnectionRefusedError:
        return "", "refused"
    except OSError as e:
        return "", f"errno {e.errno}"
    finally:
        if writer is not None:
            writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    if len(parts) < 2 or parts[1] != b"200":
        return "", f"http {parts[1].decode(errors='replace') if len(parts) > 1 else '?'}"
    return body.strip().decode(errors="replace")[:16] or "?", ""


def _targets(containers: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(task id — or container id if unlabelled —, first network address) per container."""
    out = []
    for c in containers:
        tid = (c.get("Labels") or {}).get("com.docker.swarm.task.id") or c.get("Id", "")[:12]
        nets = ((c.get("NetworkSettings") or {}).get("Networks") or {}).values()
        ip = next((n.get("IPAddress") for n in nets if n.get("IPAddress")), "")
        out.append((tid, ip))
    return out


async def _prober(a: argparse.Namespace) -> None:
    label = f"com.docker.swarm.service.name={a.service}"
    filters = json.dumps({"label": [label], "status": ["running"]})
    path = "/containers/json?" + urllib.parse.urlencode({"filters": filters})
    while True:
        start = time.monotonic()
        rec: dict[str, Any] = {"node": a.node}
        try:
            async with asyncio.timeout(2.0):
                containers = await _engine_get(a.engine, path)
        except Exception as e:  # noqa: BLE001 — report it, go on
            rec.update(t=round(time.monotonic(), 4), err=f"{type(e).__name__}: {e}"[:200])
        else:
            targets = _targets(containers)
            t = time.monotonic()
            results = await asyncio.gather(*(_probe(ip, a.port, a.timeout) for _, ip in targets))
            rec["t"] = round(t, 4)
            rec["d"] = round(time.monotonic() - t, 4)
            pairs = [(tid, r) for (tid, _), r in zip(targets, results, strict=True)]
            rec["s"] = [[tid, v] for tid, (v, _) in pairs if v]
            rec["x"] = [[tid, w] for tid, (v, w) in pairs if not v]
        sys.stdout.write(json.dumps(rec, separators=(",", ":")) + "\n")
        sys.stdout.flush()
        await asyncio.sleep(max(0.0, start + a.interval - time.monotonic()))


def probe_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="rolling_update.py probe")
    p.add_argument("--engine", required=True, help="the engine's unix socket path")
    p.add_argument("--node", required=True)
    p.add_argument("--service", default=SERVICE)
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--interval", type=float, default=0.1)
    p.add_argument("--timeout", type=float, default=0.3)
    a = p.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        asyncio.run(_prober(a))
    return 0


# --------------------------------------------------------------------------- probers, merged


class Probers:
    """One prober per node, in the node's network namespace; their JSON lines, collected."""

    def __init__(self, lab: BenchLab, nodes: list[str], args: argparse.Namespace) -> None:
        self.lab, self.nodes, self.args = lab, nodes, args
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.errs: dict[str, Any] = {}
        self._lines: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        me = str(Path(__file__).resolve())
        for node in self.nodes:
            sock = self.lab.engine_host(node).removeprefix("unix://")
            argv = [
                *self.lab.netns_prefix(node), sys.executable, me, "probe",
                "--engine", sock, "--node", self.lab.short(node), "--service", SERVICE,
                "--interval", str(self.args.probe_interval),
                "--timeout", str(self.args.probe_timeout),
            ]  # fmt: skip
            err = tempfile.TemporaryFile(mode="w+")
            self.errs[node] = err
            p = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, text=True,
                env=clean_env(),
            )  # fmt: skip
            self.procs[node] = p
            th = threading.Thread(target=self._read, args=(p,), daemon=True)
            th.start()
            self._threads.append(th)

    def _read(self, p: subprocess.Popen[str]) -> None:
        assert p.stdout is not None
        for line in p.stdout:
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                with self._lock:
                    self._lines.append(rec)

    def lines(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._lines)

    def check_alive(self) -> None:
        for node, p in self.procs.items():
            if p.poll() is not None:
                err = self.errs[node]
                err.seek(0)
                raise RuntimeError(f"prober on {node} exited {p.returncode}: {err.read()[-800:]}")

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        for th in self._threads:
            th.join(timeout=5)
        for err in self.errs.values():
            err.close()


def latest_by_node(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for ln in lines:
        if "s" in ln and (ln["node"] not in out or ln["t"] >= out[ln["node"]]["t"]):
            out[ln["node"]] = ln
    return out


def serving_now(lines: list[dict[str, Any]], nodes: int) -> Counter[str] | None:
    """Versions answering, summed over every node's latest sweep (None: a node not heard)."""
    latest = latest_by_node(lines)
    if len(latest) < nodes:
        return None
    return Counter(v for ln in latest.values() for _, v in ln["s"])


def answer_spans(lines: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """Per task: its first and its last answer (monotonic clock)."""
    spans: dict[str, tuple[float, float]] = {}
    for ln in lines:
        for tid, _ in ln.get("s", []):
            a, b = spans.get(tid, (ln["t"], ln["t"]))
            spans[tid] = (min(a, ln["t"]), max(b, ln["t"]))
    return spans


def serving_series(
    lines: list[dict[str, Any]], nodes: int, t0: float, fill: bool = False
) -> list[list[float]]:
    """[t − t0, serving, serving OLD, serving NEW] after every sweep, once every node has
    reported; a sweep whose container listing failed keeps that node's previous sweep.
    ``fill``: a task that did not answer in time but answered before and after counts as
    serving (the probe's false negatives removed)."""
    spans = answer_spans(lines) if fill else {}
    version = {tid: v for ln in lines for tid, v in ln.get("s", [])}
    latest: dict[str, tuple[int, int, int]] = {}
    out: list[list[float]] = []
    for ln in sorted((x for x in lines if "s" in x), key=lambda x: x["t"]):
        vs = [v for _, v in ln["s"]]
        for tid, _ in ln.get("x", []):
            a, b = spans.get(tid, (0.0, 0.0))
            if a < ln["t"] < b:
                vs.append(version.get(tid, "?"))
        latest[ln["node"]] = (len(vs), vs.count(OLD), vs.count(NEW))
        if len(latest) == nodes:
            tot = [sum(x[i] for x in latest.values()) for i in range(3)]
            out.append([round(ln["t"] - t0, 3), *tot])
    return out


def dips(series: list[list[float]], lo: float, hi: float, threshold: int) -> dict[str, Any]:
    """Within [lo, hi]: the minimum serving, and the intervals with fewer than threshold."""
    before = [p for p in series if p[0] < lo]
    pts = ([[lo, *before[-1][1:]]] if before else []) + [p for p in series if lo <= p[0] <= hi]
    intervals: list[list[float]] = []
    start: float | None = None
    lowest: float | None = None
    for t, n, *_ in pts:
        lowest = n if lowest is None else min(lowest, n)
        if n < threshold and start is None:
            start = t
        elif n >= threshold and start is not None:
            intervals.append([start, t])
            start = None
    if start is not None:
        intervals.append([start, hi])
    lengths = [b - a for a, b in intervals]
    longest = max(range(len(lengths)), key=lambda i: lengths[i]) if lengths else None
    return {
        "min": lowest,
        "longest_s": round(lengths[longest], 3) if longest is not None else 0.0,
        "longest_at": intervals[longest] if longest is not None else None,
        "total_s": round(float(sum(lengths)), 3),
        "count": len(intervals),
        "intervals": [[round(a, 3), round(b, 3)] for a, b in intervals],
    }


def task_serving(lines: list[dict[str, Any]], t0: float) -> dict[str, dict[str, Any]]:
    """Per task: when first and last seen answering (t − t0), with which version."""
    out: dict[str, dict[str, Any]] = {}
    for ln in lines:
        for tid, v in ln.get("s", []):
            rel = round(ln["t"] - t0, 3)
            cur = out.setdefault(tid, {"first": rel, "last": rel, "v": v, "node": ln["node"]})
            cur["first"], cur["last"] = min(cur["first"], rel), max(cur["last"], rel)
    return out


def flaps(lines: list[dict[str, Any]]) -> dict[str, int]:
    """Probe failures of a task between two answers of the same task (it was serving all
    along, as far as one can tell: the probe's false negatives), by reason."""
    spans = answer_spans(lines)
    out: Counter[str] = Counter()
    for ln in lines:
        for tid, why in ln.get("x", []):
            a, b = spans.get(tid, (0.0, 0.0))
            if a < ln["t"] < b:
                out[why] += 1
    return dict(out)


def failures(lines: list[dict[str, Any]], t0: float) -> list[list[Any]]:
    """Every probe that got no answer: [t − t0, node, task id, why] (for the JSON)."""
    out = [
        [round(ln["t"] - t0, 3), ln["node"], tid, why]
        for ln in lines
        for tid, why in ln.get("x", [])
    ]
    out += [[round(ln["t"] - t0, 3), ln["node"], "", ln["err"]] for ln in lines if "err" in ln]
    return sorted(out)


def probe_stats(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """Sweep periods and probe failures: the prober's own quality."""
    per: dict[str, list[float]] = {}
    why: Counter[str] = Counter()
    errors = 0
    sweep: list[float] = []
    for ln in sorted(lines, key=lambda x: x["t"]):
        per.setdefault(ln["node"], []).append(ln["t"])
        errors += "err" in ln
        why.update(w for _, w in ln.get("x", []))
        if "d" in ln:
            sweep.append(ln["d"])
    gaps = [b - a for ts in per.values() for a, b in zip(ts, ts[1:], strict=False)]
    return {
        "sweeps": sum(len(v) for v in per.values()),
        "period_median_s": round(statistics.median(gaps), 3) if gaps else None,
        "period_max_s": round(max(gaps), 3) if gaps else None,
        "probe_median_s": round(statistics.median(sweep), 4) if sweep else None,
        "probe_max_s": round(max(sweep), 4) if sweep else None,
        "list_errors": errors,
        "not_answering": dict(why),
        "flaps": flaps(lines),
    }


# --------------------------------------------------------------------------- the API side


def image_tag(ref: str) -> str:
    """'reg:5000/shoal-lab/whoami:2@sha256:…' → '2'."""
    name = ref.split("@", 1)[0].rsplit("/", 1)[-1]
    return name.rsplit(":", 1)[1] if ":" in name else "latest"


def wall_rel(ts: str | None, wall0: float) -> float | None:
    """An RFC 3339 time (nanoseconds, Z) as seconds after wall0."""
    if not ts or ts.startswith("0001-"):
        return None
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", ts)
    if not m:
        return None
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    frac = (m.group(2) or "0")[:6].ljust(6, "0")
    return round(datetime.fromisoformat(f"{m.group(1)}.{frac}{tz}").timestamp() - wall0, 3)


class UpdateWatch:
    """`GET /tasks` + `GET /services/web` polls after the update: per task what was seen when."""

    def __init__(self, lab: BenchLab, t0: float, wall0: float, n: int) -> None:
        self.lab, self.t0, self.wall0, self.n = lab, t0, wall0, n
        self.tasks: dict[str, dict[str, Any]] = {}
        self.firsts: dict[str, float] = {}
        self.update_states: list[list[Any]] = []
        self.service: dict[str, Any] = {}
        self.errors = 0
        self.polls = 0

    def see(self, key: str, cond: bool, now: float) -> None:
        if cond and key not in self.firsts:
            self.firsts[key] = round(now, 3)

    def poll(self) -> None:
        self.polls += 1
        try:
            tasks = service_tasks(self.lab.api_host)
            svc = api_get(self.lab.api_host, f"/services/{SERVICE}")
        except Exception:  # noqa: BLE001 — a busy manager may time out; keep polling
            self.errors += 1
            return
        now = time.monotonic() - self.t0
        self.service = svc
        for t in tasks:
            st = t.get("Status") or {}
            rec = self.tasks.setdefault(t["ID"], {
                "slot": t.get("Slot"), "v": image_tag(t["Spec"]["ContainerSpec"]["Image"]),
                "node": t.get("NodeID"), "seen": round(now, 3), "states": {},
            })  # fmt: skip
            rec["node"] = t.get("NodeID") or rec["node"]
            if "created_ts" not in rec:
                rec["created_ts"] = wall_rel(t.get("CreatedAt"), self.wall0)
            state = st.get("State", "?")
            if state not in rec["states"]:
                rec["states"][state] = round(now, 3)
                if state == "running":
                    rec["running_ts"] = wall_rel(st.get("Timestamp"), self.wall0)
            desired = t.get("DesiredState")
            if desired != "running" and "desired_" + str(desired) not in rec:
                rec["desired_" + str(desired)] = round(now, 3)
            if st.get("Err"):
                rec["err"] = st["Err"]
        us = svc.get("UpdateStatus") or {}
        state = us.get("State")
        done_at = wall_rel(us.get("CompletedAt"), self.wall0)
        if state == "completed" and (done_at is None or done_at < 0):
            state = "completed (stale)"  # a previous update's; not this one
        if not self.update_states or self.update_states[-1][1] != state:
            self.update_states.append([round(now, 3), state])
        v2 = sum(1 for t in tasks if is_running(t)
                 and image_tag(t["Spec"]["ContainerSpec"]["Image"]) == NEW)  # fmt: skip
        old_live = sum(1 for t in tasks if is_running(t)
                       and image_tag(t["Spec"]["ContainerSpec"]["Image"]) != NEW)  # fmt: skip
        self.see("first_new_running_s", v2 >= 1, now)
        self.see("all_new_running_s", v2 >= self.n and old_live == 0, now)
        self.see("update_started_s", state == "updating", now)
        self.see("completed_s", v2 >= self.n and old_live == 0 and state == "completed", now)
        self.see("status_completed_s", state == "completed", now)

    def summary(self) -> dict[str, Any]:
        us = self.service.get("UpdateStatus") or {}
        new = [r for r in self.tasks.values() if r["v"] == NEW]
        running_ts = [r["running_ts"] for r in new if r.get("running_ts") is not None]
        return {
            **self.firsts,
            "update_status": us,
            "update_status_seen": self.update_states,
            "status_started_at_s": wall_rel(us.get("StartedAt"), self.wall0),
            "status_completed_at_s": wall_rel(us.get("CompletedAt"), self.wall0),
            "last_new_running_ts_s": max(running_ts) if running_ts else None,
            "new_tasks": len(new),
            "new_tasks_failed": sum(1 for r in new if {"failed", "rejected"} & set(r["states"])),
            "task_errors": sorted({r["err"] for r in self.tasks.values() if r.get("err")}),
            "polls": self.polls,
            "poll_errors": self.errors,
        }


def slot_report(
    tasks: dict[str, dict[str, Any]], serving: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Per slot, in the order the update took them: old task told to stop (API poll), its
    last answer, the new task created / running (API polls), its first answer, the gap."""
    slots: dict[Any, dict[str, list[dict[str, Any]]]] = {}
    for tid, r in tasks.items():
        rr = {**r, "id": tid, "serving": serving.get(tid)}
        group = slots.setdefault(r["slot"], {"old": [], "new": []})
        group["new" if r["v"] == NEW else "old"].append(rr)
    out = []
    for slot, g in slots.items():

        def first(rs: list[dict[str, Any]], f: Any) -> float | None:
            vals = [v for v in (f(r) for r in rs) if v is not None]
            return min(vals) if vals else None

        old_last = [r["serving"]["last"] for r in g["old"] if r["serving"]]
        row = {
            "slot": slot,
            "old_stop": first(g["old"], lambda r: r.get("desired_shutdown")),
            "old_last_answer": max(old_last) if old_last else None,
            "new_seen": first(g["new"], lambda r: r["seen"]),
            "new_created_ts": first(g["new"], lambda r: r.get("created_ts")),
            "new_running": first(g["new"], lambda r: r["states"].get("running")),
            "new_running_ts": first(g["new"], lambda r: r.get("running_ts")),
            "new_first_answer": first(g["new"], lambda r: (r["serving"] or {}).get("first")),
            "new_tasks": len(g["new"]),
        }
        a, b = row["old_last_answer"], row["new_first_answer"]
        row["gap_s"] = round(b - a, 3) if a is not None and b is not None else None
        out.append(row)
    out.sort(key=lambda r: (r["old_stop"] is None, r["old_stop"] or 0, str(r["slot"])))
    return out


# --------------------------------------------------------------------------- one round


def wait_running(lab: BenchLab, n: int, timeout: float, poll: float) -> float:
    """Seconds until n tasks run and `docker service ls` says n/n."""
    t0 = time.monotonic()
    while True:
        with contextlib.suppress(Exception):
            running = sum(1 for t in service_tasks(lab.api_host) if is_running(t))
            if running >= n and service_status(lab.api_host) == (n, n):
                return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{n} tasks not running after {timeout}s")
        time.sleep(poll)


def wait_gone(lab: BenchLab, timeout: float) -> float:
    """Seconds until no engine has a container of the service (any state)."""
    t0 = time.monotonic()
    while True:
        left = 0
        for node in [*lab.managers, *lab.workers]:
            try:
                left += all_task_containers(lab.engine_host(node))
            except Exception:  # noqa: BLE001
                left += 1
        if not left:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{left} containers of {SERVICE} left after {timeout}s")
        time.sleep(0.25)


ROUTINE = re.compile(r"cleaning up after shim disconnected|cleanup warnings ")


class LogMarks:
    """Where each node's daemon logs ended; later, the WARNING/ERROR lines written since
    (shoald's, and dockerd's but for its routine messages about exited containers)."""

    def __init__(self, lab: BenchLab) -> None:
        self.files: dict[str, Path] = {}
        for n in [*lab.managers, *lab.workers]:
            if lab.system == "shoal":
                self.files[f"shoald-{lab.short(n)}"] = lab.st.node_dir(n) / "shoald.log"
            self.files[f"dockerd-{lab.short(n)}"] = lab.st.node_dir(n) / "engine/dockerd.log"
        self.at = {k: self._size(p) for k, p in self.files.items()}

    @staticmethod
    def _size(p: Path) -> int:
        try:
            return p.stat().st_size
        except OSError:
            return 0

    def notable(self, limit: int = 40) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        pat = re.compile(r" (WARNING|ERROR|CRITICAL) |Traceback|level=(warning|error|fatal)")
        for k, p in self.files.items():
            try:
                with p.open("rb") as f:
                    f.seek(self.at[k])
                    text = f.read().decode(errors="replace")
            except OSError:
                continue
            hits = [
                ln[:400] for ln in text.splitlines() if pat.search(ln) and not ROUTINE.search(ln)
            ]
            if hits:
                more = [f"… {len(hits) - limit} more"] if len(hits) > limit else []
                out[k] = hits[:limit] + more
        return out


def run_round(lab: BenchLab, args: argparse.Namespace, res: dict[str, Any]) -> None:
    n, par = args.replicas, args.parallelism
    threshold = n - par
    api = lab.api_host
    img_old, img_new = lab.image(f"whoami:{OLD}"), lab.image(f"whoami:{NEW}")
    try:
        docker_ok(api, "service", "create", "-d", "--name", SERVICE, "--replicas", str(n),
                  "--init", "--update-parallelism", str(par), "--update-delay", "0s",
                  "--update-order", "stop-first", img_old)  # fmt: skip
        res["create_s"] = round(wait_running(lab, n, args.timeout, args.poll), 2)
        ids = lab.node_ids()
        host_of = {v: lab.short(k) for k, v in ids.items()}
        spread = Counter(host_of.get(t.get("NodeID") or "", "?")
                         for t in service_tasks(api) if is_running(t))  # fmt: skip
        res["spread"] = dict(sorted(spread.items()))
        on_managers = sum(spread.get(lab.short(m), 0) for m in lab.managers)
        if on_managers:
            log(f"  !! {on_managers} tasks on the (drained) manager: the probers do not see them")
        res["task_container"] = task_container_info(lab)
        probers = Probers(lab, lab.workers, args)
        probers.start()
        marks = LogMarks(lab)
        try:
            res["prober_check"] = check_probers(probers, args, len(lab.workers))
            if not res["prober_check"]["ok"]:
                log(f"  !! probers did not see {n} serving {OLD!r} before the update: "
                    f"{res['prober_check']}")  # fmt: skip
            time.sleep(args.baseline)
            t0 = time.monotonic()
            wall0 = time.time()
            rc, out, err, cli_s = docker_cli(api, "service", "update", "-d", "--image", img_new,
                                             SERVICE)  # fmt: skip
            if rc != 0:
                raise RuntimeError(f"docker service update → rc {rc}: {err.strip()}")
            res["cli_s"] = round(cli_s, 3)
            watch = UpdateWatch(lab, t0, wall0, n)
            done_at: float | None = None
            new_serving_at: float | None = None
            while True:
                watch.poll()
                probers.check_alive()
                now = time.monotonic() - t0
                sv = serving_now(probers.lines(), len(lab.workers))
                if new_serving_at is None and sv is not None and sv[NEW] >= n and not sv[OLD]:
                    new_serving_at = now
                if done_at is None and "completed_s" in watch.firsts and new_serving_at:
                    done_at = now
                if done_at is not None and now >= done_at + args.linger:
                    break
                if now > args.timeout:
                    log(f"  !! update not done after {args.timeout}s")
                    break
                time.sleep(args.poll)
            end = time.monotonic() - t0
        finally:
            probers.stop()
        lines = probers.lines()
        res["api"] = watch.summary()
        res["log_lines"] = marks.notable()
        series = serving_series(lines, len(lab.workers), t0)
        serving = task_serving(lines, t0)
        last_new = [r["first"] for r in serving.values() if r["v"] == NEW]
        res["serving"] = {
            "all_new_serving_s": (round(min(p[0] for p in series if p[3] >= n and p[2] == 0), 3)
                                  if any(p[3] >= n and p[2] == 0 for p in series) else None),
            "last_new_first_answer_s": max(last_new) if last_new else None,
            "update": dips(series, 0.0, end, threshold),
            "update_filled": dips(serving_series(lines, len(lab.workers), t0, fill=True),
                                  0.0, end, threshold),
            "below_all": dips(series, 0.0, end, n),
            "baseline": dips(series, -args.baseline, 0.0, n),
            "threshold": threshold,
            "probe": probe_stats(lines),
        }  # fmt: skip
        res["probe_failures"] = failures(lines, t0)
        res["slots"] = slot_report(watch.tasks, serving)
        gaps = [r["gap_s"] for r in res["slots"] if r["gap_s"] is not None]
        res["serving"]["slot_gap_median_s"] = round(statistics.median(gaps), 3) if gaps else None
        res["serving"]["slot_gap_max_s"] = max(gaps) if gaps else None
        res["serving"]["slot_medians"] = slot_medians(res["slots"], par)
        res["series"] = series
        a, s = res["api"], res["serving"]
        log(f"  update: completed {fmt(a.get('completed_s'))}, last :2 running "
            f"{fmt(a.get('all_new_running_s'))}, 20 serving :2 {fmt(s['all_new_serving_s'])}; "
            f"serving min {s['update']['min']}, longest < {threshold}: "
            f"{fmt(s['update']['longest_s'])} (at {s['update']['longest_at']})")  # fmt: skip
    finally:
        rc, _, err, _ = docker_cli(api, "service", "rm", SERVICE)
        if rc != 0 and "not found" not in err:
            log(f"  docker service rm: {err.strip()}")
        with contextlib.suppress(Exception):
            res["rm_s"] = round(wait_gone(lab, args.timeout), 2)
        time.sleep(args.settle)


def slot_medians(slots: list[dict[str, Any]], parallelism: int) -> dict[str, float | None]:
    """Per slot, from the new task's creation (its own CreatedAt): medians of when the old
    task stopped answering, the new one was running (its Status.Timestamp) and answered;
    when the first and the last slot got their new task; and the orchestrator's reaction:
    the i-th new task's creation after the (i − parallelism)-th new task was running (both
    the tasks' own timestamps), median."""

    def med(key: str) -> float | None:
        vals = [
            r[key] - r["new_created_ts"]
            for r in slots
            if r.get(key) is not None and r.get("new_created_ts") is not None
        ]
        return round(statistics.median(vals), 3) if vals else None

    created = sorted(r["new_created_ts"] for r in slots if r.get("new_created_ts") is not None)
    running = sorted(r["new_running_ts"] for r in slots if r.get("new_running_ts") is not None)
    top = min(len(created), len(running) + parallelism)
    react = [created[i] - running[i - parallelism] for i in range(parallelism, top)]
    return {
        "old_silent_s": med("old_last_answer"),
        "new_running_s": med("new_running_ts"),
        "new_answering_s": med("new_first_answer"),
        "first_created_s": created[0] if created else None,
        "last_created_s": created[-1] if created else None,
        "reaction_s": round(statistics.median(react), 3) if react else None,
    }


def check_probers(probers: Probers, args: argparse.Namespace, nodes: int) -> dict[str, Any]:
    """Wait until the probers see every replica answering the old version."""
    n = args.replicas
    t0 = time.monotonic()
    last: Counter[str] | None = None
    while time.monotonic() - t0 < args.serving_timeout:
        probers.check_alive()
        last = serving_now(probers.lines(), nodes)
        if last is not None and last[OLD] >= n:
            return {"ok": True, "after_s": round(time.monotonic() - t0, 2), "seen": dict(last)}
        time.sleep(0.1)
    return {"ok": False, "after_s": None, "seen": dict(last or {}),
            "probe": probe_stats(probers.lines())}  # fmt: skip


def task_container_info(lab: BenchLab) -> dict[str, Any]:
    """How one task container is set up (network, init): the same in both swarms?"""
    with contextlib.suppress(Exception):
        for node in lab.workers:
            filters = {"label": [SERVICE_LABEL], "status": ["running"]}
            q = urllib.parse.urlencode({"filters": json.dumps(filters)})
            cs = api_get(lab.engine_host(node), "/containers/json?" + q)
            if cs:
                c = api_get(lab.engine_host(node), f"/containers/{cs[0]['Id']}/json")
                return {
                    "NetworkMode": c["HostConfig"].get("NetworkMode"),
                    "Networks": sorted(c["NetworkSettings"].get("Networks") or {}),
                    "Init": c["HostConfig"].get("Init"),
                    "StopSignal": c["Config"].get("StopSignal"),
                    "StopTimeout": c["Config"].get("StopTimeout"),
                }
    return {}


def setup_lab(lab: BenchLab, args: argparse.Namespace, info: dict[str, Any]) -> None:
    lab.up()
    info.update(lab.timings)
    lab.wait_ready()
    lab.drain_managers()
    info["heartbeat_period_s"] = lab.heartbeat_period_s()
    if not args.no_prepull:
        info["prepull_s"] = lab.prepull(lab.image(f"whoami:{OLD}"))
        info["prepull_s"] += lab.prepull(lab.image(f"whoami:{NEW}"))


# --------------------------------------------------------------------------- report


def values(rounds: list[dict[str, Any]], path: str) -> list[float]:
    vals = [dig(r, path) for r in rounds if not r.get("error")]
    return [v for v in vals if isinstance(v, int | float) and not isinstance(v, bool)]


def median_of(rounds: list[dict[str, Any]], path: str) -> float | None:
    nums = values(rounds, path)
    return round(statistics.median(nums), 3) if nums else None


ROWS: list[tuple[str, str, bool]] = [  # label, path, timing (ratio)
    ("update → 20 on :2 + UpdateStatus completed", "api.completed_s", True),
    ("update → last :2 task running (API)", "api.all_new_running_s", True),
    ("update → 20 answering :2 (probers)", "serving.all_new_serving_s", True),
    ("update → first :2 task running", "api.first_new_running_s", True),
    ("last :2 running → completed", "derived.monitor_wait_s", False),
    ("UpdateStatus StartedAt → CompletedAt", "derived.status_span_s", True),
    ("`service update -d` returns", "cli_s", False),
    ("longest moment < 18 answering", "serving.update.longest_s", False),
    ("time < 18 answering, in all", "serving.update.total_s", False),
    ("fewest answering during the update", "serving.update.min", False),
    ("  … not counting probe false negatives", "serving.update_filled.longest_s", False),
    ("  … fewest answering", "serving.update_filled.min", False),
    ("longest moment < 20 answering", "serving.below_all.longest_s", False),
    ("slot gap: old's last → new's first answer, median", "serving.slot_gap_median_s", True),
    ("slot gap, max", "serving.slot_gap_max_s", False),
    ("slot: new task created → old silent", "serving.slot_medians.old_silent_s", False),
    ("slot: new task created → running", "serving.slot_medians.new_running_s", False),
    ("slot: new task created → answering", "serving.slot_medians.new_answering_s", False),
    ("last slot's new task created", "serving.slot_medians.last_created_s", True),
    ("a :2 task running → next one created", "serving.slot_medians.reaction_s", False),
    ("baseline (2 s before): fewest answering", "serving.baseline.min", False),
    ("probe sweep period, median", "serving.probe.period_median_s", False),
    ("create 0→20 running", "create_s", True),
    ("service rm → no containers", "rm_s", True),
]


def derive(r: dict[str, Any]) -> None:
    a = r.get("api") or {}
    d = r.setdefault("derived", {})
    if a.get("completed_s") is not None and a.get("all_new_running_s") is not None:
        d["monitor_wait_s"] = round(a["completed_s"] - a["all_new_running_s"], 3)
    if a.get("status_completed_at_s") is not None and a.get("status_started_at_s") is not None:
        d["status_span_s"] = round(a["status_completed_at_s"] - a["status_started_at_s"], 3)


def print_report(
    rounds: dict[str, list[dict[str, Any]]], args: argparse.Namespace
) -> dict[str, Any]:
    n, thr = args.replicas, args.replicas - args.parallelism
    systems = list(rounds)
    both = {"shoal", "docker"} <= set(systems)
    header = ["", *[NAMES[s] for s in systems], *(["Docker / shoal"] if both else [])]
    rows = [header]
    ratios: dict[str, Any] = {}
    for label, path, timing in ROWS:
        label = label.replace("< 18", f"< {thr}").replace("< 20", f"< {n}")
        label = label.replace("20 ", f"{n} ").replace("0→20", f"0→{n}")
        cells = [label]
        meds = {}
        for s in systems:
            meds[s] = median_of(rounds[s], path)
            each = values(rounds[s], path)
            cell = fmt(meds[s], "s" if not path.endswith(".min") else "")
            if len(each) > 1:
                cell += f" ({min(each):g}–{max(each):g})"
            cells.append(cell)
        if both:
            d, sh = meds.get("docker"), meds.get("shoal")
            rat = round(d / sh, 2) if timing and d and sh else None
            ratios[path] = rat
            cells.append(fmt(rat, "×"))
        rows.append(cells)
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    print()
    for i, row in enumerate(rows):
        print("  ".join(c.ljust(w) if j == 0 else c.rjust(w)
                        for j, (c, w) in enumerate(zip(row, widths, strict=True))))  # fmt: skip
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print()
    if args.rounds > 1:
        print(f"medians over {args.rounds} rounds (min–max in brackets); Docker / shoal: time "
              "ratio, > 1: shoal faster\n")  # fmt: skip
    print(
        "per round: completed | last :2 running | all answering :2 | longest < "
        f"{thr} | fewest | prober saw {n} before | probe false negatives"
    )
    for s in systems:
        for r in rounds[s]:
            if r.get("error"):
                print(f"  {NAMES[s]:12} round {r['round']}: !! {r['error']}")
                continue
            pc = r.get("prober_check") or {}
            print(f"  {NAMES[s]:12} round {r['round']}: {fmt(dig(r, 'api.completed_s'))} | "
                  f"{fmt(dig(r, 'api.all_new_running_s'))} | "
                  f"{fmt(dig(r, 'serving.all_new_serving_s'))} | "
                  f"{fmt(dig(r, 'serving.update.longest_s'))} "
                  f"{dig(r, 'serving.update.intervals') or ''} | "
                  f"{dig(r, 'serving.update.min')} | "
                  f"{'yes' if pc.get('ok') else 'NO ' + str(pc.get('seen'))} | "
                  f"{dig(r, 'serving.probe.flaps') or 'none'}")  # fmt: skip
    print()
    for s in systems:
        for r in rounds[s]:
            for node, lines in (r.get("log_lines") or {}).items():
                print(f"{NAMES[s]} round {r['round']}, {node} during the update "
                      f"({len(lines)} WARNING/ERROR lines):")  # fmt: skip
                for ln in lines[:5]:
                    print(f"    {ln[:160]}")
    print()
    return ratios


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--systems", default=",".join(SYSTEMS),
                   help="comma-separated, of: shoal, docker")  # fmt: skip
    p.add_argument("--only", choices=SYSTEMS, action="append",
                   help="only this system (repeatable; as node_failure.py)")  # fmt: skip
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--replicas", type=int, default=20)
    p.add_argument("--parallelism", type=int, default=2, help="--update-parallelism")
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--poll", type=float, default=0.2, help="API poll interval in seconds")
    p.add_argument("--probe-interval", type=float, default=0.1)
    p.add_argument("--probe-timeout", type=float, default=0.3)
    p.add_argument("--baseline", type=float, default=2.0,
                   help="seconds of probing before the update (the probe's own noise)")  # fmt: skip
    p.add_argument("--serving-timeout", type=float, default=30.0,
                   help="how long the probers may take to see every replica answering")  # fmt: skip
    p.add_argument("--linger", type=float, default=1.0,
                   help="seconds to keep watching after the update is done")  # fmt: skip
    p.add_argument("--settle", type=float, default=2.0, help="seconds between rounds")
    p.add_argument("--timeout", type=float, default=180.0, help="per-phase timeout in seconds")
    p.add_argument("--no-prepull", action="store_true",
                   help="do not pull the images into the workers' engines beforehand")  # fmt: skip
    p.add_argument("--json", help="write the results (every round, every sample) to this file")
    p.add_argument("--keep-logs", metavar="DIR", help="copy shoald/dockerd/etcd logs into DIR")
    p.add_argument("--keep-labs", action="store_true", help="leave the labs up (debugging)")
    p.add_argument("--shoald-log-level", default="", help="SHOAL_LAB_LOG_LEVEL for the labs")
    args = p.parse_args(argv)
    chosen = args.only or [s.strip() for s in args.systems.split(",") if s.strip()]
    bad = [s for s in chosen if s not in SYSTEMS]
    if bad:
        p.error(f"unknown system(s) {bad}; choose from {', '.join(SYSTEMS)}")
    args.system_list = [s for s in SYSTEMS if s in chosen]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_signals()
    systems = args.system_list
    out: dict[str, Any] = {
        "benchmark": "rolling_update",
        "params": {k: getattr(args, k) for k in ("replicas", "parallelism", "workers", "poll",
                                                 "probe_interval", "probe_timeout", "baseline",
                                                 "no_prepull")},
        "machine": machine_info(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }  # fmt: skip
    rounds: dict[str, list[dict[str, Any]]] = {s: [] for s in systems}
    labs_info: dict[str, dict[str, Any]] = {}
    with contextlib.ExitStack() as stack:
        labs: dict[str, BenchLab] = {}
        for s in systems:
            lab = BenchLab(s, unique_name("ru", s), args.workers, keep=args.keep_labs,
                           log_level=args.shoald_log_level)  # fmt: skip
            stack.enter_context(lab)
            info = labs_info.setdefault(s, {"lab": lab.name})
            log(f"── {s}: lab {lab.name}")
            try:
                setup_lab(lab, args, info)
                labs[s] = lab
            except Exception as e:  # noqa: BLE001 — report it, go on
                log(f"  {s} lab failed: {type(e).__name__}: {e}")
                info["error"] = f"{type(e).__name__}: {e}"
        for i in range(args.rounds):
            for s in systems:
                res: dict[str, Any] = {"system": s, "round": i + 1, "loadavg": os.getloadavg()}
                rounds[s].append(res)
                if s not in labs:
                    res["error"] = labs_info[s].get("error", "no lab")
                    continue
                log(f"── {s} (round {i + 1}/{args.rounds})")
                t0 = time.monotonic()
                try:
                    run_round(labs[s], args, res)
                    derive(res)
                except Exception as e:  # noqa: BLE001 — report it, go on
                    log(f"  {s} failed: {type(e).__name__}: {e}")
                    res["error"] = f"{type(e).__name__}: {e}"
                res["wall_s"] = round(time.monotonic() - t0, 2)
        for s, lab in labs.items():  # before `shoal lab down` removes them
            with contextlib.suppress(Exception):
                labs_info[s]["shoald_logs"] = lab.shoald_logs()
            if args.keep_logs:
                with contextlib.suppress(Exception):
                    lab.copy_logs(args.keep_logs, "rolling")
    out["labs"] = labs_info
    out["rounds"] = rounds
    out["ratios_docker_over_shoal"] = print_report(rounds, args)
    out["machine"]["loadavg_after"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=str) + "\n")
        log(f"results written to {args.json}")
    return 1 if any(r.get("error") for rs in rounds.values() for r in rs) else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["probe"]:
        sys.exit(probe_main(sys.argv[2:]))
    sys.exit(main())
