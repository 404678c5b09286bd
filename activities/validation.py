"""Validate: the request is what the merchant signed, and the PSP knows a refundable payment."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.audit import activity_event
from activities.errors import application_error, refuse_foreign_refund
from activities.merchant import Merchants
from adapters.db import audit, holds, refunds, reservations, velocity
from adapters.db.engine import Database
from adapters.psp.base import PspDirectory, PspError
from domain import signature
from domain.contracts import AuditEvent, ValidateInput, Validation
from domain.naming import Activity, refund_id
from domain.requests import AS_SENT, RefundRequest
from domain.status import ErrorCode, PaymentState

_REFUSED_STATES = {
    PaymentState.NOT_FOUND: ErrorCode.PAYMENT_NOT_FOUND,
    PaymentState.CANCELED: ErrorCode.PAYMENT_NOT_REFUNDABLE,
    PaymentState.OTHER: ErrorCode.PAYMENT_NOT_REFUNDABLE,
}


EXPLANATION = "explanation"  # the request's metadata key an API client (or its assistant) explains with


class ValidationActivities:
    def __init__(
        self,
        db: Database,
        psps: PspDirectory,
        secrets_by_merchant: dict[str, list[str]],
        default_merchant: str,
    ) -> None:
        self._db = db
        self._psps = psps
        self._secrets = secrets_by_merchant
        self._merchants = Merchants(default_merchant)

    @activity.defn(name=Activity.VALIDATE)
    def validate(self, input: ValidateInput) -> Validation:
        request = input.request
        refuse_foreign_refund(request.request_id)
        refused = self._check_evidence(input)
        if refused is not None:
            return self._conclude(input, refused)
        self._refuse_settled(request.request_id)

        try:
            lookup = self._psps.get(input.merchant_id, request.provider).lookup_payment(
                request.payment_reference
            )
        except PspError as err:
            if err.retryable:
                raise application_error(err) from err
            return self._conclude(input, Validation(error=err.code, message=err.message))
        payment = lookup.payment
        event = activity_event(
            f"validate:{input.round}:payment_lookup",
            "payment_looked_up",
            actor=f"psp:{request.provider.value}",
            reason_code=payment.state.value,
            psp_request_id=lookup.psp_request_id,
            psp_response_ms=lookup.psp_response_ms,
            detail={
                "currency": payment.currency,
                "captured": str(payment.amount_captured),
                "authorized": str(payment.amount_authorized),
                "refunded": str(payment.amount_refunded),
            },
        )
        code = _REFUSED_STATES.get(payment.state)
        if code is not None:
            message = (
                f"the PSP has no payment {request.payment_reference}"
                if payment.state is PaymentState.NOT_FOUND
                else f"payment {request.payment_reference} is {payment.state.value} at the PSP"
            )
            return self._conclude(input, Validation(error=code, message=message), event)
        with self._db.transaction() as session:
            dispute = holds.held(session, request.provider, request.payment_reference)
            # what is still refundable counts every refund of the payment: the PSP's own figure, or
            # our complete record where the PSP gives none (Adyen) or has not caught up yet; never
            # this refund's own reservation (validated again after it: a worker lost the task)
            ours = reservations.refunded(session, payment, excluding=request.request_id)
        if ours > payment.amount_refunded:
            payment = payment.model_copy(update={"amount_refunded": min(ours, payment.amount_captured)})
        if dispute is not None:
            message = f"payment {request.payment_reference} is on hold: {dispute}"
            return self._conclude(input, Validation(error=ErrorCode.PAYMENT_DISPUTED, message=message), event)
        return self._conclude(input, Validation(payment=payment), event)

    def _refuse_settled(self, request_id: str) -> None:
        """A refund whose books are settled (succeeded, failed, rejected, cancelled) is never
        processed again: its workflow started once more by hand under its own id, with the signed
        request copied out of its history, waits for ops instead of reaching review or the PSP."""
        with self._db.transaction() as session:
            settled = refunds.get(session, request_id)
            status = settled.status if settled is not None else None
        if status is not None:
            raise ApplicationError(
                f"refund {request_id} was settled ({status}) already: it is not processed again",
                type=ErrorCode.ALREADY_FINISHED.value,
                non_retryable=True,
            )

    def _check_evidence(self, input: ValidateInput) -> Validation | None:
        """Re-verify the signature here: a workflow started by hand with a forged input fails."""
        body = input.evidence.raw_body.encode()
        try:
            signature.verify(
                input.evidence.signature_header,
                body,
                self._secrets.get(self._merchants.named(input.merchant_id), []),
                int(time.time()),
                tolerance=None,
            )
            signed = RefundRequest.model_validate_json(body, context=AS_SENT)
        except (signature.SignatureError, ValidationError) as err:
            return Validation(error=ErrorCode.SIGNATURE_INVALID, message=str(err))
        # kept under the id marked with its merchant (bare when started before ids were per merchant)
        kept = signed.model_copy(update={"request_id": refund_id(input.merchant_id, signed.request_id)})
        if input.request not in (kept, signed):
            return Validation(
                error=ErrorCode.SIGNATURE_INVALID, message="request differs from the signed body"
            )
        return None

    @staticmethod
    def _asked(input: ValidateInput) -> list[AuditEvent]:
        """Who asked, when not the merchant's platform (an API client, a PSP's fraud warning): the
        trail's first row names them as its actor."""
        if input.requested_by is None or input.round != 1:
            return []
        return [activity_event("requested", "requested", actor=input.requested_by)]

    def _conclude(self, input: ValidateInput, validation: Validation, *events: AuditEvent) -> Validation:
        request = input.request
        detail = {"message": validation.message} if validation.message else {}
        if request.amount is not None:  # what the merchant's systems hear the refund was asked for
            detail |= {"amount": str(request.amount.value), "currency": request.amount.currency}
        explanation = (request.metadata or {}).get(EXPLANATION)
        if explanation:  # why whoever asked says the customer should be refunded, for the reviewer
            detail[EXPLANATION] = explanation
        verdict = activity_event(
            f"validate:{input.round}:verdict",
            "validated" if validation.error is None else "validation_failed",
            reason_code=validation.error.value if validation.error else "ok",
            detail=detail,
        )
        with self._db.transaction() as session:
            if validation.payment is not None:
                signals = velocity.record_and_measure(
                    session, request, datetime.now(UTC), validation.payment.card_fingerprint
                )
                validation = validation.model_copy(update={"signals": signals})
            rows = [*self._asked(input), *input.audit, *events, verdict]
            audit.record(session, request.request_id, request.payment_reference, rows)
        return validation
