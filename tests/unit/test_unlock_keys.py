"""Autolock's keys: the unlock key's format (SwarmKit's), the data key wrapped with it, and a
manager's data key file as it follows the swarm's unlock key."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from shoal.api.errors import (
    INVALID_KEY_STRING,
    INVALID_UNLOCK_KEY,
    SWARM_LOCKED,
    InvalidParameter,
    SealError,
    SwarmLocked,
    Unauthorized,
)
from shoal.node.keys import LocalKeys
from shoal.store.seal import Sealer, new_unlock_key, parse_unlock_key, unwrap, wrap


def test_an_unlock_key_is_swarmkits_32_bytes_in_unpadded_base64() -> None:
    key = new_unlock_key()
    assert key.startswith("SWMKEY-1-")
    assert len(key) == len("SWMKEY-1-") + 43  # no "=" padding
    assert parse_unlock_key(key) == base64.b64decode(key[len("SWMKEY-1-") :] + "=")
    assert new_unlock_key() != key


@pytest.mark.parametrize(
    "text", ["", "garbage", "SWMKEY-2-abcd", "SWMKEY-1-ab==", "SWMKEY-1-a", "SWMKEY-1-@@@@"]
)
def test_a_malformed_unlock_key_is_dockers_invalid_key_string(text: str) -> None:
    with pytest.raises(InvalidParameter) as e:
        parse_unlock_key(text)
    assert str(e.value) == INVALID_KEY_STRING
    assert e.value.status == 400


def test_the_wrapped_data_key_opens_only_with_its_unlock_key() -> None:
    _, data_key = Sealer.new()
    key = new_unlock_key()
    wrapped = wrap(data_key, key)
    assert data_key not in wrapped
    assert base64.b64encode(data_key) not in wrapped
    assert unwrap(wrapped, key) == data_key
    with pytest.raises(SealError):
        unwrap(wrapped, new_unlock_key())
    for short in ("SWMKEY-1-", "SWMKEY-1-" + base64.b64encode(b"short").decode().rstrip("=")):
        with pytest.raises(SealError):  # well-formed (SwarmKit parses it), not 32 bytes
            unwrap(wrapped, short)


def test_a_managers_data_key_follows_the_unlock_key(tmp_path: Path) -> None:
    path = tmp_path / "data.key"
    _, data_key = Sealer.new()
    first = new_unlock_key()
    keys = LocalKeys(path)
    keys.create(data_key, first)
    assert keys.locked()
    assert data_key not in path.read_bytes()

    restarted = LocalKeys(path)
    with pytest.raises(SwarmLocked) as locked:
        restarted.open()
    assert str(locked.value) == SWARM_LOCKED
    assert locked.value.status == 503
    with pytest.raises(Unauthorized) as wrong:
        restarted.open(new_unlock_key())
    assert (str(wrong.value), wrong.value.status) == (INVALID_UNLOCK_KEY, 401)
    assert restarted.open(first) == data_key

    rotated = new_unlock_key()  # `unlock-key --rotate`: the old key no longer opens it
    assert restarted.follow(rotated)
    assert not restarted.follow(rotated)
    with pytest.raises(Unauthorized):
        LocalKeys(path).open(first)
    assert LocalKeys(path).open(rotated) == data_key

    assert restarted.follow(None)  # autolock off: the key itself again
    assert not LocalKeys(path).locked()
    assert path.read_bytes() == data_key
    assert LocalKeys(path).open() == data_key


def test_a_key_not_opened_is_never_rewritten(tmp_path: Path) -> None:
    keys = LocalKeys(tmp_path / "data.key")
    keys.create(Sealer.new()[1], new_unlock_key())
    before = keys.path.read_bytes()
    locked = LocalKeys(keys.path)
    assert not locked.follow(None)
    assert keys.path.read_bytes() == before
