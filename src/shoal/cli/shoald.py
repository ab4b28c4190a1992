"""`shoald`: the shoal daemon. Flags follow dockerd's conventions."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import NoReturn

from aiohttp import web

from shoal.api.errors import ShoalError
from shoal.dockerapi.app import make_app
from shoal.node.daemon import Daemon
from shoal.node.parts import DaemonConfig
from shoal.store.etcd import ClientTLS, endpoint_address

DEFAULT_HOST = "unix:///run/shoal/docker.sock"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="shoald", description="shoal: Docker Swarm mode in Python")
    p.add_argument("--state-dir", default="/var/lib/shoal", type=Path)
    p.add_argument(
        "--exec-root", default="/run/shoal", type=Path,
        help="what lives only while the host is up: the tasks' secrets and configs, on a tmpfs",
    )  # fmt: skip
    p.add_argument(
        "-H", "--host", action="append", default=None,
        help=f"Docker API socket to serve (unix:// or tcp://; default {DEFAULT_HOST})",
    )  # fmt: skip
    p.add_argument(
        "--engine", default="unix:///var/run/docker.sock", help="the local Docker Engine"
    )
    p.add_argument("--etcd-client-port", type=int, default=2379)
    p.add_argument("--etcd-peer-port", type=int, default=2380)
    p.add_argument(
        "--etcd-endpoints", default="",
        help="an external etcd cluster for the swarm's state, instead of an embedded member on "
        "each manager: comma-separated client URLs (https://HOST:2379,…)",
    )  # fmt: skip
    p.add_argument("--etcd-cacert", type=Path, help="the CA of the external etcd's certificates")
    p.add_argument("--etcd-cert", type=Path, help="this client's certificate (external etcd)")
    p.add_argument("--etcd-key", type=Path, help="this client's key (external etcd)")
    p.add_argument("--log-level", default="info")
    p.add_argument(
        "--experimental", action="store_true",
        help="report experimental features on (the engine's own flag is reported anyway)",
    )  # fmt: skip
    return p.parse_args(argv)


def etcd_settings(args: argparse.Namespace) -> tuple[list[str], ClientTLS | None]:
    """The external etcd cluster of the flags, checked (no endpoints: embedded members)."""
    endpoints = [e.strip() for e in args.etcd_endpoints.split(",") if e.strip()]
    files = (args.etcd_cacert, args.etcd_cert, args.etcd_key)
    if not endpoints:
        if any(files):
            _die("--etcd-cacert, --etcd-cert and --etcd-key go with --etcd-endpoints")
        return [], None
    for e in endpoints:
        try:
            endpoint_address(e)
        except ValueError as err:
            _die(str(err))
    if not all(e.startswith("https://") for e in endpoints):
        _die("--etcd-endpoints must be https:// URLs (the swarm's keys travel there)")
    if args.etcd_cacert is None or (args.etcd_cert is None) != (args.etcd_key is None):
        _die("an external etcd needs --etcd-cacert, and --etcd-cert with --etcd-key")
    for f in files:
        if f is not None and not f.is_file():
            _die(f"{f}: no such file")
    return endpoints, ClientTLS(args.etcd_cacert, args.etcd_cert, args.etcd_key)


def _die(message: str) -> NoReturn:
    raise SystemExit(f"shoald: {message}")


async def serve(args: argparse.Namespace) -> None:
    endpoints, tls = etcd_settings(args)
    daemon = Daemon(
        DaemonConfig(
            state_dir=args.state_dir,
            exec_root=args.exec_root,
            engine_host=args.engine,
            etcd_client_port=args.etcd_client_port,
            etcd_peer_port=args.etcd_peer_port,
            etcd_endpoints=endpoints,
            etcd_tls=tls,
        )
    )
    args.state_dir.mkdir(parents=True, exist_ok=True)
    try:
        await daemon.start()
    except ShoalError as e:
        _die(str(e))
    runner = web.AppRunner(
        make_app(daemon, args.experimental), access_log=None, handler_cancellation=True
    )
    await runner.setup()
    for host in args.host or [DEFAULT_HOST]:
        if host.startswith("unix://"):
            path = Path(host[len("unix://") :])
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                path.unlink()
            site: web.BaseSite = web.UnixSite(runner, str(path))
            await site.start()
            os.chmod(path, 0o660)
        elif host.startswith("tcp://"):
            h, _, port = host[len("tcp://") :].rpartition(":")
            site = web.TCPSite(runner, h or "127.0.0.1", int(port))
            await site.start()
        else:
            raise SystemExit(f"shoald: unsupported --host {host!r}")
        logging.info("API listening on %s", host)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    logging.info("shutting down")
    await runner.cleanup()
    await daemon.stop()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
