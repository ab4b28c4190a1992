"""Sensitive values are sealed before they reach etcd: AES-256-GCM with the swarm's data key.

Every manager keeps the data key in its state directory (`swarm/data.key`, root only); a
manager that joins later receives it over mutual TLS, and autolock will wrap it with the
unlock key. What is sealed: the root CA's private key, the join tokens' secrets, and later
secrets, configs and registry credentials. A sealed value names its key (its AAD), so a
ciphertext copied to another key does not open.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shoal.api.errors import SealError

PREFIX = b"shoal-sealed-v1:"
KEY_BYTES = 32
NONCE_BYTES = 12


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


def load_key(path: Path) -> bytes:
    return path.read_bytes()


def write_key(path: Path, key: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_bytes(key)
