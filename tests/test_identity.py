"""Identity is proven, never asserted: no channel lets a typed name count as an approver, and
reviewers are compared as people, not strings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError

from adapters.db import audit
from domain import identity
from domain.contracts import RefundState, ReviewInput
from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack, starter_for, worker_for
from tests.helpers import (
    FOUR_EYES,
    INBOUND_SECRET,
    TOKENS,
    decide,
    eventually,
    proven_review,
    refund_body,
    signed_headers,
    state_of,
    unique,
)
from workflows.refund import RefundWorkflow


def _refused(stack: Stack, request_id: str) -> int:
    with stack.database.transaction() as session:
        return [e.step for e in audit.trail(session, request_id)].count("review_signal_refused")


async def _awaiting_review(
    stack: Stack, sandbox: SandboxControl, http: Any, amount: int, **extra: Any
) -> tuple[str, WorkflowHandle[Any, RefundState]]:
    """A large refund, requested and waiting for its reviewers."""
    payment = sandbox.seed_stripe_payment(amount=1_000_000, currency="EUR")
    request_id = unique("who")
    body = refund_body(request_id, payment, amount=amount, **extra)
    assert (
        await http.post("/v1/refund-requests", content=body, headers=signed_headers(body))
    ).status_code == 202
    handle = stack.client.get_workflow_handle_for(RefundWorkflow.run, f"refund-{request_id}")
    await eventually(lambda: state_of(handle), lambda s: s.status.value == "awaiting_review")
    return request_id, handle


async def test_names_typed_into_the_temporal_ui_never_make_four_eyes(
    stack: Stack, sandbox: SandboxControl, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(FOUR_EYES)
    starter = starter_for(stack, policy_file=policy, reviewer_tokens=TOKENS)
    async with starter as (settings, http), worker_for(stack, settings):
        request_id, handle = await _awaiting_review(stack, sandbox, http, 600_000)

        # typed names count for nothing here: not two of them, and not one beside a proven reviewer
        await handle.signal(RefundWorkflow.approve_from_ui, ReviewInput(reviewer="bob"))
        await handle.signal(RefundWorkflow.approve_from_ui, ReviewInput(reviewer="bob2"))
        # an Update with a name and no proof, or with a proof made for another refund, counts neither
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(RefundWorkflow.approve, ReviewInput(reviewer="mallory"))
        elsewhere = proven_review(settings, "another-refund", "carol")
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(RefundWorkflow.approve, elsewhere)

        assert (await decide(http, request_id, "approve", "bob")).status_code == 200  # bob, by token
        assert (await state_of(handle)).status.value == "awaiting_review"  # one person so far
        assert (await decide(http, request_id, "approve", "carol")).status_code == 200
        final = await handle.result()

    assert final.status.value == "succeeded"
    assert [a.reviewer for a in final.approvals] == ["bob", "carol"]  # neither UI name counted
    assert _refused(stack, request_id) == 2


async def test_in_production_the_temporal_ui_decides_only_with_a_proof(
    stack: Stack, sandbox: SandboxControl
) -> None:
    starter = starter_for(stack, reviewer_tokens=TOKENS, ui_reviews_unverified=False)
    async with starter as (settings, http), worker_for(stack, settings):
        request_id, handle = await _awaiting_review(stack, sandbox, http, 150_000)

        await handle.signal(RefundWorkflow.approve_from_ui, ReviewInput(reviewer="dave"))
        forged_key = identity.signing_key(INBOUND_SECRET)  # what a merchant's shop could derive
        forged = identity.sign_decision(forged_key, f"refund-{request_id}", "approve", "dave", "")
        await handle.signal(RefundWorkflow.approve_from_ui, ReviewInput(reviewer="dave", proof=forged))

        # the UI can still carry a proof the service made: it counts as its reviewer
        await handle.signal(RefundWorkflow.approve_from_ui, proven_review(settings, request_id, "alice"))
        final = await handle.result()

    assert final.status.value == "succeeded"
    assert final.review is not None and final.review.reviewer == "alice"
    assert [a.reviewer for a in final.approvals] == ["alice"]  # neither of dave's counted
    assert _refused(stack, request_id) == 2


OLD_KEY = "the-review-signing-secret-before-the-rotation"
NEW_KEY = "the-review-signing-secret-after-the-rotation!"


async def test_a_refund_waiting_across_a_key_rotation_is_still_decided(
    stack: Stack, sandbox: SandboxControl
) -> None:
    """Started under the old key; the service now signs with `new,old`: the refund knows the old one."""
    before = starter_for(stack, reviewer_tokens=TOKENS, review_signing_key=OLD_KEY)
    async with before as (settings, http), worker_for(stack, settings):
        request_id, handle = await _awaiting_review(stack, sandbox, http, 150_000)
        rotated = starter_for(
            stack,
            reviewer_tokens=TOKENS,
            review_signing_key=f"{NEW_KEY},{OLD_KEY}",
            task_queue=settings.task_queue,
        )
        async with rotated as (_, after_rotation):
            assert (await decide(after_rotation, request_id, "approve", "alice")).status_code == 200
        assert (await handle.result()).status.value == "succeeded"


async def test_a_reviewer_cannot_approve_their_own_request_under_another_spelling(
    stack: Stack, sandbox: SandboxControl
) -> None:
    async with starter_for(stack, reviewer_tokens=TOKENS) as (settings, http), worker_for(stack, settings):
        request_id, handle = await _awaiting_review(
            stack, sandbox, http, 150_000, metadata={"requested_by": " Carol@shop.example"}
        )
        own = await decide(http, request_id, "approve", "carol")
        assert (own.status_code, own.json()["error"]["code"]) == (409, "unauthorized")
        assert (await decide(http, request_id, "approve", "alice")).status_code == 200
        assert (await handle.result()).status.value == "succeeded"


_NAME = st.text(alphabet=st.characters(categories=["L", "N"]), min_size=1, max_size=12)


@given(name=_NAME, merchant=_NAME)
def test_one_person_under_every_channel_case_and_disguise(name: str, merchant: str) -> None:
    spellings = [
        name,
        f"{identity.UI_PREFIX}{name}",
        f"UI:ui:{name}",
        f"{name}@{merchant}",
        f"  {name.casefold()} ",
        f"{name[:1]}\u200b{name[1:]}",  # a zero-width space inside
    ]
    assert len({identity.person(spelling) for spelling in spellings}) == 1


def test_a_proof_binds_refund_verdict_reviewer_and_reason() -> None:
    key = identity.signing_key("secret")
    keys = (identity.public_key(key),)
    proof = identity.sign_decision(key, "refund-a", "approve", "alice", "ok")
    assert identity.proven(keys, proof, "refund-a", "approve", "alice", "ok")
    for changed in [
        ("refund-b", "approve", "alice", "ok"),
        ("refund-a", "reject", "alice", "ok"),
        ("refund-a", "approve", "alicia", "ok"),
        ("refund-a", "approve", "alice", "fine"),
    ]:
        assert not identity.proven(keys, proof, *changed)
    assert not identity.proven(keys, "not base64!", "refund-a", "approve", "alice", "ok")
    assert not identity.proven((), proof, "refund-a", "approve", "alice", "ok")
