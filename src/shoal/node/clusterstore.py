"""The manager's cluster store, seen from its node: waiting for it to answer, the learners
promoted, leaving the etcd cluster, a snapshot restored into a new member's data directory,
and the last manager of a swarm on an external cluster erasing it."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from pathlib import Path

from shoal.api.errors import DaemonError
from shoal.store.etcd import Etcd
from shoal.store.mirrored import MirroredStore

log = logging.getLogger(__name__)

PROMOTE_PERIOD = 1.0  # seconds between looks for learners to promote
LEAVE_PATIENCE = 20.0  # seconds a demoted manager tries to take its member out


async def restore_snapshot(snapshot: bytes, data_dir: Path, name: str, peer_url: str) -> None:
    """etcd's own restore (`etcdctl snapshot restore`, Debian's etcd-client): a new
    one-member cluster's data directory from a snapshot."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=data_dir.parent) as tmp:
        path = Path(tmp) / "snapshot.db"
        path.write_bytes(snapshot)
        proc = await asyncio.create_subprocess_exec(
            shutil.which("etcdctl") or "/usr/bin/etcdctl", "snapshot", "restore", str(path),
            "--data-dir", str(data_dir), "--name", name,
            "--initial-cluster", f"{name}={peer_url}",
            "--initial-advertise-peer-urls", peer_url,
            env={**os.environ, "ETCDCTL_API": "3"},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise DaemonError(f"etcdctl snapshot restore failed: {out.decode(errors='replace')}")
    data_dir.chmod(0o700)


async def leave_cluster(kv: object) -> bool:
    """A manager that leaves takes its member out of the etcd cluster first, so that the
    others no longer count it for their quorum. Whether it is out (or was never in one);
    without a quorum it cannot be, nor while etcd finds the cluster not healthy enough to
    lose a voter (a member that joined moments ago)."""
    if not isinstance(kv, Etcd):
        return True
    try:
        async with asyncio.timeout(5):
            own = await kv.member_id()
            if any(m.id != own for m in await kv.members()):
                await kv.remove_member(own)
                log.info("this manager's etcd member left the cluster")
        return True
    except Exception as e:  # noqa: BLE001 - said, and the caller decides
        log.warning("leaving the etcd cluster: %s", e)
        return False


async def erase_if_last(store: MirroredStore, node_id: str) -> None:
    """The last manager of a swarm on an external etcd cluster leaves (`--force`): the
    swarm's keys go, as Docker's last manager takes the swarm's state with it."""
    if not isinstance(store.kv, Etcd) or not store.quorate:
        return
    if any(n.spec.role == "manager" and n.id != node_id for n in store.nodes()):
        return
    try:
        async with asyncio.timeout(5):
            await store.kv.delete_all()
        log.info("the last manager left: the swarm's keys are erased from the etcd cluster")
    except Exception as e:  # noqa: BLE001 - leaving goes on
        log.warning("erasing the swarm from the etcd cluster: %s", e)


async def promote_learners(etcd: Etcd) -> None:
    """Every manager promotes the learners that caught up (a manager that joined starts as
    one): whichever manager let it join may be gone by then."""
    while True:
        try:
            for name in await etcd.promote_learners():
                log.info("etcd member %s promoted: it votes now", name)
        except Exception as e:  # noqa: BLE001 - no quorum now: the next round
            log.debug("promoting learners: %s", e)
        await asyncio.sleep(PROMOTE_PERIOD)


async def wait_answering(etcd: Etcd, timeout: float | None) -> None:
    """Until the member answers a linearizable read (None: however long it takes)."""
    deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await etcd.connect()
            await etcd.status()
            return
        except Exception:  # noqa: BLE001 - still starting, or no quorum yet
            if deadline is not None and asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1 if deadline is not None else 0.5)
