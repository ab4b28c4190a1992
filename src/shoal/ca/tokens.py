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


def role_of(token: str, worker: str, manager: str) -> str | None:
    """The role a join token admits ("worker" | "manager"), None for no valid token."""
    if manager and same(token, manager):
        return "manager"
    if worker and same(token, worker):
        return "worker"
    return None


def matches_ca(token: str, root_ca_der: bytes) -> bool:
    """The token was made for this root CA (its digest is the token's first part)."""
    parsed = parse(token)
    return parsed is not None and same(ca_digest(root_ca_der), parsed[0])
