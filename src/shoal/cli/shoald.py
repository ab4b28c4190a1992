"""`shoald`: the shoal daemon. Flags follow dockerd's conventions."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path

from aiohttp import web

from shoal.dockerapi.app import make_app
from shoal.node.daemon import Daemon, DaemonConfig

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
    p.add_argument("--log-level", default="info")
    p.add_argument(
        "--experimental", action="store_true",
        help="report experimental features on (the engine's own flag is reported anyway)",
    )  # fmt: skip
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    daemon = Daemon(
        DaemonConfig(
            state_dir=args.state_dir,
            exec_root=args.exec_root,
            engine_host=args.engine,
            etcd_client_port=args.etcd_client_port,
            etcd_peer_port=args.etcd_peer_port,
        )
    )
    args.state_dir.mkdir(parents=True, exist_ok=True)
    await daemon.start()
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
