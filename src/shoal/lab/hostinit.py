"""The init of a lab host: holds its namespaces, starts its daemons, reaps every orphan.

Run as ``python hostinit.py DIR`` (standard library only: it is started by path, not as a
module) as the last step of the namespace holder script, so it runs inside the host's fresh
network, UTS and mount namespaces. It

* marks itself a child subreaper (``PR_SET_CHILD_SUBREAPER``): daemons it starts, and the
  processes they orphan (containerd shims, an etcd whose shoald was killed …), are reaped
  here, as a real machine's init would, instead of piling up as zombies;
* listens on ``DIR/init.sock`` for one-line JSON requests, one per connection:

  - ``{"op": "spawn", "argv": [...], "log": PATH, "env": {...}}`` → ``{"pid": N}``
    (a new session, stdin ``/dev/null``, stdout+stderr appended to PATH)
  - ``{"op": "status", "pid": N}`` → ``{"running": bool, "exit": code-or-null}``
  - ``{"op": "ping"}`` → ``{"ok": true}``

* creates ``DIR/ns-ready`` once it accepts requests.

It never exits on its own; the lab kills it (SIGKILL) when the host is removed, which ends
the namespaces.
"""

from __future__ import annotations

import ctypes
import json
import os
import selectors
import signal
import socket
import sys
from typing import Any

PR_SET_CHILD_SUBREAPER = 36
MAX_EXITS = 1000


def main(directory: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only SIGKILL ends a host

    rfd, wfd = os.pipe()
    os.set_blocking(rfd, False)
    os.set_blocking(wfd, False)
    signal.set_wakeup_fd(wfd)
    signal.signal(signal.SIGCHLD, lambda *_: None)

    path = os.path.join(directory, "init.sock")
    if os.path.exists(path):
        os.unlink(path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    os.chmod(path, 0o600)
    srv.listen(64)

    exits: dict[int, int] = {}
    children: set[int] = set()

    def reap() -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            children.discard(pid)
            exits[pid] = os.waitstatus_to_exitcode(status)
            while len(exits) > MAX_EXITS:
                exits.pop(next(iter(exits)))

    def spawn(req: dict[str, Any]) -> dict[str, Any]:
        log = req.get("log") or "/dev/null"
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ]
        env = req.get("env") or dict(os.environ)
        argv = [str(a) for a in req["argv"]]
        pid = os.posix_spawnp(
            argv[0], argv, env, file_actions=actions, setsid=True,
            setsigdef=(signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD),
        )  # fmt: skip
        children.add(pid)
        exits.pop(pid, None)
        return {"pid": pid}

    def handle(conn: socket.socket) -> None:
        conn.settimeout(5.0)
        with conn:
            data = b""
            while not data.endswith(b"\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            try:
                req = json.loads(data)
                op = req.get("op")
                if op == "spawn":
                    answer = spawn(req)
                elif op == "status":
                    reap()
                    pid = int(req["pid"])
                    answer = {"running": pid in children, "exit": exits.get(pid)}
                elif op == "ping":
                    answer = {"ok": True}
                else:
                    answer = {"error": f"unknown op {op!r}"}
            except Exception as e:  # noqa: BLE001 - every failure goes back to the caller
                answer = {"error": f"{type(e).__name__}: {e}"}
            conn.sendall(json.dumps(answer).encode() + b"\n")

    sel = selectors.DefaultSelector()
    sel.register(srv, selectors.EVENT_READ, "accept")
    sel.register(rfd, selectors.EVENT_READ, "signal")
    open(os.path.join(directory, "ns-ready"), "w").close()
    while True:
        for key, _ in sel.select(timeout=5.0):
            if key.data == "accept":
                try:
                    conn, _ = srv.accept()
                except OSError:
                    continue
                try:
                    handle(conn)
                except OSError:
                    pass
            else:
                try:
                    os.read(rfd, 4096)
                except BlockingIOError:
                    pass
        reap()


if __name__ == "__main__":
    main(sys.argv[1])
