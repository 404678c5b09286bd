"""Early fraud warnings (Stripe Radar, Adyen NOTIFICATION_OF_FRAUD) become refunds before they become
chargebacks, as the merchant's policy says (`domain/fraud_warnings.py`).

A refund for a warning is an ordinary refund: a request the service builds and signs with the
merchant's own inbound secret (the workflow re-verifies it like any other), under a request id made
from the warning's id, so a warning delivered again finds its workflow and never refunds twice.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool

from adapters.db import audit, holds
from domain import signature
from domain.contracts import AuditEvent, PaymentRecord, SignatureEvidence
from domain.fraud_warnings import (
    AUDIT_STEP,
    REASON_CODE,
    Action,
    Decision,
    FraudWarning,
    decide,
    request_id_for,
)
from domain.money import Money
from domain.naming import refund_id
from domain.requests import AS_SENT, RefundRequest
from domain.status import Provider
from workers.service.deps import Services
from workers.service.metrics import FRAUD_WARNINGS
from workers.service.refund_requests import settled_row, start_refund

_COUNTED = {Action.REFUND: "refunded", Action.REVIEW: "held", Action.RECORD: "recorded"}


async def take_warning(
    services: Services,
    provider: Provider,
    warning: FraudWarning,
    event_id: str,
    merchant_id: str | None,
    payment: PaymentRecord,
) -> int:
    """Decide a verified warning (seen for the first time) on a payment of the reporting account (as
    it reads now) per the merchant's policy; start its refund unless the policy only records it.
    Returns how many workflows were started (0 or 1)."""
    merchant = merchant_id or services.settings.merchant_id
    owner = services.owner(merchant)
    kept_id = refund_id(owner, request_id_for(provider.value, warning.warning_id, owner))
    refundable = _refundable(warning, payment)
    disputed = await run_in_threadpool(_disputed, services, provider, warning.payment_reference)
    decision = decide(services.policies[merchant], warning, refundable, disputed)
    await run_in_threadpool(_audit, services, kept_id, warning, event_id, decision, refundable)
    FRAUD_WARNINGS.labels(source=provider.value, outcome="received").inc()
    FRAUD_WARNINGS.labels(source=provider.value, outcome=_COUNTED[decision.action]).inc()
    if decision.action is Action.RECORD:
        return 0
    return int(await _start(services, provider, warning, decision, merchant, owner))


def _refundable(warning: FraudWarning, payment: PaymentRecord) -> Money | None:
    """What is left to refund on the payment, as the PSP (or, for Adyen, its notifications) says;
    the warning's own amount when the PSP's record cannot say."""
    if not payment.currency or not (payment.amount_captured or payment.amount_refunded):
        return warning.amount
    return Money(value=payment.refundable, currency=payment.currency)


def _disputed(services: Services, provider: Provider, reference: str) -> bool:
    with services.db.transaction() as session:
        return holds.held(session, provider, reference) is not None


def _audit(
    services: Services,
    kept_id: str,
    warning: FraudWarning,
    event_id: str,
    decision: Decision,
    refundable: Money | None,
) -> None:
    """The warning and what policy made of it, on the trail of the refund it starts (or would)."""
    event = AuditEvent(
        key=f"efw:{event_id}"[:120],
        step=AUDIT_STEP,
        actor=warning.actor,
        reason_code=decision.action.value,
        detail={
            "warning": warning.warning_id,
            "fraud_type": warning.fraud_type,
            "actionable": str(warning.actionable).lower(),
            "payment_reference": warning.payment_reference,
            "refundable": str(refundable) if refundable is not None else "unknown",
            "decision": decision.why,
        },
        at=datetime.now(UTC),
    )
    with services.db.transaction() as session:
        audit.record(session, kept_id, warning.payment_reference, [event])


def _request(provider: Provider, warning: FraudWarning, request_id: str) -> bytes:
    """The body a merchant would send for this refund: everything still refundable."""
    body = RefundRequest(
        request_id=request_id,
        provider=provider,
        payment_reference=warning.payment_reference,
        reason_code=REASON_CODE,
        order_id=warning.payment_reference,
        metadata={
            "early_fraud_warning": warning.warning_id,
            "fraud_type": warning.fraud_type or "unknown",
            "requested_by": warning.actor,
        },
    )
    return body.model_dump_json(exclude_none=True).encode()


async def _start(
    services: Services,
    provider: Provider,
    warning: FraudWarning,
    decision: Decision,
    merchant: str,
    owner: str | None,
) -> bool:
    """Start the refund; False when its workflow exists (a warning delivered again, or updated) or
    the lasting record already settled it."""
    raw = _request(provider, warning, request_id_for(provider.value, warning.warning_id, owner))
    sent = RefundRequest.model_validate_json(raw, context=AS_SENT)
    kept = sent.model_copy(update={"request_id": refund_id(owner, sent.request_id)})
    if await run_in_threadpool(settled_row, services, kept.request_id) is not None:
        return False
    profile = services.merchants[merchant]
    evidence = SignatureEvidence(
        raw_body=raw.decode(),
        signature_header=signature.sign(profile.secrets[:1], int(time.time()), raw),
        received_at=datetime.now(UTC),
    )
    return await start_refund(
        services,
        kept,
        evidence,
        kept.digest_for(owner),
        merchant,
        who=warning.actor,
        held_for=decision.hold(),
        doing="taking this early fraud warning",
    )
