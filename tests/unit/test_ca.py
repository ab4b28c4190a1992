"""The cluster CA: root, node certificates, join tokens."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from shoal.ca.authority import identity, issue, new_csr, new_key, new_root_ca, tls_info
from shoal.ca.tokens import ca_digest, new_token, parse


def test_node_certificate_names_node_role_and_cluster() -> None:
    ca = new_root_ca()
    key, _ = new_key()
    pem = issue(ca, new_csr(key), "node1", "worker", "cluster1")
    cert = x509.load_pem_x509_certificate(pem)
    assert cert.issuer == ca.cert.subject
    ca.cert.public_key().verify(  # type: ignore[call-arg]
        cert.signature,
        cert.tbs_certificate_bytes,
        __import__("cryptography.hazmat.primitives.asymmetric.ec", fromlist=["ECDSA"]).ECDSA(
            cert.signature_hash_algorithm
        ),
    )
    assert identity(cert.public_bytes(serialization.Encoding.DER)) == (
        "node1",
        "swarm-worker",
        "cluster1",
    )


def test_tokens_pin_the_root_ca() -> None:
    ca = new_root_ca()
    token = new_token(ca.der)
    assert token.startswith("SWMTKN-1-")
    parsed = parse(token)
    assert parsed is not None and parsed[0] == ca_digest(ca.der)
    assert parse("SWMTKN-1-abc") is None
    assert new_token(ca.der) != token
    other = new_root_ca()
    assert ca_digest(other.der) != parsed[0]


def test_names_are_written_as_go_writes_them() -> None:
    """PrintableString where the characters allow (Go's `crypto/x509`, and so SwarmKit's):
    the CA's subject is Docker's `TLSInfo.CertIssuerSubject`."""
    ca = new_root_ca()
    info = ca.tls_info()
    assert info.cert_issuer_subject == "MBMxETAPBgNVBAMTCHN3YXJtLWNh"  # CN=swarm-ca
    assert info.trust_root == ca.cert_pem.decode()
    assert tls_info(ca.cert_pem) == info
    key, _ = new_key()
    cert = x509.load_pem_x509_certificate(issue(ca, new_csr(key), "n1", "manager", "c1"))
    assert {a.rfc4514_attribute_name: a._type.name for a in cert.subject} == {
        "O": "PrintableString", "OU": "PrintableString", "CN": "PrintableString"
    }  # fmt: skip
