"""Secrets and configs, the steps (``secrets_configs.py``): on a one-node swarm, N secrets
created one after the other with the CLI and with the Engine API, listed, a few configs (one
a template); a service with K secrets and 2 configs against the same service without them; a
secret rotated by a rolling update; the N secrets removed. Each system's setup is at the end
(``run_shoal``, ``run_docker_swarm``), as in ``converge_systems``."""

from __future__ import annotations

import argparse
import base64
import contextlib
import math
import secrets as rand
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kit.docker import (
    SERVICE,
    api_get,
    count_containers,
    docker_cli,
    docker_ok,
    is_running,
    service_status,
    service_tasks,
    task_containers,
)
from kit.engine import bench_shoald, engine_pids, new_engine, wait_node_ready
from kit.logs import generic, keep_shoald_logs
from kit.poll import Firsts, Poller, wait_gone
from kit.procs import cpu_delta, cpu_now, resources
from kit.report import fmt
from kit.runs import log

from shoal.lab.api import api_json, api_request
from shoal.testing.images import BUSYBOX

from .update_watch import wall_rel

SYSTEMS = ("shoal", "docker")
API = "/v1.41"
API_TIMEOUT = 30.0
IDLE = ("sh", "-c", 'trap "exit 0" TERM; while :; do sleep 0.2; done')
ROTATED = "s0"  # the service's secret that the rotation replaces (by s0.v2, target s0)
TEMPLATE = (
    'service={{ .Service.Name }} slot={{ .Task.Slot }} node={{ .Node.Hostname }} '
    's0={{ secret "s0" }}\n'
)  # fmt: skip
PidsOf = Callable[[], dict[str, int | None]]


def payload(size: int) -> bytes:
    """size bytes of printable random text (every secret its own)."""
    return rand.token_hex(size // 2 + 1)[:size].encode()


def timings(times: list[float], total: float | None = None) -> dict[str, Any]:
    """n, the total (s), and p50, p99, min and max per call (ms)."""
    if not times:
        return {"n": 0}
    ms = sorted(t * 1000 for t in times)
    p99 = ms[max(0, math.ceil(0.99 * len(ms)) - 1)]  # nearest rank
    return {"n": len(ms), "total_s": round(total if total is not None else sum(times), 3),
            "p50_ms": round(statistics.median(ms), 2), "p99_ms": round(p99, 2),
            "min_ms": round(ms[0], 2), "max_ms": round(ms[-1], 2)}  # fmt: skip


def repeat(n: int, call: Callable[[], Any]) -> list[float]:
    """Seconds each of n calls took."""
    out = []
    for _ in range(n):
        t0 = time.monotonic()
        call()
        out.append(time.monotonic() - t0)
    return out


def api_ok(host: str, method: str, path: str, body: Any = None) -> Any:
    status, answer = api_json(host, method, API + path, body, timeout=API_TIMEOUT)
    if status >= 300:
        raise RuntimeError(f"{method} {path} → {status}: {answer}")
    return answer


# ── 1. the objects ─────────────────────────────────────────────────────────────────────


def object_phases(
    res: dict[str, Any], api_host: str, args: argparse.Namespace, pids_of: PidsOf, tmp: Path
) -> dict[str, bytes]:
    """N secrets by the CLI (timed), `secret ls` with N, N more by the API (timed) and
    removed by the API (timed), the configs, the service's K secrets; → name → payload."""
    out = res.setdefault("objects", {})
    pids = pids_of()
    files = []
    for i in range(args.secrets):
        f = tmp / f"bench-{i:04d}"
        f.write_bytes(payload(args.payload))
        files.append(f)

    cpu0 = cpu_now(pids)
    t0 = time.monotonic()
    times = [docker_ok(api_host, "secret", "create", f.name, str(f))[1] for f in files]
    out["create_cli"] = timings(times, time.monotonic() - t0)
    out["create_cli"]["cpu_s"] = cpu_delta(cpu0, cpu_now(pids))
    log(f"  {args.secrets} × secret create (CLI): {out['create_cli']['total_s']:.2f}s, "
        f"p50 {out['create_cli']['p50_ms']:.0f} ms")  # fmt: skip

    listed = api_get(api_host, API + "/secrets", API_TIMEOUT)
    out["listed"] = len(listed)
    if len(listed) != args.secrets:
        raise RuntimeError(f"GET /secrets lists {len(listed)} secrets, not {args.secrets}")
    out["ls_api"] = timings(repeat(args.ls_samples, lambda: api_get(
        api_host, API + "/secrets", API_TIMEOUT)))  # fmt: skip
    out["ls_cli"] = timings(repeat(args.ls_cli_samples, lambda: docker_ok(
        api_host, "secret", "ls")))  # fmt: skip
    out["inspect_api"] = timings(repeat(args.ls_samples, lambda: api_get(
        api_host, API + "/secrets/bench-0000", API_TIMEOUT)))  # fmt: skip
    log(
        f"  secret ls with {args.secrets}: GET /secrets p50 "
        f"{out['ls_api']['p50_ms']:.1f} ms, CLI p50 {out['ls_cli']['p50_ms']:.0f} ms"
    )

    if args.api_creates:  # the same through the Engine API: no CLI start-up in the times
        bodies = [{"Name": f"api-{i:04d}", "Labels": {"bench": "api"},
                   "Data": base64.b64encode(payload(args.payload)).decode()}
                  for i in range(args.secrets)]  # fmt: skip
        ids: list[str] = []
        cpu0 = cpu_now(pids)
        t0 = time.monotonic()
        times = []
        for b in bodies:
            t1 = time.monotonic()
            ids.append(api_ok(api_host, "POST", "/secrets/create", b)["ID"])
            times.append(time.monotonic() - t1)
        out["create_api"] = timings(times, time.monotonic() - t0)
        out["create_api"]["cpu_s"] = cpu_delta(cpu0, cpu_now(pids))
        t0 = time.monotonic()
        times = []
        for sid in ids:
            t1 = time.monotonic()
            status, body = api_request(api_host, "DELETE", f"{API}/secrets/{sid}",
                                       timeout=API_TIMEOUT)  # fmt: skip
            if status != 204:
                raise RuntimeError(f"DELETE /secrets/{sid} → {status}: {body[:200]!r}")
            times.append(time.monotonic() - t1)
        out["rm_api"] = timings(times, time.monotonic() - t0)
        log(f"  {args.secrets} × POST /secrets/create: {out['create_api']['total_s']:.2f}s "
            f"(p50 {out['create_api']['p50_ms']:.1f} ms); DELETE: "
            f"{out['rm_api']['total_s']:.2f}s")  # fmt: skip

    # The configs: two plain ones, one template (Go templates, as Docker's).
    (tmp / "app-conf").write_text("listen 80\nworkers 4\n")
    (tmp / "extra-conf").write_text("debug false\n")
    (tmp / "app-tmpl").write_text(TEMPLATE)
    cfg = {}
    for name, extra in (("app-conf", ()), ("extra-conf", ()),
                        ("app-tmpl", ("--template-driver", "golang"))):  # fmt: skip
        cfg[name] = round(docker_ok(api_host, "config", "create", *extra, name,
                                    str(tmp / name))[1], 4)  # fmt: skip
    out["config_create_cli_s"] = cfg
    out["config_create_plain_cli_s"] = round(statistics.median(
        [cfg["app-conf"], cfg["extra-conf"]]), 4)  # fmt: skip
    out["config_create_template_cli_s"] = cfg["app-tmpl"]
    tmpl = api_get(api_host, API + "/configs/app-tmpl", API_TIMEOUT)
    out["template_driver"] = ((tmpl.get("Spec") or {}).get("Templating") or {}).get("Name")
    if out["template_driver"] != "golang":
        raise RuntimeError(f"config app-tmpl has Templating {tmpl.get('Spec')}")

    # The service's own secrets (s0 … s{K-1}), and s0.v2 for the rotation later.
    data: dict[str, bytes] = {}
    for i in range(args.service_secrets):
        name = f"s{i}"
        data[name] = payload(args.payload)
        (tmp / name).write_bytes(data[name])
        docker_ok(api_host, "secret", "create", name, str(tmp / name))
    return data


# ── 2. the services ────────────────────────────────────────────────────────────────────


def converge(api_host: str, engine_host: str, name_args: list[str], n: int,
             args: argparse.Namespace, pids: dict[str, int | None]) -> dict[str, Any]:  # fmt: skip
    """`service create -d --name web … ` → n/n running in `docker service ls`."""
    cpu0 = cpu_now(pids)
    t0 = time.monotonic()
    _, cli_s = docker_ok(api_host, "service", "create", "-d", "--name", SERVICE,
                         "--replicas", str(n), *name_args, BUSYBOX, *IDLE)  # fmt: skip
    poller = Poller(t0, lambda: service_status(api_host, API_TIMEOUT)[0], args.poll)
    t = poller.wait_for(lambda k: k >= n, args.timeout, None)
    out = {
        "seconds": t, "cli_s": round(cli_s, 3), "timed_out": t is None,
        "first_running_s": poller.first_at(lambda k: k > 0),
        "half_running_s": poller.first_at(lambda k: k >= n / 2),
        "polls": len(poller.samples), "poll_errors": poller.errors,
        "cpu_s": cpu_delta(cpu0, cpu_now(pids)),
    }  # fmt: skip
    if t is None:
        raise TimeoutError(f"{n} tasks not running after {args.timeout}s")
    out["engine_running"] = count_containers(engine_host, timeout=API_TIMEOUT)
    out.update(task_failures(api_host))
    return out


def task_failures(api_host: str) -> dict[str, Any]:
    """The service's tasks so far, how many of them failed or were rejected, and why."""
    tasks = service_tasks(api_host, API_TIMEOUT)
    bad = [t for t in tasks if (t.get("Status") or {}).get("State") in ("failed", "rejected")]
    errs = sorted({generic((t.get("Status") or {}).get("Err") or "?") for t in bad})
    return {"tasks": len(tasks), "tasks_failed": len(bad), "task_errors": errs}


def remove_service(api_host: str, engine_host: str, args: argparse.Namespace) -> float | None:
    t0 = time.monotonic()
    docker_ok(api_host, "service", "rm", SERVICE)
    return wait_gone([engine_host], t0, args.poll, args.timeout, API_TIMEOUT)


def cat(engine_host: str, cid: str, path: str) -> str:
    rc, out, err, _ = docker_cli(engine_host, "exec", cid, "cat", path, timeout=60.0)
    return out if rc == 0 else f"!! rc {rc}: {err.strip()}"


def check_files(engine_host: str, data: dict[str, bytes], args: argparse.Namespace,
                secret: str = ROTATED, every: bool = False) -> dict[str, Any]:  # fmt: skip
    """What the running task containers see: /run/secrets/<secret> (on every one or the
    first), and on the first the other secrets, the config and the rendered template."""
    ctrs = task_containers(engine_host, API_TIMEOUT)
    if not ctrs:
        return {"containers": 0}
    first = ctrs[0]["Id"]
    want = data[secret].decode()
    seen = [cat(engine_host, c["Id"], f"/run/secrets/{ROTATED}") for c in
            (ctrs if every else ctrs[:1])]  # fmt: skip
    out: dict[str, Any] = {"containers": len(ctrs), "checked": len(seen),
                           "secret_ok": sum(1 for s in seen if s == want)}  # fmt: skip
    if not every:
        out["other_secrets_ok"] = sum(
            1
            for i in range(1, args.service_secrets)
            if cat(engine_host, first, f"/run/secrets/s{i}") == data[f"s{i}"].decode()
        )
        out["config_ok"] = cat(engine_host, first, "/etc/app.conf").startswith("listen 80")
        out["template"] = cat(engine_host, first, "/etc/app.tmpl").strip()
        out["template_ok"] = out["template"].startswith(f"service={SERVICE} slot=") and out[
            "template"
        ].endswith(f"s0={want}")
    return out


def service_phases(
    res: dict[str, Any], api_host: str, engine_host: str, args: argparse.Namespace,
    pids_of: PidsOf, data: dict[str, bytes], tmp: Path,
) -> None:  # fmt: skip
    """The plain service, then the one with K secrets + 2 configs; its rotation; rm."""
    pids = pids_of()
    n = args.replicas
    svc = res.setdefault("services", {})
    svc["plain"] = plain = converge(api_host, engine_host, [], n, args, pids)
    log(f"  plain service {n}/{n} running after {plain['seconds']:.2f}s")
    svc["plain"]["rm_s"] = remove_service(api_host, engine_host, args)
    time.sleep(args.settle)

    refs = [a for i in range(args.service_secrets) for a in ("--secret", f"s{i}")]
    refs += ["--config", "source=app-conf,target=/etc/app.conf",
             "--config", "source=app-tmpl,target=/etc/app.tmpl"]  # fmt: skip
    svc["secrets"] = with_secrets = converge(api_host, engine_host, refs, n, args, pids)
    log(f"  service with {args.service_secrets} secrets + 2 configs {n}/{n} running after "
        f"{with_secrets['seconds']:.2f}s")  # fmt: skip
    svc["secrets"]["files"] = files = check_files(engine_host, data, args)
    if not (files.get("secret_ok") and files.get("template_ok") and files.get("config_ok")
            and files.get("other_secrets_ok") == args.service_secrets - 1):  # fmt: skip
        raise RuntimeError(f"the task's files are not what they should be: {files}")
    time.sleep(args.settle)
    res["rotation"] = rotate(api_host, engine_host, args, pids, data, tmp)
    res["rotation"]["rm_s"] = remove_service(api_host, engine_host, args)


# ── 3. the rotation ────────────────────────────────────────────────────────────────────


def secret_names(task: dict[str, Any]) -> dict[str, str]:
    """target file name → secret name, of a task's spec."""
    refs = ((task.get("Spec") or {}).get("ContainerSpec") or {}).get("Secrets") or []
    return {(r.get("File") or {}).get("Name", ""): r.get("SecretName", "") for r in refs}


def rotate(
    api_host: str, engine_host: str, args: argparse.Namespace,
    pids: dict[str, int | None], data: dict[str, bytes], tmp: Path,
) -> dict[str, Any]:  # fmt: skip
    """s0.v2 created; `service update --secret-rm s0 --secret-add source=s0.v2,target=s0`
    → UpdateStatus completed and every task running with s0.v2; then every container's
    /run/secrets/s0 read."""
    n, new = args.replicas, f"{ROTATED}.v2"
    data[new] = payload(args.payload)
    (tmp / new).write_bytes(data[new])
    out: dict[str, Any] = {}
    _, out["secret_create_cli_s"] = docker_ok(api_host, "secret", "create", new, str(tmp / new))
    before = task_failures(api_host)
    cpu0 = cpu_now(pids)
    wall0, t0 = time.time(), time.monotonic()
    _, cli_s = docker_ok(
        api_host, "service", "update", "-d", "--secret-rm", ROTATED,
        "--secret-add", f"source={new},target={ROTATED}",
        "--update-parallelism", str(args.parallelism), "--update-delay", "0s", SERVICE,
    )  # fmt: skip
    out["cli_s"] = round(cli_s, 3)
    firsts, errors, polls = Firsts(), 0, 0
    states: list[list[Any]] = []
    us: dict[str, Any] = {}
    while time.monotonic() - t0 < args.timeout:
        polls += 1
        try:
            tasks = service_tasks(api_host, API_TIMEOUT)
            us = api_get(api_host, f"/services/{SERVICE}", API_TIMEOUT).get("UpdateStatus") or {}
        except Exception:  # noqa: BLE001 — a busy manager may time out; keep polling
            errors += 1
            time.sleep(args.poll)
            continue
        now = time.monotonic() - t0
        state = us.get("State")
        done_at = wall_rel(us.get("CompletedAt"), wall0)
        if state == "completed" and (done_at is None or done_at < 0):
            state = "completed (stale)"
        if not states or states[-1][1] != state:
            states.append([round(now, 3), state])
        running = [t for t in tasks if is_running(t)]
        on_new = sum(1 for t in running if secret_names(t).get(ROTATED) == new)
        on_old = sum(1 for t in running if secret_names(t).get(ROTATED) != new)
        firsts.see("first_new_running_s", on_new >= 1, now)
        firsts.see("all_new_running_s", on_new >= n and on_old == 0, now)
        firsts.see("status_completed_s", state == "completed", now)
        firsts.see("completed_s", on_new >= n and on_old == 0 and state == "completed", now)
        if firsts.get("completed_s") is not None:
            break
        if state in ("paused", "rollback_started", "rollback_completed"):
            raise RuntimeError(f"rotation {state}: {us.get('Message')}")
        time.sleep(args.poll)
    out.update(firsts.at)
    out["cpu_s"] = cpu_delta(cpu0, cpu_now(pids))
    out["update_status_seen"] = states
    out["update_status"] = us
    out["status_started_at_s"] = wall_rel(us.get("StartedAt"), wall0)
    out["status_completed_at_s"] = wall_rel(us.get("CompletedAt"), wall0)
    out["polls"], out["poll_errors"] = polls, errors
    after = task_failures(api_host)  # those of the rotation's tasks
    out["tasks"] = after["tasks"]
    out["tasks_failed"] = after["tasks_failed"] - before["tasks_failed"]
    out["task_errors"] = sorted(set(after["task_errors"]) - set(before["task_errors"]))
    if out.get("completed_s") is None:
        raise TimeoutError(f"rotation not completed after {args.timeout}s: {states}")
    log(f"  rotation: all {n} on {new} after {fmt(out.get('all_new_running_s'))}, "
        f"completed after {fmt(out.get('completed_s'))}")  # fmt: skip
    out["files"] = files = check_files(engine_host, data, args, secret=new, every=True)
    if files.get("secret_ok") != n or files.get("containers") != n:
        raise RuntimeError(f"after the rotation, not every task reads {new}: {files}")
    return out


# ── 4. the removal ─────────────────────────────────────────────────────────────────────


def remove_phase(res: dict[str, Any], api_host: str, args: argparse.Namespace,
                 pids_of: PidsOf) -> None:  # fmt: skip
    """`docker secret rm bench-0000 … bench-{N-1}` (one command: one DELETE each)."""
    names = [f"bench-{i:04d}" for i in range(args.secrets)]
    pids = pids_of()
    cpu0 = cpu_now(pids)
    _, seconds = docker_ok(api_host, "secret", "rm", *names, timeout=args.timeout)
    left = [s["Spec"]["Name"] for s in api_get(api_host, API + "/secrets", API_TIMEOUT)]
    res["remove"] = {"cli_total_s": round(seconds, 3), "cpu_s": cpu_delta(cpu0, cpu_now(pids)),
                     "left": sorted(set(left) & set(names))}  # fmt: skip
    if res["remove"]["left"]:
        raise RuntimeError(f"secrets left after secret rm: {res['remove']['left'][:5]}")
    log(f"  secret rm of {args.secrets}: {seconds:.2f}s")


def all_phases(res: dict[str, Any], api_host: str, engine_host: str,
               args: argparse.Namespace, pids_of: PidsOf) -> None:  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-secrets-") as d:
        tmp = Path(d)
        data = object_phases(res, api_host, args, pids_of, tmp)
        service_phases(res, api_host, engine_host, args, pids_of, data, tmp)
        remove_phase(res, api_host, args, pids_of)
    res["resources"] = resources(pids_of(), 0)


# ── the systems ────────────────────────────────────────────────────────────────────────


def run_shoal(args: argparse.Namespace, res: dict[str, Any]) -> None:
    with contextlib.ExitStack() as stack:
        eng = new_engine(stack, "shoal")
        shoald = bench_shoald(
            stack, eng, host_ns=args.shoald_host_ns, log_level=args.shoald_log_level
        )
        t0 = time.monotonic()
        shoald.start(timeout=60.0)
        res["shoald_start_s"] = round(time.monotonic() - t0, 3)
        _, res["swarm_init_s"] = docker_ok(
            shoald.host, "swarm", "init", "--advertise-addr", "127.0.0.1"
        )
        res["node_ready_after_init_s"] = wait_node_ready(shoald.host)
        log(f"  shoald up in {res['shoald_start_s']}s, swarm init {res['swarm_init_s']:.2f}s")
        time.sleep(args.settle)
        etcd_log = shoald.state_dir / "swarm" / "etcd.log"
        try:
            all_phases(
                res, shoald.host, eng.host, args,
                lambda: {"shoald": shoald.proc.pid if shoald.proc else None,
                         "etcd": shoald.etcd_pid(), **engine_pids(eng)},
            )  # fmt: skip
        finally:
            keep_shoald_logs(res, shoald.log, etcd_log, args.keep_logs)


def run_docker_swarm(args: argparse.Namespace, res: dict[str, Any]) -> None:
    with contextlib.ExitStack() as stack:
        eng = new_engine(stack, "docker")
        _, res["swarm_init_s"] = docker_ok(
            eng.host, "swarm", "init", "--advertise-addr", "127.0.0.1"
        )
        res["node_ready_after_init_s"] = wait_node_ready(eng.host)
        log(f"  swarm init {res['swarm_init_s']:.2f}s")
        time.sleep(args.settle)
        all_phases(res, eng.host, eng.host, args, lambda: engine_pids(eng))


RUNNERS: dict[str, Callable[[argparse.Namespace, dict[str, Any]], None]] = {
    "shoal": run_shoal,
    "docker": run_docker_swarm,
}
