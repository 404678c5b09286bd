"""Who decided a review: identities are proven, never asserted, and compared as people, not strings.

The service authenticates a reviewer by their token, then signs the decision (Ed25519) for one
workflow, one verdict, one reviewer and one reason. The workflow holds only the public keys and
checks the signature in workflow code (pure computation, deterministic on replay), so no channel
that skips the service (the Temporal UI, `temporal workflow update`) can put a name on an approval.
A proof replayed changes nothing: it names the same person, who counts once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import unicodedata

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

UI_PREFIX = "ui:"  # a decision sent from the Temporal UI without a proof
_PURPOSE = "refunds-review-decision/v1"
_MAX_PROOFS = 4  # signing keys kept at once while rotating


def person(identity: str) -> str:
    """The person behind an identity: `Carol@acme`, `ui:carol`, `UI:ui:carol` and ` carol ` are one.

    A merchant's reviewer acts as `name@merchant`; a request's `requested_by` may be a bare name
    or an address. Comparing the name before any `@`, case- and width-insensitively and without
    invisible characters, errs towards "the same person", which is the safe side for four eyes."""
    name = unicodedata.normalize("NFKC", identity).casefold()
    name = "".join(c for c in name if unicodedata.category(c) != "Cf")  # zero-width and the like
    name = name.strip()
    while name.startswith(UI_PREFIX):
        name = name.removeprefix(UI_PREFIX).strip()
    return name.partition("@")[0].strip()


# what a name typed into the Temporal UI may look like: nothing to hide a second identity in
UI_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def same_person(a: str, b: str) -> bool:
    return bool(person(a)) and person(a) == person(b)


def signing_key(secret: str) -> Ed25519PrivateKey:
    """The service's decision-signing key, derived from a configured secret of any length."""
    seed = hashlib.sha256(f"{_PURPOSE}:{secret}".encode()).digest()
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key(key: Ed25519PrivateKey) -> str:
    """What a workflow keeps to verify decisions: the raw public key, base64."""
    raw = key.public_key().public_bytes_raw()
    return base64.b64encode(raw).decode()


def _message(workflow_id: str, verdict: str, reviewer: str, reason: str) -> bytes:
    return json.dumps([_PURPOSE, workflow_id, verdict, reviewer, reason], separators=(",", ":")).encode()


def sign_decision(key: Ed25519PrivateKey, workflow_id: str, verdict: str, reviewer: str, reason: str) -> str:
    return sign_decision_bytes(key, _message(workflow_id, verdict, reviewer, reason))


def sign_decision_bytes(key: Ed25519PrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message)).decode()


def sign_with_each(
    keys: list[Ed25519PrivateKey], workflow_id: str, verdict: str, reviewer: str, reason: str
) -> str:
    """One proof per signing key, comma-separated: a refund started before a rotation knows only
    the older key, and any one proof it can verify is enough."""
    return ",".join(sign_decision(key, workflow_id, verdict, reviewer, reason) for key in keys)


def proven(
    public_keys: tuple[str, ...],
    proof: str | None,
    workflow_id: str,
    verdict: str,
    reviewer: str,
    reason: str,
) -> bool:
    """True when one of the keys signed exactly this decision (any of the comma-separated proofs)."""
    return verified(public_keys, proof, _message(workflow_id, verdict, reviewer, reason))


def verified(public_keys: tuple[str, ...], proof: str | None, message: bytes) -> bool:
    """True when one of the keys signed `message` (any of the comma-separated proofs)."""
    if not proof or not public_keys:
        return False
    for one_proof in proof.split(",")[:_MAX_PROOFS]:
        try:
            signature = base64.b64decode(one_proof, validate=True)
        except ValueError:
            continue
        for encoded in public_keys:
            try:
                Ed25519PublicKey.from_public_bytes(base64.b64decode(encoded)).verify(signature, message)
            except (InvalidSignature, ValueError):
                continue
            return True
    return False
