"""A real `shoald` for tests, running as "that host" inside a test engine's namespaces.

The daemon's API socket lives in a temporary directory (reachable from every namespace); its
etcd member listens on the engine namespace's own loopback, so concurrent test daemons never
share ports. `kill()` is SIGKILL for crash tests; `start()` again brings the same node back.

The benchmarks choose more: the log level, etcd's two ports (needed in the root network
namespace, where other daemons' etcd may listen), running in the root network namespace
instead of the engine's, and a session of its own (a Ctrl-C to the caller does not reach it).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shoal.testing.dockerd import IsolatedEngine, api_request


class Shoald:
    def __init__(
        self,
        engine: IsolatedEngine,
        state_dir: Path | None = None,
        *,
        log_level: str | None = None,
        etcd_ports: tuple[int, int] | None = None,
        in_engine_ns: bool = True,
        new_session: bool = False,
        args: Sequence[str] = (),
    ) -> None:
        self.engine = engine
        self.log_level = log_level or ("debug" if os.environ.get("SHOAL_TEST_DEBUG") else "info")
        self.etcd_ports = etcd_ports  # (client, peer); None: etcd's defaults
        self.in_engine_ns = in_engine_ns
        self.new_session = new_session
        self.args = list(args)  # more flags (an external etcd's)
        self.dir = Path(tempfile.mkdtemp(prefix="shoald-", dir=os.environ.get("SHOAL_TEST_TMPDIR")))
        self.state_dir = state_dir or self.dir / "state"
        self.exec_root = self.dir / "exec"
        self.socket = self.dir / "docker.sock"
        self.log = self.dir / "shoald.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout: float = 30.0) -> Shoald:
        if self.socket.exists():
            self.socket.unlink()
        src = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
        argv = [
            sys.executable, "-m", "shoal",
            "--state-dir", str(self.state_dir),
            "--exec-root", str(self.exec_root),
            "--host", self.host,
            "--engine", self.engine.host,
        ]  # fmt: skip
        if self.etcd_ports is not None:
            argv += ["--etcd-client-port", str(self.etcd_ports[0]),
                     "--etcd-peer-port", str(self.etcd_ports[1])]  # fmt: skip
        argv += ["--log-level", self.log_level, *self.args]
        with open(self.log, "ab") as out:
            kw: dict[str, Any] = dict(
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=self.new_session,
            )  # fmt: skip
            if self.in_engine_ns:
                self.proc = self.engine.popen_in_ns(argv, **kw)
            else:
                self.proc = subprocess.Popen(argv, **kw)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"shoald exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                status, _ = api_request(self.host, "GET", "/_ping")
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"shoald did not answer in {timeout}s:\n{self.log_tail()}")

    def stop(self) -> None:
        """A clean stop (SIGTERM); the swarm state stays for the next start."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self._kill_etcd()

    def kill(self) -> None:
        """SIGKILL shoald, as a crash would; its etcd child dies with it (or is killed here)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self._kill_etcd()

    def _etcd_pids(self) -> list[int]:
        marker = str(self.state_dir / "swarm" / "etcd").encode()
        found = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if marker in cmdline:
                found.append(int(pid))
        return found

    def etcd_pid(self) -> int | None:
        """The pid of this daemon's etcd member (a manager's child process), if it runs."""
        return next(iter(self._etcd_pids()), None)

    def _kill_etcd(self) -> None:
        for pid in self._etcd_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def api(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        return api_request(self.host, method, path, body)
