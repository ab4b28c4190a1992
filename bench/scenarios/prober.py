"""The rolling update's probers: one per worker host, in the host's network namespace
(``rolling_update.py probe …``; the task containers' bridge addresses are reachable only
there). Every sweep it lists the engine's running task containers and sends each
``GET /version`` on port 80, printing one JSON line: ``{t, node, s: [[task id, version] …],
x: [[task id, why] …]}``, ``t`` on the machine's monotonic clock. ``Probers`` starts them
and collects their lines."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

from kit.docker import SERVICE, clean_env
from kit.lab import BenchLab

SCRIPT = Path(__file__).resolve().parents[1] / "rolling_update.py"  # `… probe` runs probe_main


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
        for node in self.nodes:
            sock = self.lab.engine_host(node).removeprefix("unix://")
            argv = [
                *self.lab.netns_prefix(node), sys.executable, str(SCRIPT), "probe",
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
