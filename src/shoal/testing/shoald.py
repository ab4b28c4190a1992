"""A real `shoald` for tests, running as "that host" inside a test engine's namespaces.

The daemon's API socket lives in a temporary directory (reachable from every namespace); its
etcd member listens on the engine namespace's own loopback, so concurrent test daemons never
share ports. `kill()` is SIGKILL for crash tests; `start()` again brings the same node back.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shoal.testing.dockerd import IsolatedEngine, api_request


class Shoald:
    def __init__(self, engine: IsolatedEngine, state_dir: Path | None = None) -> None:
        self.engine = engine
        self.dir = Path(tempfile.mkdtemp(prefix="shoald-", dir=os.environ.get("SHOAL_TEST_TMPDIR")))
        self.state_dir = state_dir or self.dir / "state"
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
        with open(self.log, "ab") as out:
            self.proc = self.engine.popen_in_ns(
                [
                    sys.executable, "-m", "shoal",
                    "--state-dir", str(self.state_dir),
                    "--host", self.host,
                    "--engine", self.engine.host,
                    "--log-level", "debug" if os.environ.get("SHOAL_TEST_DEBUG") else "info",
                ],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            )  # fmt: skip
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

    def _kill_etcd(self) -> None:
        marker = str(self.state_dir / "swarm" / "etcd")
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                try:
                    os.kill(int(pid), signal.SIGKILL)
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
