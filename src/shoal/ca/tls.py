"""TLS on the cluster port, with the node certificates in a node's `certs/` directory
(`ca.crt`, `node.crt`, `node.key`). A manager's `node.key` is encrypted (PKCS#8) with the
swarm's data key, so it is locked whenever the data key is (autolock)."""

from __future__ import annotations

import ssl
from pathlib import Path

from cryptography.hazmat.primitives import serialization


def encrypt_key(key_pem: bytes, password: bytes) -> bytes:
    """A private key's PEM, encrypted with `password` (which `server_context` then needs)."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password),
    )


def write_plain_key(certs: Path, password: bytes | None, path: Path) -> None:
    """The node key unencrypted at `path` (root only), for a program that cannot open an
    encrypted one (etcd's peer TLS); `path` is on a tmpfs (`--exec-root`)."""
    key = serialization.load_pem_private_key((certs / "node.key").read_bytes(), password)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def server_context(certs: Path, password: bytes | None = None) -> ssl.SSLContext:
    """A manager's side: its node certificate; client certificates checked against the
    cluster CA when presented (joining nodes have none yet). `password` opens an encrypted
    `node.key`."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(certs / "ca.crt"))
    ctx.load_cert_chain(str(certs / "node.crt"), str(certs / "node.key"), password=password)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def client_context(
    certs: Path | None = None, ca_pem: bytes | None = None, password: bytes | None = None
) -> ssl.SSLContext:
    """TLS to a manager: its certificate must chain to the cluster CA (names are not checked:
    managers are reached by address). With `certs`, our node certificate goes along; with
    `ca_pem` only, the CA is trusted but we present nothing (joining); with neither, nothing is
    checked (fetching the CA certificate, which the join token's digest then verifies).
    `password` opens a manager's encrypted `node.key`."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    if certs is not None:
        ctx.load_verify_locations(cafile=str(certs / "ca.crt"))
        ctx.load_cert_chain(str(certs / "node.crt"), str(certs / "node.key"), password=password)
    elif ca_pem is not None:
        ctx.load_verify_locations(cadata=ca_pem.decode())
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def write_certs(certs: Path, ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> None:
    """A node's certificates, the key readable by root only."""
    certs.mkdir(parents=True, exist_ok=True)
    certs.chmod(0o700)
    (certs / "ca.crt").write_bytes(ca_pem)
    (certs / "node.crt").write_bytes(cert_pem)
    key_file = certs / "node.key"
    key_file.touch(mode=0o600)
    key_file.write_bytes(key_pem)
