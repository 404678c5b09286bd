"""RefundWorkflow's main branches, fast: Temporal's time-skipping test server and activities stubbed by
name (domain/naming.py `Activity`), so no database, no PSP sandbox and no real clock. The workflow runs
in the worker's sandbox, as in production.

Each test drives one branch of the flow and checks what the workflow asked of the outside world (the
activities' inputs, their audit rows among them) and how it ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel
from temporalio import activity
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain import identity
from domain.contracts import (
    AuditEvent,
    AuditRows,
    FinishInput,
    LateFailureInput,
    NotifyInput,
    OutcomeCheck,
    OutcomeVerdict,
    PaymentRecord,
    PspRefundCall,
    PspRefundUpdate,
    RefundLookup,
    RefundPolicy,
    RefundResult,
    RefundState,
    RefundWorkflowInput,
    Reservation,
    ReserveInput,
    RestockInput,
    RestockResult,
    RetryInput,
    ReviewInput,
    RiskReason,
    SignatureEvidence,
    ValidateInput,
    Validation,
)
from domain.money import Money
from domain.naming import SEARCH_ATTRIBUTES, Activity, psp_task_queue
from domain.outcome_proofs import outcome_proven, sign_outcome, subject
from domain.requests import RefundRequest
from domain.returns import GoodsReceipt, ReceiptLine, ReturnsStatus
from domain.status import ErrorCode, PaymentState, Provider, PspRefundStatus, RefundStatus
from tests.helpers import time_skipping_temporal
from workers.worker import sandboxed_runner
from workflows.refund import RefundWorkflow

SIGNING_KEY = identity.signing_key("branches")
POLICY = RefundPolicy(version="branches-1", review_threshold_major=1_000)  # 1,000 EUR and up: review
SMALL, LARGE = 2_000, 150_000  # minor units of EUR
PAYMENT = PaymentRecord(
    provider=Provider.STRIPE,
    reference="pi_branches",
    state=PaymentState.CAPTURED,
    currency="EUR",
    amount_captured=500_000,
)


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async with time_skipping_temporal() as env:
        yield env


class Stubs:
    """Every activity the refund calls, registered by name, answering as a test sets them up; the
    inputs are kept in order. Unless told otherwise, every step succeeds at once."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, BaseModel]] = []
        self.reserve_failures: list[ApplicationError] = []  # raised first, one per call
        self.psp_answers: list[RefundResult | ApplicationError] = []  # answered first, one per call
        self.psp_reads: list[PspRefundStatus] = []  # what the PSP says when an outcome is read back
        self.published = (identity.public_key(SIGNING_KEY),)  # the service's keys in service_keys

    def called(self, name: str) -> list[Any]:
        return [argument for called, argument in self.calls if called == name]

    def audit(self) -> list[AuditEvent]:
        """The audit rows the workflow handed its activities to write."""
        return [event for _, argument in self.calls for event in getattr(argument, "audit", [])]

    def steps(self) -> list[str]:
        return [event.step for event in self.audit()]

    def audited(self, step: str) -> AuditEvent:
        [event] = [event for event in self.audit() if event.step == step]
        return event

    @activity.defn(name=Activity.VALIDATE)
    async def validate(self, check: ValidateInput) -> Validation:
        self.calls.append((Activity.VALIDATE, check))
        return Validation(payment=PAYMENT)

    @activity.defn(name=Activity.RESERVE)
    async def reserve(self, hold: ReserveInput) -> Reservation:
        self.calls.append((Activity.RESERVE, hold))
        if self.reserve_failures:
            raise self.reserve_failures.pop(0)
        return Reservation(granted=True, available=PAYMENT.refundable - hold.amount.value)

    @activity.defn(name=Activity.REFUND)
    async def refund(self, call: PspRefundCall) -> RefundResult:
        self.calls.append((Activity.REFUND, call))
        if self.psp_answers:
            answer = self.psp_answers.pop(0)
            if isinstance(answer, ApplicationError):
                raise answer
            return answer
        return RefundResult(psp_refund_id="re_1", status=PspRefundStatus.SUCCEEDED, amount=call.amount)

    @activity.defn(name=Activity.CHECK_REFUND)
    async def check_refund(self, lookup: RefundLookup) -> PspRefundUpdate:
        self.calls.append((Activity.CHECK_REFUND, lookup))
        return PspRefundUpdate(psp_refund_id=lookup.psp_refund_id, status=PspRefundStatus.PENDING)

    @activity.defn(name=Activity.CONFIRM_OUTCOME)
    async def confirm_outcome(self, check: OutcomeCheck) -> OutcomeVerdict:
        """The proof against the keys the service published (`published`) when asked, then the PSP
        read back: as told (`psp_reads`), else it agrees with the event."""
        self.calls.append((Activity.CONFIRM_OUTCOME, check))
        if check.verify_proof:
            assert check.request_id is not None
            about = subject(check.merchant_id, check.request_id)
            if not outcome_proven(self.published, f"refund-{check.request_id}", about, check.update):
                return OutcomeVerdict(proven=False)  # the activity writes it to the trail
        status = self.psp_reads.pop(0) if self.psp_reads else check.update.status
        read = check.update.model_copy(update={"status": status, "proof": None})
        return OutcomeVerdict(proven=True, update=read, read_back=True)

    def refused(self) -> list[OutcomeCheck]:
        """Words the refund's own keys did not prove, asked about at the activity."""
        return [check for check in self.called(Activity.CONFIRM_OUTCOME) if check.verify_proof]

    @activity.defn(name=Activity.FINISH)
    async def finish(self, books: FinishInput) -> None:
        self.calls.append((Activity.FINISH, books))

    @activity.defn(name=Activity.REVERSE)
    async def reverse(self, late: LateFailureInput) -> bool:
        self.calls.append((Activity.REVERSE, late))
        return True

    @activity.defn(name=Activity.RESTOCK)
    async def restock(self, restock: RestockInput) -> RestockResult:
        self.calls.append((Activity.RESTOCK, restock))
        lines = restock.receipt.lines if restock.receipt else []
        return RestockResult(restocked={line.sku: line.sellable for line in lines})

    @activity.defn(name=Activity.NOTIFY)
    async def notify(self, notice: NotifyInput) -> None:
        self.calls.append((Activity.NOTIFY, notice))

    @activity.defn(name=Activity.RECORD_AUDIT)
    async def record_audit(self, rows: AuditRows) -> None:
        self.calls.append((Activity.RECORD_AUDIT, rows))


def refund_input(amount: int, policy: RefundPolicy = POLICY, **request: Any) -> RefundWorkflowInput:
    request_id = f"branch-{uuid.uuid4().hex[:12]}"
    fields = {
        "request_id": request_id,
        "provider": "stripe",
        "payment_reference": PAYMENT.reference,
        "amount": {"value": amount, "currency": "EUR"},
        "reason_code": "damaged",
        "order_id": f"order-{request_id}",
        "customer_id": f"cus-{request_id}",
        **request,
    }
    return RefundWorkflowInput(
        request=RefundRequest.model_validate(fields),
        evidence=SignatureEvidence(raw_body="{}", signature_header="stub", received_at=datetime.now(UTC)),
        policy=policy,
        review_keys=(identity.public_key(SIGNING_KEY),),
    )


@asynccontextmanager
async def running(
    env: WorkflowEnvironment, stubs: Stubs, input: RefundWorkflowInput, workflow: type[Any] = RefundWorkflow
) -> AsyncIterator[WorkflowHandle[Any, RefundState]]:
    """The refund started on a worker of its own, with its PSP's queue served by another."""
    queue = f"branches-{uuid.uuid4().hex[:8]}"
    main = Worker(
        env.client,
        task_queue=queue,
        workflows=[workflow],
        activities=[
            stubs.validate,
            stubs.reserve,
            stubs.finish,
            stubs.reverse,
            stubs.restock,
            stubs.notify,
            stubs.record_audit,
        ],
        workflow_runner=sandboxed_runner(),
    )
    psp = Worker(
        env.client,
        task_queue=psp_task_queue(queue, input.request.provider.value, input.merchant_id),
        activities=[stubs.refund, stubs.check_refund, stubs.confirm_outcome],
    )
    async with main, psp:
        yield await env.client.start_workflow(
            RefundWorkflow.run, input, id=f"refund-{input.request.request_id}", task_queue=queue
        )


async def reaches(handle: WorkflowHandle[Any, RefundState], status: RefundStatus) -> RefundState:
    """The refund's state once it shows `status` (time stands still while the test waits)."""
    for _ in range(200):
        state = await handle.query(RefundWorkflow.state)
        if state.status is status:
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"still {state.status.value}, never {status.value}")


def decision(
    handle: WorkflowHandle[Any, RefundState], verdict: str, reviewer: str, reason: str = ""
) -> ReviewInput:
    """A decision as the service signs it for a reviewer it authenticated."""
    proof = identity.sign_decision(SIGNING_KEY, handle.id, verdict, reviewer, reason)
    return ReviewInput(reviewer=reviewer, reason=reason, proof=proof)


async def test_a_small_refund_is_approved_automatically_and_succeeds(env: WorkflowEnvironment) -> None:
    stubs = Stubs()
    async with running(env, stubs, refund_input(SMALL)) as handle:
        final = await handle.result()

    assert final.status is RefundStatus.SUCCEEDED and final.review is None
    assert [name for name, _ in stubs.calls] == [
        Activity.VALIDATE,
        Activity.RESERVE,
        Activity.REFUND,
        Activity.FINISH,
    ]
    [books] = stubs.called(Activity.FINISH)
    assert (books.status, books.psp_refund_id, books.amount.value) == (RefundStatus.SUCCEEDED, "re_1", SMALL)
    assert stubs.audited("risk_scored").reason_code == "auto_approved"
    [call] = stubs.called(Activity.REFUND)
    assert (call.key_generation, call.search_first) == (1, False)
    described = await handle.describe()
    assert described.typed_search_attributes.get(SEARCH_ATTRIBUTES[0]) == "succeeded"


async def test_a_small_refund_held_at_intake_waits_for_a_human_and_names_who_asked(
    env: WorkflowEnvironment,
) -> None:
    """A client over its budget, or a fraud warning above the policy's amount: whatever the score."""
    hold = RiskReason(code="client_budget", points=0, detail="support-bot has 12.00 EUR left today")
    held = refund_input(SMALL).model_copy(update={"requested_by": "client:support-bot", "held_for": (hold,)})
    async with running(env, stubs := Stubs(), held) as handle:
        waiting = await reaches(handle, RefundStatus.AWAITING_REVIEW)
        await handle.execute_update(RefundWorkflow.reject, decision(handle, "reject", "alice", "over budget"))
        final = await handle.result()

    assert waiting.requested_by == "client:support-bot"
    assert waiting.risk is not None and waiting.risk.requires_review
    assert waiting.risk.reasons[-1] == hold
    assert stubs.audited("risk_scored").detail["reasons"].endswith("client_budget")
    assert final.status is RefundStatus.REJECTED and stubs.called(Activity.REFUND) == []


async def test_a_reviewed_refund_goes_ahead_once_a_proven_reviewer_approves(env: WorkflowEnvironment) -> None:
    stubs = Stubs()
    async with running(env, stubs, refund_input(LARGE)) as handle:
        waiting = await reaches(handle, RefundStatus.AWAITING_REVIEW)
        assert waiting.risk is not None and waiting.risk.requires_review
        assert stubs.called(Activity.RESERVE) == []  # nothing is held before the decision
        with pytest.raises(WorkflowUpdateFailedError):  # a typed name without the service's proof
            await handle.execute_update(RefundWorkflow.approve, ReviewInput(reviewer="alice"))
        with pytest.raises(WorkflowUpdateFailedError):  # nothing waits for ops to retry it
            await handle.execute_update(RefundWorkflow.retry, RetryInput(operator="ops-1"))
        await handle.execute_update(RefundWorkflow.approve, decision(handle, "approve", "alice"))
        final = await handle.result()

    assert final.status is RefundStatus.SUCCEEDED
    assert [a.reviewer for a in final.approvals] == ["alice"]
    decided = stubs.audited("review_decided")
    assert (decided.actor, decided.reason_code) == ("reviewer:alice", "approved")
    assert len(stubs.called(Activity.REFUND)) == 1


async def test_a_rejected_review_ends_the_refund_without_touching_the_psp(env: WorkflowEnvironment) -> None:
    stubs = Stubs()
    async with running(env, stubs, refund_input(LARGE)) as handle:
        await reaches(handle, RefundStatus.AWAITING_REVIEW)
        with pytest.raises(WorkflowUpdateFailedError):  # a rejection needs a reason
            await handle.execute_update(RefundWorkflow.reject, decision(handle, "reject", "alice"))
        await handle.execute_update(RefundWorkflow.reject, decision(handle, "reject", "alice", "looks wrong"))
        final = await handle.result()

    assert (final.status, final.failure_code) == (RefundStatus.REJECTED, ErrorCode.REVIEW_REJECTED)
    # the trail up to the review is written as the review starts, not when it ends
    assert [name for name, _ in stubs.calls] == [Activity.VALIDATE, Activity.RECORD_AUDIT, Activity.FINISH]
    [written] = stubs.called(Activity.RECORD_AUDIT)
    assert "risk_scored" in [row.step for row in written.audit]
    assert written.audit[-1].status_after is RefundStatus.AWAITING_REVIEW
    [books] = stubs.called(Activity.FINISH)
    assert (books.status, books.failure_code) == (RefundStatus.REJECTED, ErrorCode.REVIEW_REJECTED)
    decided = stubs.audited("review_decided")
    assert (decided.actor, decided.reason_code) == ("reviewer:alice", "rejected")


async def test_an_undecided_review_is_escalated_then_decided_by_the_policy(env: WorkflowEnvironment) -> None:
    stubs = Stubs()
    async with running(env, stubs, refund_input(LARGE)) as handle:
        await reaches(handle, RefundStatus.AWAITING_REVIEW)
        final = await handle.result()  # time skips past both deadlines

    assert (final.status, final.failure_code) == (RefundStatus.REJECTED, ErrorCode.REVIEW_TIMEOUT)
    assert final.review_escalated
    [notice] = stubs.called(Activity.NOTIFY)
    assert notice.event == "review_escalated" and "24 hours" in notice.message
    decided = stubs.audited("review_decided")
    assert (decided.actor, decided.reason_code) == ("policy:branches-1", "rejected")
    assert stubs.steps().index("review_escalated") < stubs.steps().index("review_decided")


@pytest.mark.parametrize("how", ["refused", "declined"])
async def test_the_psps_refusal_fails_the_refund_and_releases_the_reservation(
    env: WorkflowEnvironment, how: str
) -> None:
    stubs = Stubs()
    if how == "refused":  # the adapter's non-retryable error
        stubs.psp_answers.append(
            ApplicationError("card expired", type=ErrorCode.PSP_DECLINED, non_retryable=True)
        )
    else:  # a decline is a result, not an exception
        failed = RefundResult(
            psp_refund_id="re_1",
            status=PspRefundStatus.FAILED,
            amount=Money(value=SMALL, currency="EUR"),
            failure_code=ErrorCode.PSP_DECLINED,
            failure_message="card expired",
        )
        stubs.psp_answers.append(failed)
    async with running(env, stubs, refund_input(SMALL)) as handle:
        final = await handle.result()

    assert (final.status, final.failure_code, final.failure_message) == (
        RefundStatus.FAILED,
        ErrorCode.PSP_DECLINED,
        "card expired",
    )
    [books] = stubs.called(Activity.FINISH)
    assert (books.status, books.failure_code) == (RefundStatus.FAILED, ErrorCode.PSP_DECLINED)
    assert len(stubs.called(Activity.REFUND)) == 1  # a refusal is final: not retried, not handed to ops


@pytest.mark.parametrize("code", [ErrorCode.PSP_AUTH_FAILED, ErrorCode.PSP_UNAVAILABLE])
async def test_a_step_failing_for_good_waits_for_ops_and_their_retry_runs_it_again(
    env: WorkflowEnvironment, code: ErrorCode
) -> None:
    """A revoked key, or a PSP that never answered: whether money moved is unknown, so ops decide; the
    retried call searches the PSP before it refunds."""
    stubs = Stubs()
    stubs.psp_answers.append(ApplicationError("no answer", type=code, non_retryable=True))
    async with running(env, stubs, refund_input(SMALL)) as handle:
        stuck = await reaches(handle, RefundStatus.NEEDS_ATTENTION)
        assert (stuck.failure_code, stuck.failure_message) == (code, "no answer")
        await handle.execute_update(RefundWorkflow.retry, RetryInput(operator="ops-1"))
        final = await handle.result()

    assert final.status is RefundStatus.SUCCEEDED and final.failure_code is None
    assert [call.search_first for call in stubs.called(Activity.REFUND)] == [False, True]
    retried = stubs.audited("ops_retry")
    assert (retried.actor, retried.reason_code) == ("operator:ops-1", code.value)
    assert [name for name, _ in stubs.calls][-1] == Activity.FINISH


async def test_a_local_step_failing_for_good_waits_for_ops(env: WorkflowEnvironment) -> None:
    stubs = Stubs()
    stubs.reserve_failures.append(ApplicationError("the database is read-only", non_retryable=True))
    async with running(env, stubs, refund_input(SMALL)) as handle:
        with contextlib.suppress(WorkflowFailureError, TimeoutError):
            await asyncio.wait_for(handle.result(), timeout=5)
        stuck = await handle.query(RefundWorkflow.state)
    assert stuck.status is RefundStatus.NEEDS_ATTENTION


async def test_a_pending_refund_succeeds_on_the_psps_webhook(env: WorkflowEnvironment) -> None:
    stubs = Stubs()
    amount = Money(value=SMALL, currency="EUR")
    stubs.psp_answers.append(
        RefundResult(psp_refund_id="re_1", status=PspRefundStatus.PENDING, amount=amount)
    )
    async with running(env, stubs, refund_input(SMALL)) as handle:
        await reaches(handle, RefundStatus.AWAITING_CONFIRMATION)
        update = PspRefundUpdate(psp_refund_id="re_1", status=PspRefundStatus.SUCCEEDED, psp_event_id="evt_1")
        await handle.signal(RefundWorkflow.psp_refund_update, proven(handle, update))
        final = await handle.result()

    assert final.status is RefundStatus.SUCCEEDED
    confirmed = stubs.audited("psp_confirmed")
    assert (confirmed.actor, confirmed.detail["psp_event_id"]) == ("psp:stripe", "evt_1")
    [read_back] = stubs.called(Activity.CONFIRM_OUTCOME)  # the event's word, read back at the PSP first
    assert read_back.update.psp_event_id == "evt_1" and not read_back.verify_proof


def proven(handle: WorkflowHandle[Any, RefundState], update: PspRefundUpdate) -> PspRefundUpdate:
    """An update as the service signs it after verifying the PSP's event."""
    return sign_outcome([SIGNING_KEY], handle.id, subject(None, handle.id.removeprefix("refund-")), update)


def pending_refund(stubs: Stubs) -> None:
    stubs.psp_answers.append(
        RefundResult(
            psp_refund_id="re_1", status=PspRefundStatus.PENDING, amount=Money(value=SMALL, currency="EUR")
        )
    )


@pytest.mark.parametrize("status", [PspRefundStatus.FAILED, PspRefundStatus.SUCCEEDED])
async def test_an_outcome_signalled_without_the_services_proof_changes_nothing(
    env: WorkflowEnvironment, status: PspRefundStatus
) -> None:
    """`temporal workflow signal --name psp_refund_update` (or the UI) with no proof, a proof for
    another refund, or a proof of another word: refused, written to the trail at once, the refund
    still waits for the PSP; the service's proven word then settles it."""
    stubs = Stubs()
    pending_refund(stubs)
    async with running(env, stubs, refund_input(SMALL)) as handle:
        await reaches(handle, RefundStatus.AWAITING_CONFIRMATION)
        forged = PspRefundUpdate(psp_refund_id="re_1", status=status, psp_event_id="evt_forged")
        elsewhere = sign_outcome([SIGNING_KEY], "refund-another", subject(None, "another"), forged)
        altered = proven(handle, forged.model_copy(update={"status": PspRefundStatus.PENDING}))
        about = subject(None, handle.id.removeprefix("refund-"))
        foreign_key = sign_outcome([identity.signing_key("not the service")], handle.id, about, forged)
        for update in (forged, elsewhere, altered.model_copy(update={"status": status}), foreign_key):
            await handle.signal(RefundWorkflow.psp_refund_update, update)
        for _ in range(200):
            if len(stubs.refused()) == 4:
                break
            await asyncio.sleep(0.05)
        assert (await handle.query(RefundWorkflow.state)).status is RefundStatus.AWAITING_CONFIRMATION
        assert len(stubs.called(Activity.CONFIRM_OUTCOME)) == 4 and not stubs.called(Activity.FINISH)

        genuine = PspRefundUpdate(
            psp_refund_id="re_1", status=PspRefundStatus.SUCCEEDED, psp_event_id="evt_1"
        )
        await handle.signal(RefundWorkflow.psp_refund_update, proven(handle, genuine))
        final = await handle.result()
    assert final.status is RefundStatus.SUCCEEDED


async def test_a_proven_event_the_psp_contradicts_keeps_the_refund_waiting(env: WorkflowEnvironment) -> None:
    """The PSP is the truth: an event saying `failed` of a refund the PSP still has pending releases
    nothing; the PSP's own later answer decides."""
    stubs = Stubs()
    pending_refund(stubs)
    stubs.psp_reads.extend([PspRefundStatus.PENDING, PspRefundStatus.SUCCEEDED])
    async with running(env, stubs, refund_input(SMALL)) as handle:
        await reaches(handle, RefundStatus.AWAITING_CONFIRMATION)
        failed = PspRefundUpdate(psp_refund_id="re_1", status=PspRefundStatus.FAILED, psp_event_id="evt_1")
        await handle.signal(RefundWorkflow.psp_refund_update, proven(handle, failed))
        for _ in range(200):
            if stubs.called(Activity.CONFIRM_OUTCOME):
                break
            await asyncio.sleep(0.05)
        assert (await handle.query(RefundWorkflow.state)).status is RefundStatus.AWAITING_CONFIRMATION
        again = failed.model_copy(update={"psp_event_id": "evt_2"})
        await handle.signal(RefundWorkflow.psp_refund_update, proven(handle, again))
        final = await handle.result()
    assert final.status is RefundStatus.SUCCEEDED  # the PSP said succeeded when read back
    [books] = stubs.called(Activity.FINISH)
    assert books.status is RefundStatus.SUCCEEDED


async def test_a_late_failure_is_reversed_only_once_the_psp_confirms_it(env: WorkflowEnvironment) -> None:
    """A refund open for its returned goods: a forged failure reverses nothing; a proven one the PSP
    denies reverses nothing; a proven one the PSP confirms is reversed once."""
    stubs = Stubs()
    items = [{"sku": "shoe", "quantity": 2, "unit_amount": 1_000, "restock": True}]
    async with running(env, stubs, refund_input(SMALL, reason_code="changed_mind", items=items)) as handle:
        await reaches(handle, RefundStatus.SUCCEEDED)
        failed = PspRefundUpdate(psp_refund_id="re_1", status=PspRefundStatus.FAILED, psp_event_id="evt_f1")
        await handle.signal(RefundWorkflow.psp_refund_update, failed)  # no proof
        stubs.psp_reads.append(PspRefundStatus.SUCCEEDED)
        await handle.signal(RefundWorkflow.psp_refund_update, proven(handle, failed))
        for _ in range(200):
            if len(stubs.called(Activity.CONFIRM_OUTCOME)) == 2:
                break
            await asyncio.sleep(0.05)
        assert not stubs.called(Activity.REVERSE)
        assert (await handle.query(RefundWorkflow.state)).status is RefundStatus.SUCCEEDED

        second = failed.model_copy(update={"psp_event_id": "evt_f2"})
        await handle.signal(RefundWorkflow.psp_refund_update, proven(handle, second))
        for _ in range(200):
            if stubs.called(Activity.REVERSE):
                break
            await asyncio.sleep(0.05)
        receipt = GoodsReceipt(
            receipt_id="rcpt-1",
            lines=[ReceiptLine(sku="shoe", received=2, sellable=2)],
            request_id=handle.id[7:],
        )
        await handle.execute_update(RefundWorkflow.goods_received, receipt)
        final = await handle.result()
    [reversal] = stubs.called(Activity.REVERSE)
    assert reversal.update.psp_event_id == "evt_f2" and reversal.update.proof is None  # the PSP's word
    assert final.status is RefundStatus.FAILED


async def test_returned_goods_are_restocked_beside_the_refund(env: WorkflowEnvironment) -> None:
    stubs = Stubs()
    items = [{"sku": "shoe", "quantity": 2, "unit_amount": 1_000, "restock": True}]
    input = refund_input(SMALL, reason_code="changed_mind", items=items)
    async with running(env, stubs, input) as handle:
        await reaches(handle, RefundStatus.SUCCEEDED)  # refunded; the goods are still on their way
        receipt = GoodsReceipt(
            receipt_id="rcpt-1",
            lines=[ReceiptLine(sku="shoe", received=2, sellable=1)],
            request_id=input.request.request_id,
        )
        await handle.execute_update(RefundWorkflow.goods_received, receipt)
        final = await handle.result()

    assert final.status is RefundStatus.SUCCEEDED
    assert final.returns.status is ReturnsStatus.RECEIVED and final.returns.restocked == {"shoe": 1}
    [restock] = stubs.called(Activity.RESTOCK)
    assert restock.receipt == receipt


async def test_a_word_signed_after_a_key_rotation_is_proven_by_the_published_keys(
    env: WorkflowEnvironment,
) -> None:
    """The service's signing key was rotated (the old one dropped) while the refund waited for the
    PSP: its word, signed with the new key only, is proven by the keys the service published and
    settles the refund (before, every word was refused and an Adyen refund, which cannot be polled,
    waited for ops for ever)."""
    stubs = Stubs()
    pending_refund(stubs)
    rotated = identity.signing_key("rotated")
    stubs.published = (identity.public_key(SIGNING_KEY), identity.public_key(rotated))
    async with running(env, stubs, refund_input(SMALL)) as handle:
        await reaches(handle, RefundStatus.AWAITING_CONFIRMATION)
        about = subject(None, handle.id.removeprefix("refund-"))
        genuine = PspRefundUpdate(
            psp_refund_id="re_1", status=PspRefundStatus.SUCCEEDED, psp_event_id="evt_1"
        )
        await handle.signal(
            RefundWorkflow.psp_refund_update, sign_outcome([rotated], handle.id, about, genuine)
        )
        final = await handle.result()
    assert final.status is RefundStatus.SUCCEEDED
    [asked] = stubs.refused()
    assert asked.update.psp_event_id == "evt_1"
