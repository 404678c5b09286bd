"""The sandbox's PayPal message-verification certificates, shaped like PayPal's own.

PayPal serves, at a transmission's `PAYPAL-CERT-URL`, a PEM bundle: its signing certificate first
(subject CN `messageverificationcerts.paypal.com`, or `messageverificationcerts.sandbox.paypal.com`
for PayPal's sandbox), then the CA certificate that issued it (DigiCert's). The sandbox does the same
with a CA of its own: `ca_key()` is derived from a seed published here, so the product can pin the
CA's certificate (workers/psp_wiring/paypal.py, trusted in dev and tests only) while every sandbox
state file issues its own RSA signing key under it.

Tests also ask for certificates PayPal would never serve (`VARIANTS`): expired, another subject,
self-signed, issued by a forger's CA that carries the sandbox CA's name, or valid for a few seconds
only; each signs with its own key and is served at its own URL.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

CA_SEED = b"refunds PSP sandbox: PayPal message verification CA, v1"
CA_NAME = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "XX"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Refunds PSP sandbox (not PayPal)"),
        x509.NameAttribute(NameOID.COMMON_NAME, "Refunds Sandbox PayPal CA"),
    ]
)
LEAF_COMMON_NAME = "messageverificationcerts.sandbox.paypal.com"  # what PayPal's sandbox signs with
_CA_NOT_BEFORE = datetime(2020, 1, 1, tzinfo=UTC)
_CA_NOT_AFTER = datetime(2050, 1, 1, tzinfo=UTC)
_LEAF_DAYS = 3650
SHORT_LIVED_SECONDS = 3

VARIANTS = frozenset({"expired", "other_subject", "self_signed", "forged_ca", "short_lived"})
"""Certificates a test may have a transmission signed with (`PayPalEngine.sign(certificate=...)`)."""


@dataclass(frozen=True)
class Issued:
    key: rsa.RSAPrivateKey
    chain_pem: bytes  # the signing certificate, then its issuer's (as PayPal serves them)


def ca_key() -> ec.EllipticCurvePrivateKey:
    """The sandbox CA's key, the same everywhere: anyone can read the seed, so only dev and tests may
    trust this CA."""
    secret = int.from_bytes(hashlib.sha256(CA_SEED).digest(), "big")
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # P-256's group order
    return ec.derive_private_key(secret % (order - 1) + 1, ec.SECP256R1())


def ca_certificate(key: ec.EllipticCurvePrivateKey | None = None) -> x509.Certificate:
    """The CA certificate for `key` (the sandbox CA's by default), under the sandbox CA's name."""
    key = key or ca_key()
    return (
        x509.CertificateBuilder()
        .subject_name(CA_NAME)
        .issuer_name(CA_NAME)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(_CA_NOT_BEFORE)
        .not_valid_after(_CA_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )


def _pem(*certificates: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def _subject(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "California"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "San Jose"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "PayPal, Inc. (sandbox stand-in)"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _leaf(
    key: rsa.RSAPrivateKey,
    *,
    common_name: str,
    not_before: datetime,
    not_after: datetime,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(_subject(common_name))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def issue_signing_certificate() -> Issued:
    """The sandbox's own signing key and its chain, as PayPal's sandbox serves them."""
    key, ca = _rsa_key(), ca_key()
    now = datetime.now(UTC)
    leaf = _leaf(
        key,
        common_name=LEAF_COMMON_NAME,
        not_before=now - timedelta(days=1),
        not_after=now + timedelta(days=_LEAF_DAYS),
        issuer=CA_NAME,
        issuer_key=ca,
    )
    return Issued(key, _pem(leaf, ca_certificate(ca)))


def issue_variant(variant: str) -> Issued:
    """A certificate PayPal would never sign with, for tests (see `VARIANTS`)."""
    if variant not in VARIANTS:
        raise ValueError(f"certificate must be one of {sorted(VARIANTS)}")
    key, ca = _rsa_key(), ca_key()
    now = datetime.now(UTC)
    common_name, not_before, not_after = LEAF_COMMON_NAME, now - timedelta(days=1), now + timedelta(days=30)
    issuer_name: x509.Name = CA_NAME
    issuer_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = ca
    chain_ca = ca_certificate(ca)
    match variant:
        case "expired":
            not_before, not_after = now - timedelta(days=30), now - timedelta(days=1)
        case "other_subject":
            common_name = "messageverificationcerts.example.com"
        case "short_lived":
            not_before, not_after = now - timedelta(minutes=1), now + timedelta(seconds=SHORT_LIVED_SECONDS)
        case "self_signed":  # PayPal's name, no chain: what a forger makes in a minute
            issuer_name, issuer_key = _subject(common_name), key
        case "forged_ca":
            # a forger's CA with the sandbox CA's name, served beside the leaf it issued
            forger = ec.generate_private_key(ec.SECP256R1())
            issuer_key, chain_ca = forger, ca_certificate(forger)
    leaf = _leaf(
        key,
        common_name=common_name,
        not_before=not_before,
        not_after=not_after,
        issuer=issuer_name,
        issuer_key=issuer_key,
    )
    return Issued(key, _pem(leaf) if variant == "self_signed" else _pem(leaf, chain_ca))


def load(key_pem: bytes, chain_pem: bytes) -> Issued:
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return Issued(key, chain_pem)


def key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def issued_by_the_sandbox_ca(chain_pem: bytes) -> bool:
    """Whether a stored chain's signing certificate was issued by this CA (older state files hold a
    self-signed one, which the product no longer trusts: it is issued again)."""
    try:
        leaf = x509.load_pem_x509_certificates(chain_pem)[0]
        leaf.verify_directly_issued_by(ca_certificate())
    except (ValueError, TypeError, IndexError, InvalidSignature):  # any doubt: issue it again
        return False
    return True
