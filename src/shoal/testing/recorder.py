"""`Recorder`: service reads and compare-and-swap updates through the Docker Engine API, each
recorded in a `shoal.testing.history.History` for `check()`.

    rec = Recorder([m1.host, m2.host, m3.host])        # unix sockets of managers
    call = rec.read(service_id)                         # call.version, call.value
    rec.update(service_id, call.version, {"writer": "c1-7"})
    ...
    rec.read(service_id)                                # the final state, once clients stopped
    assert not check(rec.history)

The recorded value is the label `key` (default ``writer``): give every update its own. Calls
go to the hosts in turn unless `host=` says; the client is the calling thread's name unless
`client=` says. An update sends the spec of the last read of that service (or `spec=`) with
`labels` merged into its `Labels`.

Outcomes: 200 is `OK`; 400, 404 and 409 (and any "update out of sequence") are `FAIL`: the
manager refused before writing. Anything else — other statuses (503 without a leader may
come after the write was proposed), timeouts, lost connections — is `UNKNOWN`.
"""

from __future__ import annotations

import copy
import http.client
import itertools
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from shoal.lab.api import api_json, error_message
from shoal.testing.history import READ, WRITE, Call, History, Pending

REFUSED = (400, 404, 409)
OUT_OF_SEQUENCE = "update out of sequence"


class Recorder:
    def __init__(
        self,
        hosts: Sequence[str],
        history: History | None = None,
        key: str = "writer",
        timeout: float = 10.0,
        api_version: str = "v1.44",
    ) -> None:
        assert hosts, "at least one host"
        self.hosts = list(hosts)
        self.history = history if history is not None else History()
        self.key = key
        self.timeout = timeout
        self.prefix = f"/{api_version}" if api_version else ""
        self._lock = threading.Lock()
        self._turn = itertools.count()
        self._specs: dict[str, dict[str, Any]] = {}

    def read(self, service: str, *, client: str | None = None, host: str | None = None) -> Call:
        pending = self.history.invoke(_client(client), READ, service)
        status, body = self._request(pending, host, "GET", f"/services/{service}")
        if status == 200 and isinstance(body, dict):
            spec = body.get("Spec") or {}
            with self._lock:
                self._specs[service] = spec
            pending.ok(body["Version"]["Index"], (spec.get("Labels") or {}).get(self.key))
        elif status is not None:
            pending.fail(status, error_message(body))
        return self.history.complete(pending)

    def update(
        self,
        service: str,
        version: int,
        labels: Mapping[str, str],
        *,
        spec: Mapping[str, Any] | None = None,
        client: str | None = None,
        host: str | None = None,
    ) -> Call:
        if spec is None:
            with self._lock:
                spec = self._specs.get(service)
            if spec is None:
                raise ValueError(f"read service {service} first, or give its spec")
        body = copy.deepcopy(dict(spec))
        body["Labels"] = {**(body.get("Labels") or {}), **labels}
        value = labels.get(self.key)
        pending = self.history.invoke(_client(client), WRITE, service, version, value)
        path = f"/services/{service}/update?version={version}"
        status, answer = self._request(pending, host, "POST", path, body)
        if status == 200:
            pending.ok()
        elif status is not None:
            message = error_message(answer)
            if status in REFUSED or OUT_OF_SEQUENCE in message:
                pending.fail(status, message)
            else:
                pending.unknown(status, message)
        return self.history.complete(pending)

    def _request(
        self, pending: Pending, host: str | None, method: str, path: str, body: Any = None
    ) -> tuple[int | None, Any]:
        """(status, answer), or (None, None) with the pending call marked unknown."""
        if host is None:
            with self._lock:
                host = self.hosts[next(self._turn) % len(self.hosts)]
        try:
            return api_json(host, method, self.prefix + path, body, timeout=self.timeout)
        except (OSError, http.client.HTTPException) as e:
            pending.unknown(message=f"{type(e).__name__}: {e}")
            return None, None


def _client(client: str | None) -> str:
    return client if client is not None else threading.current_thread().name
