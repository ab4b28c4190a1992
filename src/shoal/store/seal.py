"""Sensitive values are sealed before they reach etcd: AES-256-GCM with the swarm's data key.

Every manager keeps the data key in its state directory (`swarm/data.key`, root only); a
manager that joins later receives it over mutual TLS. With autolock on, that file holds the
data key wrapped (sealed) with the unlock key (`SWMKEY-1-…`, SwarmKit's format: 32 random
bytes in unpadded base64) instead, so a manager restarted without the key cannot open it.
What is sealed: the root CA's private key, the join tokens' secrets, and later
secrets, configs and registry credentials. A sealed value names its key (its AAD), so a
ciphertext copied to another key does not open.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shoal.api.errors import INVALID_KEY_STRING, InvalidParameter, SealError

PREFIX = b"shoal-sealed-v1:"
KEY_BYTES = 32
NONCE_BYTES = 12
UNLOCK_PREFIX = "SWMKEY-1-"
WRAPPED = "swarm/data.key"  # the AAD of a wrapped data key


class Sealer:
    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"a data key has {KEY_BYTES} bytes, not {len(key)}")
        self._aead = AESGCM(key)

    @classmethod
    def new(cls) -> tuple[Sealer, bytes]:
        key = AESGCM.generate_key(bit_length=8 * KEY_BYTES)
        return cls(key), key

    def seal(self, data: bytes, name: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return PREFIX + base64.b64encode(nonce + self._aead.encrypt(nonce, data, name.encode()))

    def open(self, sealed: bytes, name: str) -> bytes:
        if not sealed.startswith(PREFIX):
            raise SealError(f"{name}: not a sealed value")
        raw = base64.b64decode(sealed[len(PREFIX) :])
        try:
            return self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], name.encode())
        except InvalidTag:
            raise SealError(f"{name}: does not open with this swarm's data key") from None


def new_unlock_key() -> str:
    return UNLOCK_PREFIX + base64.b64encode(os.urandom(KEY_BYTES)).decode().rstrip("=")


def parse_unlock_key(text: str) -> bytes:
    """The key bytes of `SWMKEY-1-<unpadded base64>`, as SwarmKit parses it (any length)."""
    body = text.removeprefix(UNLOCK_PREFIX)
    if body == text or "=" in body or len(body) % 4 == 1:
        raise InvalidParameter(INVALID_KEY_STRING)
    try:
        return base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except ValueError:
        raise InvalidParameter(INVALID_KEY_STRING) from None


def wrap(data_key: bytes, unlock_key: str) -> bytes:
    """The data key sealed with an unlock key (the key-encrypting key)."""
    return Sealer(parse_unlock_key(unlock_key)).seal(data_key, WRAPPED)


def is_wrapped(stored: bytes) -> bool:
    return stored.startswith(PREFIX)


def unwrap(stored: bytes, unlock_key: str) -> bytes:
    """The data key out of what `wrap` made; SealError when this is not its unlock key."""
    kek = parse_unlock_key(unlock_key)
    if len(kek) != KEY_BYTES:
        raise SealError("not an unlock key of this swarm")
    return Sealer(kek).open(stored, WRAPPED)


def load_key(path: Path) -> bytes:
    """The data key file: the key itself, or the key wrapped (`is_wrapped`)."""
    return path.read_bytes()


def write_key(path: Path, stored: bytes) -> None:
    """Replace the data key file at once (a crash leaves the old one or the new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, stored)
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)
