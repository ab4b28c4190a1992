"""The backup file (`node/backup.py`) and the etcd member's `--force-new-cluster` start."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from shoal.api.errors import BadRequest, Unauthorized
from shoal.etcd.member import MemberConfig, _removed
from shoal.node import backup
from shoal.store.seal import Sealer, new_unlock_key

CA_KEY = b"-----BEGIN PRIVATE KEY-----\nthe CA key\n-----END PRIVATE KEY-----\n"


def made(key: str, autolock: bool = False) -> tuple[bytes, bytes]:
    _, data_key = Sealer.new()
    b = backup.make("swarm1", "node1", data_key, key, autolock, b"CERT", CA_KEY, b"SNAPSHOT")
    return backup.dump(b), data_key


def test_round_trip() -> None:
    key = new_unlock_key()
    data, data_key = made(key, autolock=True)
    b = backup.load(data)
    assert (b.swarm_id, b.node_id, b.autolock, b.snapshot) == ("swarm1", "node1", True,
                                                                b"SNAPSHOT")  # fmt: skip
    assert backup.open_backup(b, key) == (data_key, b"CERT", CA_KEY)


def test_the_file_reveals_neither_the_data_key_nor_the_ca_key() -> None:
    data, data_key = made(new_unlock_key())
    for secret in (data_key, CA_KEY, b"the CA key"):
        for form in (secret, base64.b64encode(secret), secret.hex().encode()):
            assert form not in data


def test_another_key_does_not_open_it() -> None:
    data, _ = made(new_unlock_key())
    with pytest.raises(Unauthorized, match="invalid key provided"):
        backup.open_backup(backup.load(data), new_unlock_key())


@pytest.mark.parametrize("data", [b"", b"{}\nx", b"not json\nx", b'{"Format": "shoal-backup-1"}'])
def test_not_a_backup(data: bytes) -> None:
    with pytest.raises(BadRequest, match="not a shoal swarm backup"):
        backup.load(data)


def test_force_new_cluster_flag() -> None:
    config = MemberConfig(
        Path("/d"), "n1", cluster={"n1": "https://a:2380", "n2": "https://b:2380"}
    )
    assert "--force-new-cluster" not in config.argv()
    config.force_new_cluster = True
    assert "--force-new-cluster" in config.argv()


def test_removed_member_seen_in_its_log(tmp_path: Path) -> None:
    log = tmp_path / "etcd.log"
    assert not _removed(log)
    log.write_bytes(b"x" * 20000 + b"the member has been permanently removed from the cluster\n")
    assert _removed(log)
    log.write_bytes(b"the member has been permanently removed from the cluster\n" + b"y" * 20000)
    assert not _removed(log)  # only its last words count
