"""A swarm backup (`shoal swarm backup FILE`, `shoal swarm restore FILE`): one JSON line of
what a restore needs to open the state, then the etcd snapshot as etcd wrote it.

The backup alone reveals nothing: the snapshot holds only sealed values of anything secret
(`store.md`), the swarm's data key is in the header wrapped with the backup key (the unlock
key when autolock is on, else a `SWMKEY-1-` key made for this backup and shown once), and the
root CA's key is sealed with the data key. Pure: the daemon does the I/O.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from shoal.api.errors import INVALID_UNLOCK_KEY, BadRequest, SealError, Unauthorized
from shoal.store.seal import Sealer, unwrap, wrap

FORMAT = "shoal-backup-1"
CA_NAME = "backup/ca"  # the AAD of the sealed CA


@dataclass
class Backup:
    swarm_id: str
    node_id: str  # the manager the backup was taken on: a restore takes its place
    autolock: bool  # the backup key is the swarm's unlock key
    wrapped_key: bytes  # the data key wrapped with the backup key
    sealed_ca: bytes  # {"cert", "key"} of the root CA, sealed with the data key
    snapshot: bytes  # etcd's Maintenance.Snapshot


def make(
    swarm_id: str,
    node_id: str,
    data_key: bytes,
    backup_key: str,
    autolock: bool,
    ca_cert: bytes,
    ca_key: bytes,
    snapshot: bytes,
) -> Backup:
    ca = json.dumps({"cert": ca_cert.decode(), "key": ca_key.decode()}).encode()
    return Backup(
        swarm_id, node_id, autolock, wrap(data_key, backup_key),
        Sealer(data_key).seal(ca, CA_NAME), snapshot,
    )  # fmt: skip


def dump(b: Backup) -> bytes:
    header = {
        "Format": FORMAT,
        "SwarmID": b.swarm_id,
        "NodeID": b.node_id,
        "Autolock": b.autolock,
        "DataKey": base64.b64encode(b.wrapped_key).decode(),
        "CA": base64.b64encode(b.sealed_ca).decode(),
    }
    return json.dumps(header).encode() + b"\n" + b.snapshot


def load(data: bytes) -> Backup:
    line, sep, snapshot = data.partition(b"\n")
    try:
        header = json.loads(line)
        if not sep or header.get("Format") != FORMAT:
            raise ValueError(header.get("Format"))
        return Backup(
            str(header["SwarmID"]), str(header["NodeID"]), bool(header["Autolock"]),
            base64.b64decode(header["DataKey"]), base64.b64decode(header["CA"]), snapshot,
        )  # fmt: skip
    except (ValueError, KeyError, TypeError, AttributeError):
        raise BadRequest(f"not a shoal swarm backup ({FORMAT})") from None


def open_backup(b: Backup, backup_key: str) -> tuple[bytes, bytes, bytes]:
    """The data key, the CA certificate and the CA key; Docker's `invalid key provided`
    (401) with a key that does not open it, `invalid key string` (400) with no key at all."""
    try:
        data_key = unwrap(b.wrapped_key, backup_key)
    except SealError:
        raise Unauthorized(INVALID_UNLOCK_KEY.replace("unlocked", "restored")) from None
    ca = json.loads(Sealer(data_key).open(b.sealed_ca, CA_NAME))
    return data_key, ca["cert"].encode(), ca["key"].encode()
