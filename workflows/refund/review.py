"""A refund's review: reviewers decide, proven by the service's signature; past the policy's deadlines
the review is escalated, then decided by the policy. Who may decide is pure (domain/review.py); this
module applies those rules to updates and Temporal UI signals, and does the waiting."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain import identity
    from domain import review as rules
    from domain.actors import Actor
    from domain.contracts import (
        AuditRows,
        NotifyInput,
        RefundWorkflowInput,
        ReviewDecision,
        ReviewInput,
        VoidApprovalInput,
    )
    from domain.naming import SA_ESCALATED, SA_REVIEW_SINCE
    from domain.status import RefundStatus

from workflows.refund.attention import Stop, failure_of
from workflows.refund.patches import Patches
from workflows.refund.record import RefundRecord
from workflows.refund.steps import Steps


def _refuse(refusal: rules.Refusal | None) -> None:
    if refusal is not None:
        raise ApplicationError(refusal.message, type=refusal.code)


class Review:
    def __init__(
        self, input: RefundWorkflowInput, record: RefundRecord, steps: Steps, patches: Patches
    ) -> None:
        self._input = input
        self._record = record
        self._steps = steps
        self._patches = patches
        self._decided_by: Actor | None = None  # who made the decision now in `state.review`
        self._notices: list[asyncio.Task[None]] = []  # sent beside the money path, never in its way

    # ---- waiting for the decision -------------------------------------------------------------

    async def decision(self) -> None:
        """Wait for the reviewers; past the policy's deadlines, escalate, then let the policy decide.
        A rejection stops the refund."""
        record, policy = self._record, self._input.policy
        record.set_status(RefundStatus.AWAITING_REVIEW)
        record.update(awaiting_review_since=workflow.now())
        record.publish(SA_REVIEW_SINCE.value_set(workflow.now()))
        decided = lambda: record.state.review is not None  # noqa: E731
        if self._patches.review_deadlines():
            escalate_after = timedelta(seconds=policy.review_escalate_after_seconds)
            decide_after = timedelta(seconds=policy.review_decide_after_seconds)
            try:
                await self._wait(decided, escalate_after)
            except TimeoutError:
                await self._escalate(escalate_after)
                try:
                    await self._wait(decided, decide_after - escalate_after)
                except TimeoutError:
                    self._decided_by = Actor.policy(policy.version)
                    record.update(review=rules.policy_decision(policy, workflow.now()))
        else:
            await self._wait(decided)
        review, decided_by = record.state.review, self._decided_by
        assert review is not None and decided_by is not None
        features = record.state.risk.features if record.state.risk else {}
        record.note(
            "review_decided",
            actor=decided_by,
            reason_code="approved" if review.approved else "rejected",
            detail={
                "reason": review.reason,
                "approvers": ",".join(a.reviewer for a in record.state.approvals),
                "policy_version": policy.version,
                **{f"feature:{name}": value for name, value in features.items()},
            },
        )
        if not review.approved:
            raise Stop(RefundStatus.REJECTED, rules.rejection_code(decided_by), review.reason)

    async def _wait(self, decided: Callable[[], bool], timeout: timedelta | None = None) -> None:
        """Wait for the decision (`timeout` raises TimeoutError). Meanwhile each step taken (the risk
        score and the wait itself, a first approval, a refused UI signal, a voided approval) is
        written to the trail as it happens: a refund may wait weeks, and finance must see who
        already approved. Refunds started before this release write them with their next step."""
        record = self._record
        if not self._patches.audit_as_it_happens:
            await record.wait(decided, timeout=timeout)
            return
        deadline = None if timeout is None else workflow.now() + timeout
        while not decided():
            if record.unwritten():
                state = record.state
                rows = AuditRows(
                    request_id=state.request_id,
                    payment_reference=state.payment_reference,
                    audit=record.drain_audit(),
                )
                await self._steps.record_audit(rows)
                continue  # a step taken while they were written is written next
            left = None if deadline is None else deadline - workflow.now()
            if left is not None and left <= timedelta(0):
                raise TimeoutError
            await record.wait(lambda: decided() or record.unwritten(), timeout=left)

    async def notices_sent(self) -> None:
        """Wait for the notices sent beside the money path."""
        if self._notices:
            await asyncio.gather(*self._notices)

    async def _escalate(self, waited: timedelta) -> None:
        record, state = self._record, self._record.state
        record.update(review_escalated=True)
        record.publish(SA_ESCALATED.value_set(True))
        hours = int(waited.total_seconds()) // 3600
        record.note("review_escalated", reason_code="review_deadline", detail={"waited_hours": str(hours)})
        notice = NotifyInput(
            request_id=state.request_id,
            payment_reference=state.payment_reference,
            event="review_escalated",
            message=f"refund {state.request_id} has waited {hours} hours for review",
            detail={
                "amount": str(state.amount or ""),
                "risk": str(state.risk.score if state.risk else ""),
            },
        )
        if self._patches.edge_paths:
            # the audit stays with the money path; the notice goes out beside it, never in its way
            self._notices.append(asyncio.create_task(self._notify(notice)))
            return
        await self._steps.notify(notice.model_copy(update={"audit": record.drain_audit()}))

    async def _notify(self, notice: NotifyInput) -> None:
        """Tell ops; a hook that keeps failing is audited and the refund goes on."""
        try:
            await self._steps.notify(notice)
        except ActivityError as err:
            error = failure_of(err)[1][:500]
            self._record.note("ops_notification_failed", reason_code=notice.event, detail={"error": error})

    # ---- decisions: updates (through the service) and signals (from the Temporal UI) --------------

    def check_update(self, review: ReviewInput, *, approved: bool) -> None:
        """The update's validator. Its reviewer counts only with the service's proof (refunds started
        before decisions were signed have no keys and keep the rule they started under)."""
        self._check(review, approved=approved)
        if self._input.review_keys and not self._proven(review, approved):
            _refuse(rules.UNPROVEN)

    def decide(self, review: ReviewInput, *, approved: bool) -> None:
        """An update, validated by `check_update`."""
        self._decide(review, approved=approved, by=Actor.reviewer(review.reviewer))

    def signalled(self, review: ReviewInput, *, approved: bool) -> None:
        """A decision carrying the service's proof counts as its reviewer's; one without counts as
        `ui:<name>` only where the policy allows it, and never towards four eyes. A signal has nobody
        to answer, so a refused one is audited."""
        by = Actor.reviewer(review.reviewer)
        proven = self._proven(review, approved)
        if not proven:
            by = Actor.ui(review.reviewer)
            review = review.model_copy(update={"reviewer": rules.ui_reviewer(review.reviewer)})
        try:
            if self._input.review_keys and not proven:
                needed = rules.approvals_needed(self._record.state.risk)
                allowed = self._input.policy.unverified_ui_reviews
                _refuse(rules.unverified_refusal(by.name, allowed=allowed, approving=approved, needed=needed))
            self._check(review, approved=approved)
        except ApplicationError as err:
            actor = Actor.reviewer(review.reviewer)  # the name as it would have been recorded
            self._record.note("review_signal_refused", actor=actor, reason_code=str(err.type))
            return
        self._decide(review, approved=approved, by=by)

    def _check(self, review: ReviewInput, *, approved: bool) -> None:
        state = self._record.state
        if approved:
            requested_by = (self._input.request.metadata or {}).get("requested_by")
            signed = bool(self._input.review_keys)
            _refuse(rules.approver_refusal(state, review.reviewer, requested_by, signed=signed))
        else:
            _refuse(rules.rejecter_refusal(state, review.reviewer, review.reason))

    def _proven(self, review: ReviewInput, approved: bool) -> bool:
        return identity.proven(
            self._input.review_keys,
            review.proof,
            workflow.info().workflow_id,
            "approve" if approved else "reject",
            review.reviewer,
            review.reason,
        )

    def _decide(self, review: ReviewInput, *, approved: bool, by: Actor) -> None:
        """A rejection decides at once; an approval once enough different reviewers approved."""
        record = self._record
        decision = ReviewDecision(
            approved=approved, reviewer=review.reviewer, reason=review.reason, decided_at=workflow.now()
        )
        if not approved:
            self._decided_by = by
            record.update(review=decision)
            return
        approvals = [*record.state.approvals, decision]
        record.update(approvals=approvals)
        if rules.approvals_decide(approvals, rules.approvals_needed(record.state.risk)):
            self._decided_by = by
            record.update(review=decision)
        else:
            actor = Actor.reviewer(review.reviewer)  # the name as recorded among the approvals
            record.note("review_approved_once", actor=actor, reason_code="four_eyes")

    # ---- ops voiding a person's approvals (a reviewer revoked while refunds wait) ----------------

    def check_void(self, request: VoidApprovalInput) -> None:
        """The void's validator: a refund still awaiting review, and a person who approved it."""
        signed = bool(self._input.review_keys)
        _refuse(rules.void_refusal(self._record.state, request.reviewer, signed=signed))

    def void(self, request: VoidApprovalInput) -> None:
        """Take a person's approvals back: the review counts only the others', so four eyes need two
        people who approve now. An update, validated by `check_void`.

        No patch guards it: an Update a history never received replays nothing, and refunds started
        before this release can take it too (it only removes approvals and notes who did, in state
        and in an audit row that rides with the next activity; it schedules no command)."""
        state = self._record.state
        signed = bool(self._input.review_keys)
        kept = rules.without_approvals_of(state.approvals, request.reviewer, signed=signed)
        self._record.update(approvals=kept)
        self._record.note(
            "approval_voided",
            actor=Actor.operator(request.operator),
            reason_code="approval_voided",
            detail={
                "reviewer": request.reviewer,
                "voided": str(len(state.approvals) - len(kept)),
                "approvals_left": ",".join(a.reviewer for a in kept),
                "reason": request.reason,
            },
        )
