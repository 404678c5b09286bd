"""Review rules: who may decide a refund's review, how many approvals it takes, who is whom.

Pure functions of the refund's state. A rule that refuses answers with a `Refusal` (a stable code
and a message); the workflow turns it into the error its validator or signal handler raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from domain import identity
from domain.actors import Actor, ActorKind
from domain.contracts import RefundPolicy, RefundState, ReviewDecision, RiskAssessment
from domain.status import ErrorCode, RefundStatus


@dataclass(frozen=True)
class Refusal:
    code: ErrorCode
    message: str


UNPROVEN = Refusal(
    ErrorCode.UNAUTHORIZED,
    "a decision needs a reviewer token and a key this refund knows: decide through the service "
    "(HTTP or `refunds approve`), which still holds the signing key the refund started with",
)


def approvals_needed(risk: RiskAssessment | None) -> int:
    """Two approvals above the four-eyes amount, one otherwise (and before the refund is scored)."""
    return risk.approvals_needed if risk is not None else 1


def approvals_decide(approvals: Sequence[ReviewDecision], needed: int) -> bool:
    """An approval decides the review once enough different reviewers approved."""
    return len(approvals) >= needed


def same_person(a: str, b: str, *, signed: bool) -> bool:
    """People, not strings, where decisions are signed. A refund started before decisions were
    signed keeps the comparison it started under (exact, but for the Temporal UI's mark), so its
    recorded UI signals replay as they ran."""
    if signed:
        return identity.same_person(a, b)
    return a.removeprefix(identity.UI_PREFIX) == b.removeprefix(identity.UI_PREFIX)


def reviewable_refusal(state: RefundState, reviewer: str) -> Refusal | None:
    """Only a refund awaiting review, not yet decided, is decided, and only by someone named."""
    if state.status is not RefundStatus.AWAITING_REVIEW or state.review is not None:
        return Refusal(ErrorCode.INVALID_STATE, f"refund is {state.status.value}, not awaiting_review")
    if not reviewer.strip():
        return Refusal(ErrorCode.UNAUTHORIZED, "a reviewer identity is required")
    return None


def approver_refusal(
    state: RefundState, reviewer: str, requested_by: str | None, *, signed: bool
) -> Refusal | None:
    """Nobody approves a refund they requested, nor approves twice (four eyes means two people)."""
    if (refusal := reviewable_refusal(state, reviewer)) is not None:
        return refusal
    if requested_by and same_person(requested_by, reviewer, signed=signed):
        return Refusal(ErrorCode.UNAUTHORIZED, f"{reviewer} requested this refund")
    if any(same_person(a.reviewer, reviewer, signed=signed) for a in state.approvals):
        return Refusal(ErrorCode.INVALID_STATE, f"{reviewer} already approved; a second reviewer must")
    return None


def void_refusal(state: RefundState, reviewer: str, *, signed: bool) -> Refusal | None:
    """Ops void a person's approvals only while the review is open, and only approvals they gave."""
    if state.status is not RefundStatus.AWAITING_REVIEW or state.review is not None:
        return Refusal(ErrorCode.INVALID_STATE, f"refund is {state.status.value}, not awaiting_review")
    if not any(same_person(a.reviewer, reviewer, signed=signed) for a in state.approvals):
        return Refusal(ErrorCode.NOT_FOUND, f"{reviewer} has no approval of this refund to void")
    return None


def without_approvals_of(
    approvals: Sequence[ReviewDecision], reviewer: str, *, signed: bool
) -> list[ReviewDecision]:
    """The approvals left once one person's are voided (the same person however the name is written)."""
    return [a for a in approvals if not same_person(a.reviewer, reviewer, signed=signed)]


def rejecter_refusal(state: RefundState, reviewer: str, reason: str) -> Refusal | None:
    """Anyone who may review may reject, with a reason."""
    if (refusal := reviewable_refusal(state, reviewer)) is not None:
        return refusal
    if not reason.strip():
        return Refusal(ErrorCode.INVALID_REQUEST, "a rejection needs a reason")
    return None


def unverified_refusal(typed_name: str, *, allowed: bool, approving: bool, needed: int) -> Refusal | None:
    """A name typed into the Temporal UI proves nothing. Where the policy allows it, it decides a
    review one person may decide alone; it never counts towards four eyes, where each approver must
    be a proven, different person."""
    if not allowed:
        return Refusal(ErrorCode.UNAUTHORIZED, "an unverified Temporal UI decision")
    if not identity.UI_NAME.match(typed_name):
        return Refusal(ErrorCode.UNAUTHORIZED, "a Temporal UI name is letters, digits, . _ -")
    if approving and needed > 1:
        return Refusal(ErrorCode.UNAUTHORIZED, "four eyes need reviewer tokens")
    return None


def ui_reviewer(typed_name: str) -> str:
    """How an unproven Temporal UI decision is recorded among the approvals: marked as such."""
    return f"{identity.UI_PREFIX}{typed_name}"


def policy_decision(policy: RefundPolicy, now: datetime) -> ReviewDecision:
    """The policy's own decision once nobody decided within its deadline."""
    return ReviewDecision(
        approved=policy.on_review_deadline == "approve",
        reviewer=str(Actor.policy(policy.version)),
        reason=f"no decision within {policy.review_decide_after_seconds // 3600} hours",
        decided_at=now,
    )


def rejection_code(decider: Actor) -> ErrorCode:
    """A review the policy declined at its deadline timed out; a person's rejection is a rejection."""
    return ErrorCode.REVIEW_TIMEOUT if decider.kind is ActorKind.POLICY else ErrorCode.REVIEW_REJECTED
