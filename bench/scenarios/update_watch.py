"""The API side of a rolling update: ``GET /tasks`` and ``GET /services/web`` polled after
``service update``, what each task was seen doing when (and by its own timestamps), and
per slot the hand-over from the old task to the new one."""

from __future__ import annotations

import re
import statistics
import time
from datetime import datetime
from typing import Any

from kit.docker import SERVICE, api_get, is_running, service_tasks
from kit.poll import Firsts

from .serving import NEW


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

    def __init__(self, api_host: str, t0: float, wall0: float, n: int) -> None:
        self.api_host, self.t0, self.wall0, self.n = api_host, t0, wall0, n
        self.tasks: dict[str, dict[str, Any]] = {}
        self.firsts = Firsts()
        self.update_states: list[list[Any]] = []
        self.service: dict[str, Any] = {}
        self.errors = 0
        self.polls = 0

    def poll(self) -> None:
        self.polls += 1
        try:
            tasks = service_tasks(self.api_host)
            svc = api_get(self.api_host, f"/services/{SERVICE}")
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
        self.firsts.see("first_new_running_s", v2 >= 1, now)
        self.firsts.see("all_new_running_s", v2 >= self.n and old_live == 0, now)
        self.firsts.see("update_started_s", state == "updating", now)
        self.firsts.see("completed_s", v2 >= self.n and old_live == 0 and state == "completed", now)
        self.firsts.see("status_completed_s", state == "completed", now)

    def summary(self) -> dict[str, Any]:
        us = self.service.get("UpdateStatus") or {}
        new = [r for r in self.tasks.values() if r["v"] == NEW]
        running_ts = [r["running_ts"] for r in new if r.get("running_ts") is not None]
        return {
            **self.firsts.at,
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
