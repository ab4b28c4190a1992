"""The cluster's root certificate authority (self-signed, ECDSA P-256, like SwarmKit's)."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import string
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shoal.api.models import TLSInfo

ROOT_CN = "swarm-ca"
ROOT_VALIDITY = dt.timedelta(days=20 * 365)


@dataclass(frozen=True)
class RootCA:
    cert_pem: bytes
    key_pem: bytes

    @property
    def cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @property
    def der(self) -> bytes:
        return der_of(self.cert_pem)

    def tls_info(self) -> TLSInfo:
        return tls_info(self.cert_pem)


def tls_info(ca_pem: bytes) -> TLSInfo:
    """The trust root as Docker's `TLSInfo` shows it — the swarm's, and every node's (its
    certificate's issuer, the root CA): the PEM, and the CA's subject and public key, DER in
    base64."""
    cert = x509.load_pem_x509_certificate(ca_pem)
    key = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return TLSInfo(
        trust_root=ca_pem.decode(),
        cert_issuer_subject=base64.b64encode(cert.subject.public_bytes()).decode(),
        cert_issuer_public_key=base64.b64encode(key).decode(),
    )


_PRINTABLE = frozenset(string.ascii_letters + string.digits + " '()+,-./:=?")


def _name(*attributes: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    """A name as Go's `crypto/x509` writes one (and so SwarmKit's certificates): each value a
    PrintableString where its characters allow, else a UTF8String. It shows: the CA's
    subject is `TLSInfo.CertIssuerSubject` (`CN=swarm-ca`: `MBMxETAPBgNVBAMTCHN3YXJtLWNh`)."""
    return x509.Name(
        [
            x509.NameAttribute(
                oid,
                value,
                _type=_ASN1Type.PrintableString
                if set(value) <= _PRINTABLE
                else _ASN1Type.UTF8String,
            )
            for oid, value in attributes
        ]
    )


def der_of(cert_pem: bytes) -> bytes:
    """A PEM certificate in DER (raises ValueError if it is none)."""
    return x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)


def new_root_ca() -> RootCA:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name((NameOID.COMMON_NAME, ROOT_CN))
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + ROOT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return RootCA(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


NODE_VALIDITY = dt.timedelta(days=90)  # SwarmKit's default NodeCertExpiry
ROLE_OU = {"manager": "swarm-manager", "worker": "swarm-worker"}


def new_key() -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key, pem


def new_csr(key: ec.EllipticCurvePrivateKey) -> bytes:
    """A certificate request; the CA decides the names, so it carries none."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def issue(
    ca: RootCA,
    csr_pem: bytes,
    node_id: str,
    role: str,
    cluster_id: str,
    addresses: Sequence[str] = (),
) -> bytes:
    """A node certificate: CN the node ID, OU its role, O the cluster ID (as SwarmKit's). A
    manager's also names its `addresses` (IP SANs): etcd's peers check them."""
    csr = x509.load_pem_x509_csr(csr_pem)
    if not csr.is_signature_valid:
        raise ValueError("invalid certificate request signature")
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    subject = _name(
        (NameOID.ORGANIZATION_NAME, cluster_id),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, ROLE_OU[role]),
        (NameOID.COMMON_NAME, node_id),
    )
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + NODE_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(ROLE_OU[role]), x509.DNSName(node_id)]
                + [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def identity(cert_der: bytes) -> tuple[str, str, str]:
    """(node ID, role OU, cluster ID) of a node certificate."""
    cert = x509.load_der_x509_certificate(cert_der)

    def one(oid: x509.ObjectIdentifier) -> str:
        attrs = cert.subject.get_attributes_for_oid(oid)
        return str(attrs[0].value) if attrs else ""

    return (
        one(NameOID.COMMON_NAME),
        one(NameOID.ORGANIZATIONAL_UNIT_NAME),
        one(NameOID.ORGANIZATION_NAME),
    )
