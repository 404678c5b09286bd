"""A refund's validation runs again when the worker dies before the workflow task that validated and
reserved it completes (both are local activities, run again with the task): its own reservation is
no earlier refund of the payment, so the same request stays valid. The chaos run found it: refunds of
more than half their payment failed `refund_exceeds_capture` after a worker was killed."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio.testing import ActivityEnvironment

from activities.validation import ValidationActivities
from adapters.db import reservations
from domain.contracts import SignatureEvidence, ValidateInput, Validation
from domain.money import Money
from domain.requests import RefundRequest
from sandbox.adyen.control import AdyenSandboxControl
from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack
from tests.flows import known_adyen_payment
from tests.helpers import refund_body, signed_headers, unique


def _validation(stack: Stack) -> ValidationActivities:
    secrets = {merchant: profile.secrets for merchant, profile in stack.settings.merchant_profiles().items()}
    return ValidationActivities(stack.database, stack.services.psps, secrets, stack.settings.merchant_id)


def _input(request_id: str, payment: str, amount: int, provider: str) -> ValidateInput:
    raw = refund_body(request_id, payment, amount=amount, provider=provider)
    return ValidateInput(
        request=RefundRequest.model_validate_json(raw),
        evidence=SignatureEvidence(
            raw_body=raw.decode(),
            signature_header=signed_headers(raw)["Refund-Signature"],
            received_at=datetime.now(UTC),
        ),
    )


async def test_validation_run_again_after_its_reservation_does_not_count_it(
    stack: Stack, sandbox: SandboxControl, adyen: AdyenSandboxControl
) -> None:
    """5,000 captured, 4,000 asked: validated, reserved, then validated again (the task was lost)
    still finds nothing refunded before it, on Stripe and on Adyen (whose record is ours)."""
    for provider in ("stripe", "adyen"):
        if provider == "stripe":
            payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
        else:
            payment = await known_adyen_payment(stack, adyen, 5_000)
        request_id = unique(f"revalidated-{provider}")
        check = _input(request_id, payment, 4_000, provider)
        validation = _validation(stack)
        first: Validation = ActivityEnvironment().run(validation.validate, check)
        assert first.error is None and first.payment is not None, first.message
        with stack.database.transaction() as session:
            held = reservations.reserve(
                session, request_id, first.payment, Money(value=4_000, currency="EUR")
            )
        assert held.granted
        again: Validation = ActivityEnvironment().run(validation.validate, check)
        assert again.error is None and again.payment is not None, again.message
        assert again.payment.amount_refunded == first.payment.amount_refunded == 0, provider
