"""The engine plugin's socket: HTTP on a unix socket where dockerd looks for plugins
(``/run/docker/plugins/shoal.sock``), each ``POST /<Method>`` answered by the ``Driver``.

libnetwork's plugin client posts JSON (``application/vnd.docker.plugins.v1+json``) and reads
the same back; an unknown method is 404 (dockerd then treats it as not implemented); a
request that is not JSON is 400; a failure the user should see is ``{"Err": "…"}``
(``{"Error": "…"}`` for the IPAM methods).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from typing import Any

from aiohttp import web

from shoal.network.driver import Driver, error_field

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.docker.plugins.v1+json"


class PluginServer:
    def __init__(self, driver: Driver, path: str) -> None:
        self.driver = driver
        self.path = path
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("POST", "/{method}", self._handle)
        return app

    async def start(self) -> None:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # a previous shoald's
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        await web.UnixSite(runner, self.path).start()
        os.chmod(self.path, 0o660)
        self._runner = runner

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if not self.driver.knows(method):
            return web.Response(status=404, text=f"{method}: not implemented by shoal")
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return _json({error_field(method): f"{method}: the request is not JSON"}, 400)
        if not isinstance(body, dict):
            body = {}
        try:
            answer = await self.driver.call(method, body)
        except Exception as e:
            log.exception("engine plugin: %s failed", method)
            answer = {error_field(method): f"{method}: {e}"}
        if error_field(method) in answer:
            log.warning("engine plugin: %s → %s", method, answer[error_field(method)])
        else:
            log.debug("engine plugin: %s", method)
        return _json(answer)


def _json(data: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(data), content_type=CONTENT_TYPE)
