"""Whether a PayPal webhook's signing certificate is PayPal's: pure checks of the PEM bundle served at
its `PAYPAL-CERT-URL`, run on every transmission (a cached certificate too: it may have expired since).

What PayPal serves there is its message-verification certificate first, then the CA certificate(s)
that issued it. A signature is taken only from a certificate that
- names PayPal: its subject CN is `messageverificationcerts.paypal.com` for PayPal's live hosts,
  `messageverificationcerts.sandbox.paypal.com` for any other (PayPal's sandbox, and the product's own
  sandbox in dev, which issues that name); the host is one of REFUNDS_PAYPAL_CERT_URL_PREFIXES, so
  those prefixes stay the one setting that decides where certificates come from;
- is valid at the transmission's time and now (each certificate of the chain);
- chains, certificate by certificate (`verify_directly_issued_by`: the issuer's name and signature),
  through the served CA certificates to a root we pin, never to whatever root the bundle ends with.

The roots pinned for PayPal are DigiCert's, which issues PayPal's certificates: DigiCert Global Root
G2 (PayPal moved its certificates to the G2 chain from October 2024, per its notice to merchants),
DigiCert High Assurance EV Root CA (above the "DigiCert SHA2 Extended Validation Server CA" that
PayPal's own SDKs shipped as their trust anchor for these certificates) and DigiCert Global Root CA
(the G1 root the G2 move replaced), each until it expires (2031, 2038). PayPal's bundle brings the
intermediate CA; only the root is ours. Pinning DigiCert rather than a system bundle means no other
CA can issue a certificate we would take for PayPal's, whatever the host we run on trusts. Should
PayPal move to another CA, its webhooks are refused `certificate_untrusted` (PayPal retries them for
days) until a release pins it. Each root is checked against its SHA-256 fingerprint when this module
loads.

Dev and tests add the PSP sandbox's own CA (workers/psp_wiring/paypal.py): never in production.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from adapters.psp.base import WebhookRejected

LIVE_SUBJECT = "messageverificationcerts.paypal.com"
SANDBOX_SUBJECT = "messageverificationcerts.sandbox.paypal.com"
_LIVE_HOSTS = frozenset({"api.paypal.com", "api-m.paypal.com"})
MAX_CHAIN = 4  # the signing certificate and up to three CA certificates above it
UNTRUSTED = "certificate_untrusted"

DIGICERT_GLOBAL_ROOT_G2 = """\
-----BEGIN CERTIFICATE-----
MIIDjjCCAnagAwIBAgIQAzrx5qcRqaC7KGSxHQn65TANBgkqhkiG9w0BAQsFADBh
MQswCQYDVQQGEwJVUzEVMBMGA1UEChMMRGlnaUNlcnQgSW5jMRkwFwYDVQQLExB3
d3cuZGlnaWNlcnQuY29tMSAwHgYDVQQDExdEaWdpQ2VydCBHbG9iYWwgUm9vdCBH
MjAeFw0xMzA4MDExMjAwMDBaFw0zODAxMTUxMjAwMDBaMGExCzAJBgNVBAYTAlVT
MRUwEwYDVQQKEwxEaWdpQ2VydCBJbmMxGTAXBgNVBAsTEHd3dy5kaWdpY2VydC5j
b20xIDAeBgNVBAMTF0RpZ2lDZXJ0IEdsb2JhbCBSb290IEcyMIIBIjANBgkqhkiG
9w0BAQEFAAOCAQ8AMIIBCgKCAQEAuzfNNNx7a8myaJCtSnX/RrohCgiN9RlUyfuI
2/Ou8jqJkTx65qsGGmvPrC3oXgkkRLpimn7Wo6h+4FR1IAWsULecYxpsMNzaHxmx
1x7e/dfgy5SDN67sH0NO3Xss0r0upS/kqbitOtSZpLYl6ZtrAGCSYP9PIUkY92eQ
q2EGnI/yuum06ZIya7XzV+hdG82MHauVBJVJ8zUtluNJbd134/tJS7SsVQepj5Wz
tCO7TG1F8PapspUwtP1MVYwnSlcUfIKdzXOS0xZKBgyMUNGPHgm+F6HmIcr9g+UQ
vIOlCsRnKPZzFBQ9RnbDhxSJITRNrw9FDKZJobq7nMWxM4MphQIDAQABo0IwQDAP
BgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwIBhjAdBgNVHQ4EFgQUTiJUIBiV
5uNu5g/6+rkS7QYXjzkwDQYJKoZIhvcNAQELBQADggEBAGBnKJRvDkhj6zHd6mcY
1Yl9PMWLSn/pvtsrF9+wX3N3KjITOYFnQoQj8kVnNeyIv/iPsGEMNKSuIEyExtv4
NeF22d+mQrvHRAiGfzZ0JFrabA0UWTW98kndth/Jsw1HKj2ZL7tcu7XUIOGZX1NG
Fdtom/DzMNU+MeKNhJ7jitralj41E6Vf8PlwUHBHQRFXGU7Aj64GxJUTFy8bJZ91
8rGOmaFvE7FBcf6IKshPECBV1/MUReXgRPTqh5Uykw7+U0b6LJ3/iyK5S9kJRaTe
pLiaWN0bfVKfjllDiIGknibVb63dDcY3fe0Dkhvld1927jyNxF1WW6LZZm6zNTfl
MrY=
-----END CERTIFICATE-----
"""
DIGICERT_GLOBAL_ROOT_CA = """\
-----BEGIN CERTIFICATE-----
MIIDrzCCApegAwIBAgIQCDvgVpBCRrGhdWrJWZHHSjANBgkqhkiG9w0BAQUFADBh
MQswCQYDVQQGEwJVUzEVMBMGA1UEChMMRGlnaUNlcnQgSW5jMRkwFwYDVQQLExB3
d3cuZGlnaWNlcnQuY29tMSAwHgYDVQQDExdEaWdpQ2VydCBHbG9iYWwgUm9vdCBD
QTAeFw0wNjExMTAwMDAwMDBaFw0zMTExMTAwMDAwMDBaMGExCzAJBgNVBAYTAlVT
MRUwEwYDVQQKEwxEaWdpQ2VydCBJbmMxGTAXBgNVBAsTEHd3dy5kaWdpY2VydC5j
b20xIDAeBgNVBAMTF0RpZ2lDZXJ0IEdsb2JhbCBSb290IENBMIIBIjANBgkqhkiG
9w0BAQEFAAOCAQ8AMIIBCgKCAQEA4jvhEXLeqKTTo1eqUKKPC3eQyaKl7hLOllsB
CSDMAZOnTjC3U/dDxGkAV53ijSLdhwZAAIEJzs4bg7/fzTtxRuLWZscFs3YnFo97
nh6Vfe63SKMI2tavegw5BmV/Sl0fvBf4q77uKNd0f3p4mVmFaG5cIzJLv07A6Fpt
43C/dxC//AH2hdmoRBBYMql1GNXRor5H4idq9Joz+EkIYIvUX7Q6hL+hqkpMfT7P
T19sdl6gSzeRntwi5m3OFBqOasv+zbMUZBfHWymeMr/y7vrTC0LUq7dBMtoM1O/4
gdW7jVg/tRvoSSiicNoxBN33shbyTApOB6jtSj1etX+jkMOvJwIDAQABo2MwYTAO
BgNVHQ8BAf8EBAMCAYYwDwYDVR0TAQH/BAUwAwEB/zAdBgNVHQ4EFgQUA95QNVbR
TLtm8KPiGxvDl7I90VUwHwYDVR0jBBgwFoAUA95QNVbRTLtm8KPiGxvDl7I90VUw
DQYJKoZIhvcNAQEFBQADggEBAMucN6pIExIK+t1EnE9SsPTfrgT1eXkIoyQY/Esr
hMAtudXH/vTBH1jLuG2cenTnmCmrEbXjcKChzUyImZOMkXDiqw8cvpOp/2PV5Adg
06O/nVsJ8dWO41P0jmP6P6fbtGbfYmbW0W5BjfIttep3Sp+dWOIrWcBAI+0tKIJF
PnlUkiaY4IBIqDfv8NZ5YBberOgOzW6sRBc4L0na4UU+Krk2U886UAb3LujEV0ls
YSEY1QSteDwsOoBrp+uvFRTp2InBuThs4pFsiv9kuXclVzDAGySj4dzp30d8tbQk
CAUw7C29C79Fv1C5qfPrmAESrciIxpg0X40KPMbp1ZWVbd4=
-----END CERTIFICATE-----
"""
DIGICERT_HIGH_ASSURANCE_EV_ROOT_CA = """\
-----BEGIN CERTIFICATE-----
MIIDxTCCAq2gAwIBAgIQAqxcJmoLQJuPC3nyrkYldzANBgkqhkiG9w0BAQUFADBs
MQswCQYDVQQGEwJVUzEVMBMGA1UEChMMRGlnaUNlcnQgSW5jMRkwFwYDVQQLExB3
d3cuZGlnaWNlcnQuY29tMSswKQYDVQQDEyJEaWdpQ2VydCBIaWdoIEFzc3VyYW5j
ZSBFViBSb290IENBMB4XDTA2MTExMDAwMDAwMFoXDTMxMTExMDAwMDAwMFowbDEL
MAkGA1UEBhMCVVMxFTATBgNVBAoTDERpZ2lDZXJ0IEluYzEZMBcGA1UECxMQd3d3
LmRpZ2ljZXJ0LmNvbTErMCkGA1UEAxMiRGlnaUNlcnQgSGlnaCBBc3N1cmFuY2Ug
RVYgUm9vdCBDQTCCASIwDQYJKoZIhvcNAQEBBQADggEPADCCAQoCggEBAMbM5XPm
+9S75S0tMqbf5YE/yc0lSbZxKsPVlDRnogocsF9ppkCxxLeyj9CYpKlBWTrT3JTW
PNt0OKRKzE0lgvdKpVMSOO7zSW1xkX5jtqumX8OkhPhPYlG++MXs2ziS4wblCJEM
xChBVfvLWokVfnHoNb9Ncgk9vjo4UFt3MRuNs8ckRZqnrG0AFFoEt7oT61EKmEFB
Ik5lYYeBQVCmeVyJ3hlKV9Uu5l0cUyx+mM0aBhakaHPQNAQTXKFx01p8VdteZOE3
hzBWBOURtCmAEvF5OYiiAhF8J2a3iLd48soKqDirCmTCv2ZdlYTBoSUeh10aUAsg
EsxBu24LUTi4S8sCAwEAAaNjMGEwDgYDVR0PAQH/BAQDAgGGMA8GA1UdEwEB/wQF
MAMBAf8wHQYDVR0OBBYEFLE+w2kD+L9HAdSYJhoIAu9jZCvDMB8GA1UdIwQYMBaA
FLE+w2kD+L9HAdSYJhoIAu9jZCvDMA0GCSqGSIb3DQEBBQUAA4IBAQAcGgaX3Nec
nzyIZgYIVyHbIUf4KmeqvxgydkAQV8GK83rZEWWONfqe/EW1ntlMMUu4kehDLI6z
eM7b41N5cdblIZQB2lWHmiRk9opmzN6cN82oNLFpmyPInngiK3BD41VHMWEZ71jF
hS9OMPagMRYjyOfiZRYzy78aG6A9+MpeizGLYAiJLQwGXFK3xPkKmNEVX58Svnw2
Yzi9RKR/5CYrCsSXaQ3pjOLAEFe4yHYSkVXySGnYvCoCWw9E1CAx2/S6cCZdkGCe
vEsXCS+0yx5DaMkHJ8HSXPfqIbloEpw8nL+e/IBcm2PN7EeqJSdnoDfzAIJ9VNep
+OkuE6N36B9K
-----END CERTIFICATE-----
"""
_PINNED_FINGERPRINTS = {
    "cb3ccbb76031e5e0138f8dd39a23f9de47ffc35e43c1144cea27d46a5ab1cb5f": DIGICERT_GLOBAL_ROOT_G2,
    "4348a0e9444c78cb265e058d5e8944b4d84f9662bd26db257f8934a443c70161": DIGICERT_GLOBAL_ROOT_CA,
    "7431e5f4c3c1ce4690774f0b61e05440883ba9a01ed00ba6abd7806ed3b118cf": DIGICERT_HIGH_ASSURANCE_EV_ROOT_CA,
}


def _pinned_roots() -> tuple[x509.Certificate, ...]:
    roots = []
    for fingerprint, pem in _PINNED_FINGERPRINTS.items():
        root = x509.load_pem_x509_certificate(pem.encode())
        if hashlib.sha256(root.public_bytes(serialization.Encoding.DER)).hexdigest() != fingerprint:
            raise RuntimeError(f"the pinned root {root.subject.rfc4514_string()} is not the one expected")
        roots.append(root)
    return tuple(roots)


PAYPAL_ROOTS: tuple[x509.Certificate, ...] = _pinned_roots()


def expected_subject(cert_url: str) -> str:
    """The CN PayPal's certificate carries for this URL's host: live for PayPal's live API hosts,
    sandbox for every other host the prefixes allow."""
    host = (urlsplit(cert_url).hostname or "").lower()
    return LIVE_SUBJECT if host in _LIVE_HOSTS else SANDBOX_SUBJECT


def parse_bundle(pem: bytes) -> list[x509.Certificate]:
    """The certificates at a cert URL, the signing one first; raises ValueError when it holds none."""
    certificates = x509.load_pem_x509_certificates(pem)
    if not certificates:
        raise ValueError("no certificate")
    return certificates[:MAX_CHAIN]


def _refuse(why: str) -> WebhookRejected:
    return WebhookRejected(UNTRUSTED, f"the PayPal certificate {why}")


def _common_names(certificate: x509.Certificate) -> list[str]:
    return [str(a.value) for a in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]


def _valid_at(certificate: x509.Certificate, moments: Sequence[datetime]) -> bool:
    return all(
        certificate.not_valid_before_utc <= moment <= certificate.not_valid_after_utc for moment in moments
    )


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    return constraints.ca


def _same(a: x509.Certificate, b: x509.Certificate) -> bool:
    """One CA: the same name and key (a root served in the bundle need not be byte for byte ours)."""
    return a.subject == b.subject and a.public_key() == b.public_key()


def signing_key(
    chain: Sequence[x509.Certificate],
    cert_url: str,
    roots: Sequence[x509.Certificate],
    moments: Sequence[datetime],
) -> rsa.RSAPublicKey:
    """The signing certificate's key, once the chain proves it PayPal's at every one of `moments`
    (the transmission's time and now); else `certificate_untrusted`."""
    leaf = chain[0]
    if expected_subject(cert_url) not in _common_names(leaf) or len(_common_names(leaf)) != 1:
        raise _refuse(f"is not PayPal's: its subject is {leaf.subject.rfc4514_string()}")
    key = leaf.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise _refuse("has no RSA key")
    roots = [root for root in roots if _valid_at(root, moments)]  # a pinned root, until it expires
    current, above = leaf, list(chain[1:])
    for _ in range(MAX_CHAIN):
        if not _valid_at(current, moments):
            raise _refuse(
                f"{current.subject.rfc4514_string()} is not valid at the transmission's time or now"
            )
        if any(_same(current, root) for root in roots) and current is not leaf:
            return key  # the bundle served the pinned root itself
        if any(_issued_by(current, root) for root in roots):
            return key
        issuer = next((c for c in above if _is_ca(c) and _issued_by(current, c)), None)
        if issuer is None:
            raise _refuse(f"does not chain to a CA we trust ({current.issuer.rfc4514_string()})")
        above.remove(issuer)
        current = issuer
    raise _refuse("chain is too long")
