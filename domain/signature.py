"""The merchant request signature: `t=<unix seconds>,v1=<hex HMAC-SHA256("<t>.<body>")>`.

Several `v1=` values may be present during secret rotation; any configured secret may match any.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

REPLAY_TOLERANCE_SECONDS = 300
MAX_HEADER_LENGTH = 2048  # a timestamp and a handful of rotation signatures
_TIMESTAMP = re.compile(r"[0-9]{1,12}")  # ASCII digits only: `str.isdigit` also takes superscripts
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


class SignatureError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ParsedSignature:
    timestamp: int
    signatures: tuple[str, ...]


def compute(secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(secrets: list[str], timestamp: int, body: bytes) -> str:
    """The header value a merchant sends; one `v1` per secret."""
    parts = [f"t={timestamp}", *(f"v1={compute(s, timestamp, body)}" for s in secrets)]
    return ",".join(parts)


def parse(header: str | None) -> ParsedSignature:
    if not header:
        raise SignatureError("signature_missing", "Refund-Signature header is missing")
    if len(header) > MAX_HEADER_LENGTH:
        raise SignatureError("signature_invalid", "Refund-Signature is too long")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and _TIMESTAMP.fullmatch(value):
            timestamp = int(value)
        elif key == "v1" and _HEX_SHA256.fullmatch(value):
            signatures.append(value.lower())
    if timestamp is None or not signatures:
        raise SignatureError(
            "signature_invalid",
            "Refund-Signature must carry t=<unix seconds> and v1=<64 hex characters>",
        )
    return ParsedSignature(timestamp, tuple(signatures))


def verify(
    header: str | None,
    body: bytes,
    secrets: list[str],
    now: int,
    tolerance: int | None = REPLAY_TOLERANCE_SECONDS,
) -> ParsedSignature:
    """Raise SignatureError unless some secret signed this body; `tolerance=None` skips freshness."""
    parsed = parse(header)
    expected = [compute(secret, parsed.timestamp, body) for secret in secrets if secret]
    if not any(hmac.compare_digest(e, s) for e in expected for s in parsed.signatures):
        raise SignatureError("signature_invalid", "no signature matches a configured secret")
    if tolerance is not None and abs(now - parsed.timestamp) > tolerance:
        raise SignatureError("signature_expired", "signature timestamp is outside the 5 minute window")
    return parsed
