"""Join tokens: `SWMTKN-1-<root CA digest, base 36>-<secret, base 36>`, as SwarmKit makes them."""

from __future__ import annotations

import hashlib
import hmac
import secrets

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(data: bytes, width: int) -> str:
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 36)
        out.append(_ALPHABET[r])
    return "".join(reversed(out)).rjust(width, "0")


def ca_digest(root_ca_der: bytes) -> str:
    return _base36(hashlib.sha256(root_ca_der).digest(), 50)


def new_token(root_ca_der: bytes) -> str:
    return f"SWMTKN-1-{ca_digest(root_ca_der)}-{_base36(secrets.token_bytes(16), 25)}"


def parse(token: str) -> tuple[str, str] | None:
    """(CA digest, secret) of a well-formed token, else None."""
    parts = token.split("-")
    if len(parts) != 4 or parts[0] != "SWMTKN" or parts[1] != "1":
        return None
    return parts[2], parts[3]


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
