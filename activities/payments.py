"""Refund at the PSP exactly once, and read a refund back for confirmation polling."""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.audit import activity_event
from activities.errors import application_error, refuse_foreign_refund
from adapters.db import audit, holds, refunds, service_keys
from adapters.db.engine import Database
from adapters.psp.base import PspDirectory, PspError
from domain.contracts import (
    AuditEvent,
    OutcomeCheck,
    OutcomeVerdict,
    PspRefundCall,
    PspRefundUpdate,
    RefundLookup,
    RefundResult,
)
from domain.naming import (
    REFUND_WORKFLOW,
    Activity,
    external_refund_workflow_id,
    external_request_id,
    late_failure_workflow_id,
    workflow_id,
)
from domain.outcome_proofs import outcome_proven, subject
from domain.status import ErrorCode, PspRefundStatus


def _record_psp_call(call: PspRefundCall, started_seconds: float, outcome: str) -> None:
    """PSP call latency and outcomes, on the worker's metrics endpoint (Temporal's metric meter)."""
    meter = activity.metric_meter().with_additional_attributes(
        {"provider": call.payment.provider.value, "outcome": outcome}
    )
    meter.create_histogram_timedelta("refunds_psp_call_latency", "PSP refund calls", "ms").record(
        timedelta(seconds=time.monotonic() - started_seconds)
    )
    meter.create_counter("refunds_psp_calls", "PSP refund calls by outcome code").add(1)


class PaymentActivities:
    def __init__(self, db: Database, psps: PspDirectory, own_keys: tuple[str, ...] = ()) -> None:
        self._db = db
        self._psps = psps
        self._own_keys = own_keys  # the signing keys this process knows itself (dev); else the database's

    @activity.defn(name=Activity.REFUND)
    def refund(self, call: PspRefundCall) -> RefundResult:
        """Search before any attempt whose predecessor's outcome is unknown; adopt what exists."""
        refuse_foreign_refund(call.request_id)
        attempt = activity.info().attempt
        key = f"psp_refund:g{call.key_generation}:a{attempt}"
        started = time.monotonic()
        try:
            adapter = self._psps.get(call.merchant_id, call.payment.provider)
            if attempt > 1 or call.key_generation > 1 or call.search_first:
                found = adapter.find_refund(call)
                if found is not None:
                    self._audit(call, _result_event(f"{key}:adopted", "psp_refund_adopted", found))
                    return found
            if call.search_first:
                self._refuse_if_disputed(call, key)
            result = adapter.refund(call)
        except PspError as err:
            _record_psp_call(call, started, err.code.value)
            activity.logger.warning(
                "psp %s error %s",
                call.method.value,
                err.code.value,
                extra={"psp_request_id": err.psp_request_id, "code": err.code.value},
            )
            self._audit(
                call,
                activity_event(
                    key,
                    "psp_refund_error",
                    actor=f"psp:{call.payment.provider.value}",
                    reason_code=err.code.value,
                    psp_request_id=err.psp_request_id,
                    detail={"message": err.message[:500], "retryable": str(err.retryable)},
                ),
            )
            raise application_error(err) from err
        self._audit(call, _result_event(key, f"psp_{call.method.value}_requested", result))
        _record_psp_call(call, started, result.failure_code.value if result.failure_code else "ok")
        activity.logger.info(
            "psp %s %s",
            call.method.value,
            result.status.value,
            extra={
                "psp_request_id": result.psp_request_id,
                "provider": call.payment.provider.value,
                "status": result.status.value,
            },
        )
        return result

    @activity.defn(name=Activity.CHECK_REFUND)
    def check_refund(self, lookup: RefundLookup) -> PspRefundUpdate:
        try:
            adapter = self._psps.get(lookup.merchant_id, lookup.provider)
            result = adapter.get_refund(lookup.psp_refund_id, lookup.request_id)
        except PspError as err:
            raise application_error(err) from err
        return PspRefundUpdate(
            psp_refund_id=lookup.psp_refund_id,
            status=result.status,
            failure_code=result.failure_code,
            failure_message=result.failure_message,
        )

    @activity.defn(name=Activity.CONFIRM_OUTCOME)
    def confirm_outcome(self, check: OutcomeCheck) -> OutcomeVerdict:
        """A PSP outcome, before it books or reverses anything: proven to come from a verified PSP
        event (the service's signature), then read back at the PSP where it can be. Unproven, or
        contradicted by the PSP, it is audited and changes nothing."""
        update = check.update
        if check.verify_proof and not self._proven(check):
            self._audit_outcome(check, "psp_update_unproven", "no proof that a verified PSP event said it")
            return OutcomeVerdict(proven=False)
        try:
            adapter = self._psps.get(check.merchant_id, check.provider)
            if not adapter.reads_refunds_back:
                return OutcomeVerdict(proven=True, update=update)
            result = adapter.get_refund(update.psp_refund_id, check.request_id or "")
        except PspError as err:
            if err.retryable:
                raise application_error(err) from err
            if err.code is ErrorCode.PSP_AUTH_FAILED:
                self._audit_outcome(check, "psp_read_back_failed", err.message)
                if check.request_id is None:
                    # a dashboard refund's payment is this account's only as the PSP reads it back:
                    # an account whose key reads nothing could otherwise book refunds of any payment.
                    # The PSP's event was taken (and will not come again): asked again, with backoff,
                    # until the key works, so a genuine refund is booked then
                    raise ApplicationError(
                        f"{err.message}: the PSP's refund is read back once this account's key works",
                        type=err.code.value,
                    ) from err
                # our own refund's key cannot read it (revoked, say): the proven, verified event,
                # which names this merchant's own refund, stands
                return OutcomeVerdict(proven=True, update=update)
            self._audit_outcome(check, "psp_update_unproven", f"the PSP does not confirm it: {err.message}")
            return OutcomeVerdict(proven=False, denied=True)
        if check.request_id is None and result.payment_reference not in (None, check.payment_reference):
            # a dashboard refund the PSP puts on another payment (its event relabelled by the account
            # that signed it): it takes nothing of the payment the event named
            why = f"the PSP's refund is of payment {result.payment_reference}, not {check.payment_reference}"
            self._audit_outcome(check, "psp_update_unproven", why)
            return OutcomeVerdict(proven=False, denied=True)
        read = update.model_copy(
            update={
                "status": result.status,
                "failure_code": result.failure_code
                if result.status is not PspRefundStatus.SUCCEEDED
                else None,
                "failure_message": result.failure_message,
                "amount": result.amount if result.amount.value else update.amount,
                "proof": None,
            }
        )
        if read.status is not update.status:
            self._audit_outcome(
                check,
                "psp_update_contradicted",
                f"the PSP says {read.status.value}, the event {update.status.value}",
            )
        return OutcomeVerdict(proven=True, update=read, read_back=True)

    def _proven(self, check: OutcomeCheck) -> bool:
        """The service's proof for this workflow, and a workflow the service would have started for
        this word: the proof binds the workflow id, the merchant and the refund or payment, not the
        PSP, so the PSP (whose adapter decides whether the word is read back) must be the one the
        id names (a dashboard refund's) or the one the refund was made at (ours)."""
        addressed = activity.info().workflow_id or ""
        with self._db.transaction() as session:
            keys = (*self._own_keys, *service_keys.known(session))
            settled = refunds.get(session, check.request_id) if check.request_id else None
        if not keys:
            # nothing to check against (the table emptied, a worker on another database): refusing
            # would drop the PSP's word for good (its event is remembered), so it waits, retried
            raise ApplicationError(
                "no service keys known: the service publishes them in service_keys at its start",
                type=ErrorCode.STEP_FAILED.value,
            )
        if check.request_id is None:
            expected = external_refund_workflow_id(
                check.provider.value, check.update.psp_refund_id, check.merchant_id
            )
        elif activity.info().workflow_type == REFUND_WORKFLOW:
            # the refund itself, asking about a word its own keys could not prove (the service's
            # signing key was rotated since the refund started)
            expected = workflow_id(check.request_id)
        else:
            expected = late_failure_workflow_id(
                check.request_id, check.update.psp_refund_id, check.merchant_id
            )
            if addressed == late_failure_workflow_id(check.request_id, check.update.psp_refund_id):
                expected = addressed  # a run the service started before late failures named their account
        if addressed != expected or (settled is not None and settled.provider != check.provider.value):
            return False
        about = subject(check.merchant_id, check.request_id or check.payment_reference)
        return outcome_proven(keys, addressed, about, check.update)

    def _audit_outcome(self, check: OutcomeCheck, step: str, why: str) -> None:
        update = check.update
        event = activity_event(
            _outcome_key(update),
            step,
            actor=f"psp:{check.provider.value}",
            reason_code=update.status.value,
            detail={"psp_refund_id": update.psp_refund_id, "why": why[:500]},
        )
        with self._db.transaction() as session:
            reference = check.request_id or external_request_id(
                check.provider.value, update.psp_refund_id, check.merchant_id
            )
            audit.record(session, reference, check.payment_reference, [event])

    def _refuse_if_disputed(self, call: PspRefundCall, key: str) -> None:
        """Ops retried a refund that waited for them (days, maybe) and the PSP made none: a dispute
        opened meanwhile stops it before its money moves, as at reservation, and it waits for ops."""
        payment = call.payment
        with self._db.transaction() as session:
            dispute = holds.held(session, payment.provider, payment.reference)
            if dispute is None:
                return
            event = activity_event(
                f"{key}:disputed",
                "psp_refund_withheld",
                reason_code=ErrorCode.PAYMENT_DISPUTED.value,
                detail={"hold": dispute},
            )
            audit.record(session, call.request_id, payment.reference, [event])
        message = f"payment {payment.reference} is on hold: {dispute}"
        raise ApplicationError(message, type=ErrorCode.PAYMENT_DISPUTED.value, non_retryable=True)

    def _audit(self, call: PspRefundCall, event: AuditEvent) -> None:
        with self._db.transaction() as session:
            audit.record(session, call.request_id, call.payment.reference, [event])


def _outcome_key(update: PspRefundUpdate) -> str:
    """One trail row per refused word, however often it is sent again."""
    words = f"{update.psp_refund_id}|{update.status.value}|{update.psp_event_id}|{update.proof}"
    return "outcome:" + hashlib.sha256(words.encode()).hexdigest()[:40]


def _result_event(key: str, step: str, result: RefundResult) -> AuditEvent:
    detail = {"status": result.status.value, "amount": str(result.amount.value)}
    if result.psp_refund_id:
        detail["psp_refund_id"] = result.psp_refund_id
    if result.failure_message:
        detail["message"] = result.failure_message[:500]
    return activity_event(
        key,
        step,
        actor="system",
        reason_code=result.failure_code.value if result.failure_code else result.status.value,
        psp_request_id=result.psp_request_id,
        psp_response_ms=result.psp_response_ms,
        detail=detail,
    )
