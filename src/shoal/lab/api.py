"""Docker Engine API requests over a unix socket, with the standard library only."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
from typing import Any


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: str, timeout: float = 60.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def socket_path_of(host: str) -> str:
    """``unix:///x/docker.sock`` or ``/x/docker.sock`` → ``/x/docker.sock``."""
    if host.startswith("unix://"):
        return host[len("unix://") :]
    if host.startswith("/"):
        return host
    raise ValueError(f"not a unix socket address: {host!r}")


def api_request(
    host: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> tuple[int, bytes]:
    """One Engine API request over a unix socket; returns (status, body)."""
    conn = UnixHTTPConnection(socket_path_of(host), timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def api_json(
    host: str, method: str, path: str, body: Any = None, timeout: float = 60.0
) -> tuple[int, Any]:
    """A request with a JSON body (if any); returns (status, decoded JSON or text)."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data is not None else {}
    status, raw = api_request(host, method, path, data, headers, timeout)
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def error_message(answer: Any) -> str:
    """The ``message`` of a Docker API error answer, or the answer itself."""
    if isinstance(answer, dict) and "message" in answer:
        return str(answer["message"])
    return str(answer)


def ping(host: str, timeout: float = 2.0) -> bool:
    with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
        status, body = api_request(host, "GET", "/_ping", timeout=timeout)
        return status == 200 and body == b"OK"
    return False
