"""The pure review rules (domain/review.py) and the typed actor (domain/actors.py): no Temporal, no
database; what the refund workflow's validators and UI signals apply."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain import review as rules
from domain.actors import SYSTEM, Actor, ActorKind
from domain.contracts import RefundPolicy, RefundState, ReviewDecision, RiskAssessment
from domain.status import ErrorCode, Provider, RefundStatus

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def _state(status: RefundStatus = RefundStatus.AWAITING_REVIEW, **changes: object) -> RefundState:
    state = RefundState(
        request_id="r-1", provider=Provider.STRIPE, payment_reference="pi_1", order_id="o-1", status=status
    )
    return state.model_copy(update=changes)


def _approval(reviewer: str) -> ReviewDecision:
    return ReviewDecision(approved=True, reviewer=reviewer, decided_at=NOW)


def _risk(approvals_needed: int) -> RiskAssessment:
    return RiskAssessment(score=80, reasons=[], requires_review=True, approvals_needed=approvals_needed)


# ---- the typed actor --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("actor", "column"),
    [
        (SYSTEM, "system"),
        (Actor.reviewer("alice@acme"), "reviewer:alice@acme"),
        (Actor.ui("carol"), "ui:carol"),
        (Actor.operator("ops-1"), "operator:ops-1"),
        (Actor.policy("four-eyes-1"), "policy:four-eyes-1"),
        (Actor.psp("adyen"), "psp:adyen"),
    ],
)
def test_an_actor_renders_as_the_audit_trail_has_always_named_it(actor: Actor, column: str) -> None:
    assert str(actor) == column


def test_an_actors_kind_is_typed_not_read_from_its_name() -> None:
    # a reviewer whose name looks like another kind is still a reviewer
    assert Actor.reviewer("policy:sneaky").kind is ActorKind.REVIEWER
    assert rules.rejection_code(Actor.reviewer("policy:sneaky")) is ErrorCode.REVIEW_REJECTED
    assert rules.rejection_code(Actor.ui("carol")) is ErrorCode.REVIEW_REJECTED
    assert rules.rejection_code(Actor.policy("v1")) is ErrorCode.REVIEW_TIMEOUT


# ---- how many approvals ---------------------------------------------------------------------


def test_one_approval_decides_unless_four_eyes_are_needed() -> None:
    assert rules.approvals_needed(None) == 1
    assert rules.approvals_needed(_risk(2)) == 2
    assert rules.approvals_decide([_approval("alice")], 1)
    assert not rules.approvals_decide([_approval("alice")], 2)
    assert rules.approvals_decide([_approval("alice"), _approval("carol")], 2)


# ---- the same person ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [("carol", "Carol@acme"), ("ui:carol", "carol"), ("UI:ui:carol", " carol "), ("car\u200bol", "carol")],
)
def test_signed_refunds_compare_people(a: str, b: str) -> None:
    assert rules.same_person(a, b, signed=True)


def test_refunds_started_before_signed_decisions_keep_the_exact_comparison() -> None:
    assert rules.same_person("ui:carol", "carol", signed=False)
    assert not rules.same_person("Carol@acme", "carol", signed=False)
    assert not rules.same_person("", "", signed=True)  # nobody is nobody else's second pair of eyes


# ---- who may approve, who may reject ----------------------------------------------------------


def test_only_a_refund_awaiting_review_is_decided() -> None:
    refusal = rules.approver_refusal(_state(RefundStatus.REFUNDING), "alice", None, signed=True)
    assert refusal == rules.Refusal(ErrorCode.INVALID_STATE, "refund is refunding, not awaiting_review")
    decided = _state(review=_approval("bob"))
    refused = rules.rejecter_refusal(decided, "alice", "no")
    assert refused is not None and refused.code is ErrorCode.INVALID_STATE
    assert rules.approver_refusal(_state(), "  ", None, signed=True) == rules.Refusal(
        ErrorCode.UNAUTHORIZED, "a reviewer identity is required"
    )


def test_nobody_approves_their_own_request_nor_approves_twice() -> None:
    own = rules.approver_refusal(_state(), "Bob@acme", "bob", signed=True)
    assert own == rules.Refusal(ErrorCode.UNAUTHORIZED, "Bob@acme requested this refund")
    twice = rules.approver_refusal(_state(approvals=[_approval("alice")]), "ALICE", None, signed=True)
    assert twice == rules.Refusal(ErrorCode.INVALID_STATE, "ALICE already approved; a second reviewer must")
    assert rules.approver_refusal(_state(approvals=[_approval("alice")]), "carol", "bob", signed=True) is None
    # before signed decisions, names were compared as typed
    assert rules.approver_refusal(_state(approvals=[_approval("alice")]), "ALICE", None, signed=False) is None


def test_a_rejection_needs_a_reason() -> None:
    assert rules.rejecter_refusal(_state(), "alice", " ") == rules.Refusal(
        ErrorCode.INVALID_REQUEST, "a rejection needs a reason"
    )
    assert rules.rejecter_refusal(_state(), "alice", "looks like fraud") is None


# ---- names typed into the Temporal UI ---------------------------------------------------------


def test_an_unverified_ui_decision_counts_only_where_allowed_and_never_for_four_eyes() -> None:
    def refusal(name: str, *, allowed: bool = True, approving: bool = True, needed: int = 1) -> str | None:
        found = rules.unverified_refusal(name, allowed=allowed, approving=approving, needed=needed)
        return found.message if found else None

    assert refusal("carol", allowed=False) == "an unverified Temporal UI decision"
    assert refusal("carol@acme") == "a Temporal UI name is letters, digits, . _ -"
    assert refusal("ui:carol") == "a Temporal UI name is letters, digits, . _ -"
    assert refusal("carol", needed=2) == "four eyes need reviewer tokens"
    assert refusal("carol", approving=False, needed=2) is None
    assert refusal("carol") is None
    assert rules.ui_reviewer("carol") == "ui:carol"


# ---- the policy at its deadline ---------------------------------------------------------------


def test_the_policy_decides_as_configured_at_its_deadline() -> None:
    policy = RefundPolicy(version="v7", on_review_deadline="approve", review_decide_after_seconds=72 * 3600)
    decision = rules.policy_decision(policy, NOW)
    assert decision == ReviewDecision(
        approved=True, reviewer="policy:v7", reason="no decision within 72 hours", decided_at=NOW
    )
    assert not rules.policy_decision(RefundPolicy(), NOW).approved
