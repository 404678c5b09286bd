"""A PSP outcome moves the books only with the service's proof that a verified PSP event said it.

The service verifies a PSP's webhook its way (each adapter's `parse_webhook`), then signs the update
it passes on (Ed25519, the review decisions' key) for the one workflow it addresses. A signal sent
around the service (`temporal workflow signal`, the Temporal UI) or a workflow started by hand carries
no proof, so it changes nothing. The proof binds every field that moves money; the message text is
the PSP's and moves nothing.
"""

from __future__ import annotations

import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from domain.contracts import PspRefundUpdate
from domain.identity import sign_decision_bytes, verified

_PURPOSE = "refunds-psp-outcome/v1"


def subject(merchant_id: str | None, about: str) -> str:
    """What else a proof is bound to besides its workflow: whose account reported it, and the refund
    it is about (our request id) or, for a dashboard refund, the payment it books against. A
    workflow's input names both, so a proof copied into another input proves nothing."""
    return json.dumps([merchant_id or "", about], separators=(",", ":"))


def _message(workflow_id: str, about: str, update: PspRefundUpdate) -> bytes:
    amount = update.amount
    fields = [
        _PURPOSE,
        workflow_id,
        about,
        update.psp_refund_id,
        update.status.value,
        update.failure_code.value if update.failure_code else "",
        update.psp_event_id or "",
        str(amount.value) if amount else "",
        amount.currency if amount else "",
    ]
    return json.dumps(fields, separators=(",", ":")).encode()


def sign_outcome(
    keys: list[Ed25519PrivateKey], workflow_id: str, about: str, update: PspRefundUpdate
) -> PspRefundUpdate:
    """The update with one proof per signing key (a workflow started before a rotation knows only the
    older one). `about` is `subject(...)`."""
    message = _message(workflow_id, about, update.model_copy(update={"proof": None}))
    proof = ",".join(sign_decision_bytes(key, message) for key in keys)
    return update.model_copy(update={"proof": proof})


def outcome_proven(
    public_keys: tuple[str, ...], workflow_id: str, about: str, update: PspRefundUpdate
) -> bool:
    return verified(public_keys, update.proof, _message(workflow_id, about, update))
