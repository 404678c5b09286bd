"""Attacks on "the PSP is the truth", through the running product: an insider with Temporal access
(any workflow type, input, id and id-reuse policy; signals; histories copied), the PSP's own messy
behaviour, and an unlucky operator. Each test names what must hold; none may move money, unbook it,
reverse it or release the over-refund guard without the PSP saying so."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import stripe
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from adapters.db import audit, ledger, refunds, service_keys
from adapters.db.models import ServiceKeyRow
from domain import identity
from domain.contracts import (
    AuditEvent,
    ExternalRefundInput,
    LateFailureInput,
    PspRefundUpdate,
    RefundState,
    RefundWorkflowInput,
    ReviewInput,
)
from domain.naming import external_refund_workflow_id, external_request_id, late_failure_workflow_id
from domain.status import Provider, PspRefundStatus
from sandbox.adyen.control import AdyenSandboxControl
from sandbox.server import SandboxServer
from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack, free_port, starter_for, worker_for
from tests.deliveries import adyen_delivery, adyen_item, deliver, post, refund_event
from tests.fixtures.merchants import fixture_globex_psps  # noqa: F401  (a fixture, used by name)
from tests.flows import (
    cli,
    known_adyen_payment,
    large_refund_awaiting_review,
    refund_through_pipeline,
    reservation_state,
    steps_of,
    submit,
    wait_for_status,
)
from tests.helpers import (
    GLOBEX_ADYEN_ACCOUNT,
    GLOBEX_HMAC,
    GLOBEX_STRIPE_KEY,
    GLOBEX_STRIPE_WEBHOOK_SECRET,
    decide,
    eventually,
    merchants_file,
    refund_body,
    signed_headers,
    state_of,
    unique,
    workflow_completed,
)
from workers.psp_wiring.adyen import SANDBOX_ADYEN_HMAC_KEY
from workers.psp_wiring.stripe import SANDBOX_STRIPE_API_KEY, SANDBOX_STRIPE_WEBHOOK_SECRET
from workflows.external_refund import ExternalRefundWorkflow
from workflows.late_failure import LateRefundFailureWorkflow
from workflows.refund import RefundWorkflow

T = TypeVar("T")
SETTLED = {"succeeded", "failed", "needs_attention", "rejected", "cancelled"}


# ---- what an insider reads out of Temporal ------------------------------------------------------


async def started_input(client: Client, workflow_id: str, kind: type[T]) -> T:
    """The input a workflow was started with, as anyone who may read its history can."""
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        if event.HasField("workflow_execution_started_event_attributes"):
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            [value] = await client.data_converter.decode(payloads, [kind])
            return value  # type: ignore[no-any-return]
    raise AssertionError(f"{workflow_id} has no start")


async def first_signal(client: Client, workflow_id: str) -> PspRefundUpdate:
    """The first PSP word signalled to a workflow, proof and all."""
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        if event.HasField("workflow_execution_signaled_event_attributes"):
            payloads = event.workflow_execution_signaled_event_attributes.input.payloads
            [word] = await client.data_converter.decode(payloads, [PspRefundUpdate])
            return word  # type: ignore[no-any-return]
    raise AssertionError(f"{workflow_id} was never signalled")


async def activities_completed(client: Client, workflow_id: str) -> int:
    """How many activities the workflow's latest run completed (0 before it exists)."""
    count = 0
    try:
        async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
            count += event.HasField("activity_task_completed_event_attributes")
    except RPCError as err:
        if err.status is not RPCStatusCode.NOT_FOUND:
            raise
    return count


async def _end(handle: WorkflowHandle[Any, Any]) -> None:
    """Terminate a workflow the test started, unless it has ended already."""
    try:
        await handle.terminate("attack done")
    except RPCError as err:
        if err.status is not RPCStatusCode.NOT_FOUND:
            raise


async def settled_after(client: Client, workflow_id: str, activities: int) -> bool:
    """At least `activities` activities completed and nothing more scheduled or under way."""
    if await activities_completed(client, workflow_id) < activities:
        return False
    raw = (await client.get_workflow_handle(workflow_id).describe()).raw_description
    return not raw.pending_activities and not raw.HasField("pending_workflow_task")


def _balances(stack: Stack, request_id: str) -> dict[tuple[str, str], int]:
    with stack.database.transaction() as session:
        return ledger.balances(session, request_id)


def _settled_status(stack: Stack, request_id: str) -> str | None:
    with stack.database.transaction() as session:
        row = refunds.get(session, request_id)
        return row.status if row else None


async def _twin_of(
    stack: Stack, request_id: str, twin_id: str, **changes: Any
) -> WorkflowHandle[Any, RefundState]:
    """A RefundWorkflow started by hand with the genuine refund's input (copied from its history),
    changed as the insider likes, under an id of the insider's choosing."""
    genuine = await started_input(stack.client, f"refund-{request_id}", RefundWorkflowInput)
    return await stack.client.start_workflow(
        RefundWorkflow.run,
        genuine.model_copy(update=changes),
        id=twin_id,
        task_queue=stack.settings.task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )


async def _approve_if_asked(twin: WorkflowHandle[Any, RefundState], key: Ed25519PrivateKey) -> RefundState:
    """The insider approves its twin with its own key, if the twin ever waits for review."""
    state = await eventually(
        lambda: state_of(twin),
        lambda s: s.status.value in {"awaiting_review", "needs_attention", *SETTLED},
    )
    if state.status.value != "awaiting_review":
        return state
    twin_id = twin.id
    proof = identity.sign_decision(key, twin_id, "approve", "mallory", "")
    await twin.execute_update(RefundWorkflow.approve, ReviewInput(reviewer="mallory", proof=proof))
    return await eventually(lambda: state_of(twin), lambda s: s.status.value in {"needs_attention", *SETTLED})


# ---- an insider with Temporal access: RefundWorkflow twins --------------------------------------


async def test_a_twin_with_a_forged_signature_leaves_the_refunds_books_alone(
    stack: Stack, sandbox: SandboxControl
) -> None:
    """A RefundWorkflow started by hand under another id, naming a refund that waits for review,
    with a signature that proves nothing: it must not settle that refund's books (before, its
    failed validation wrote the refund's settled row as failed, so the real refund, approved and
    paid at Stripe, was never posted and kept its reservation held for ever)."""
    request_id, payment = await large_refund_awaiting_review(stack, sandbox)
    genuine = await started_input(stack.client, f"refund-{request_id}", RefundWorkflowInput)
    forged = genuine.evidence.model_copy(update={"signature_header": "t=1,v1=" + "0" * 64})
    twin = await _twin_of(stack, request_id, f"refund-twin-{uuid.uuid4().hex[:8]}", evidence=forged)
    await eventually(lambda: state_of(twin), lambda s: s.status.value in {"needs_attention", *SETTLED})
    await _end(twin)

    assert (await decide(stack.http, request_id, "approve", "alice")).status_code == 200
    view = await wait_for_status(stack, request_id, SETTLED)
    assert view["status"] == "succeeded"
    assert len(sandbox.stripe_refunds(payment)) == 1
    assert _settled_status(stack, request_id) == "succeeded"
    assert reservation_state(stack, request_id) == "committed"
    assert _balances(stack, request_id) != {}


async def test_a_twin_carrying_its_own_review_key_moves_no_money(
    stack: Stack, sandbox: SandboxControl
) -> None:
    """The genuine input (signature and all) copied into a RefundWorkflow under another id, with the
    insider's own key as the service's: it must not approve itself and refund at the PSP while the
    real refund still waits for a reviewer."""
    request_id, payment = await large_refund_awaiting_review(stack, sandbox)
    key = Ed25519PrivateKey.generate()
    twin = await _twin_of(
        stack, request_id, f"refund-twin-{uuid.uuid4().hex[:8]}", review_keys=(identity.public_key(key),)
    )
    await _approve_if_asked(twin, key)
    await _end(twin)
    assert sandbox.stripe_refunds(payment) == []
    assert (await state_of(stack.client.get_workflow_handle(f"refund-{request_id}"))).status.value == (
        "awaiting_review"
    )


async def test_a_rejected_refund_started_again_under_its_own_id_moves_no_money(
    stack: Stack, sandbox: SandboxControl
) -> None:
    """A reviewer rejected the refund and its workflow closed; the insider starts its id again
    (ALLOW_DUPLICATE) with the same signed request and its own review key: no refund at the PSP."""
    request_id, payment = await large_refund_awaiting_review(stack, sandbox)
    rejected = await stack.http.post(
        f"/v1/refunds/{request_id}/reject",
        json={"reason": "abuse"},
        headers={"Authorization": "Bearer alice-token"},
    )
    assert rejected.status_code == 200
    await eventually(lambda: workflow_completed(stack.client, f"refund-{request_id}"), bool)
    key = Ed25519PrivateKey.generate()
    again = await _twin_of(stack, request_id, f"refund-{request_id}", review_keys=(identity.public_key(key),))
    await _approve_if_asked(again, key)
    await _end(again)
    assert sandbox.stripe_refunds(payment) == []
    assert _settled_status(stack, request_id) == "rejected"
    assert reservation_state(stack, request_id) in {None, "released"}


# ---- an insider with Temporal access: the standalone outcome workflows ---------------------------


async def test_a_late_failure_workflow_started_early_does_not_swallow_the_real_one(
    stack: Stack, sandbox: SandboxControl
) -> None:
    """The insider starts the late-failure workflow under the id the service will use, with no
    proof: it ends at once. When the PSP really fails the refund later, the books are reversed
    (before, the service found the id taken and took the real failure for a duplicate)."""
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    view = await refund_through_pipeline(stack, payment, amount=2_000)
    request_id, psp_refund_id = view["request_id"], view["psp_refund_id"]
    squatter = await stack.client.start_workflow(
        LateRefundFailureWorkflow.run,
        LateFailureInput(
            provider=Provider.STRIPE,
            request_id=request_id,
            update=PspRefundUpdate(psp_refund_id=psp_refund_id, status=PspRefundStatus.FAILED),
        ),
        id=late_failure_workflow_id(request_id, psp_refund_id),
        task_queue=stack.settings.task_queue,
    )
    assert await squatter.result() is False

    sandbox.fail_stripe_refund_late(psp_refund_id)
    await wait_for_status(stack, request_id, {"failed"})
    assert _balances(stack, request_id) == {}
    assert reservation_state(stack, request_id) == "released"


async def test_a_late_failure_replayed_under_another_provider_is_still_read_back(
    stack: Stack, sandbox: SandboxControl
) -> None:
    """Stripe's webhook secret leaked: a forged refund.failed reaches the service, which signs it;
    reading it back at Stripe shows the refund stands, so nothing is reversed. The insider copies
    the late-failure workflow's proven input and starts it again naming Adyen (which cannot be read
    back): the proof must not carry over to another PSP, and nothing is reversed."""
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    view = await refund_through_pipeline(stack, payment, amount=2_000)
    request_id, psp_refund_id = view["request_id"], view["psp_refund_id"]
    status, _ = await deliver(
        stack, refund_event(request_id, psp_refund_id, "failed"), SANDBOX_STRIPE_WEBHOOK_SECRET
    )
    assert status == 200
    late_id = late_failure_workflow_id(request_id, psp_refund_id)
    await eventually(lambda: workflow_completed(stack.client, late_id), bool)
    assert await stack.client.get_workflow_handle(late_id).result() is False  # Stripe says it stands

    proven = await started_input(stack.client, late_id, LateFailureInput)
    assert proven.update.proof
    again = await stack.client.start_workflow(
        LateRefundFailureWorkflow.run,
        proven.model_copy(update={"provider": Provider.ADYEN}),
        id=late_id,
        task_queue=stack.settings.task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )
    assert await again.result() is False
    assert _settled_status(stack, request_id) == "succeeded"
    assert _balances(stack, request_id) != {}
    assert reservation_state(stack, request_id) == "committed"


async def _stripe_dashboard_refund(stack: Stack, payment: str, amount: int) -> str:
    """A refund made in Stripe's dashboard, booked by the product; its refund id."""
    client = stripe.StripeClient(SANDBOX_STRIPE_API_KEY, base_addresses={"api": stack.sandbox_url})
    made = client.v1.refunds.create({"payment_intent": payment, "amount": amount})
    booking = external_request_id("stripe", made.id)
    await eventually(lambda: _async(_settled_status(stack, booking)), lambda s: s == "succeeded")
    external = external_refund_workflow_id("stripe", made.id)
    await eventually(lambda: workflow_completed(stack.client, external), bool)
    return made.id


async def _async(value: T) -> T:
    return value


async def test_a_dashboard_refunds_proof_replayed_into_another_input_books_nothing_twice(
    stack: Stack, sandbox: SandboxControl
) -> None:
    """The insider copies the service's proven word about a dashboard refund out of its workflow's
    history and starts that workflow id again with an input naming another refund id (or another
    PSP): the proof binds the word, not the input's booking key, so before it was booked a second
    time, taking the payment's refundable amount again."""
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    psp_refund_id = await _stripe_dashboard_refund(stack, payment, 1_000)
    external = external_refund_workflow_id("stripe", psp_refund_id)
    word = await first_signal(stack.client, external)
    assert word.proof

    for provider, forged_id in (
        (Provider.STRIPE, f"re_forged_{uuid.uuid4().hex[:8]}"),
        (Provider.ADYEN, psp_refund_id),
    ):
        run = await stack.client.start_workflow(
            ExternalRefundWorkflow.run,
            ExternalRefundInput(provider=provider, payment_reference=payment, psp_refund_id=forged_id),
            id=external,
            task_queue=stack.settings.task_queue,
            start_signal="psp_refund_update",
            start_signal_args=[word],
        )

        # the word is weighed (proof, read-back) and either booked or refused: unproven (written to
        # the trail of the refund the word names), or proven and then booked or not
        async def weighed(provider: Provider = provider) -> bool:
            refused = external_request_id(provider.value, psp_refund_id)
            done = await activities_completed(stack.client, external) >= 2
            return done or "psp_update_unproven" in steps_of(stack, refused)

        await eventually(weighed, bool)
        await _end(run)
        assert _settled_status(stack, external_request_id(provider.value, forged_id)) is None
        assert _balances(stack, external_request_id(provider.value, forged_id)) == {}
    # the payment still has 40.00 EUR left at our guard
    again = await refund_through_pipeline(stack, payment, amount=4_000)
    assert again["status"] == "succeeded", again.get("failure_message")


async def test_a_dashboard_refund_workflow_squatted_with_a_wrong_input_does_not_swallow_its_failure(
    stack: Stack, sandbox: SandboxControl
) -> None:
    """After a dashboard refund was booked, the insider starts its workflow id again with an input
    naming another payment and leaves it waiting. When Stripe fails the refund later, the service's
    word lands on that run, whose input its proof does not match: the failure must still reverse the
    books (before, it was refused as unproven and the event remembered, so never taken again)."""
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    psp_refund_id = await _stripe_dashboard_refund(stack, payment, 1_000)
    external = external_refund_workflow_id("stripe", psp_refund_id)
    squatter = await stack.client.start_workflow(
        ExternalRefundWorkflow.run,
        ExternalRefundInput(
            provider=Provider.STRIPE, payment_reference="pi_elsewhere", psp_refund_id=psp_refund_id
        ),
        id=external,
        task_queue=stack.settings.task_queue,
    )
    booking = external_request_id("stripe", psp_refund_id)
    try:
        sandbox.fail_stripe_refund_late(psp_refund_id)
        await eventually(lambda: _async(_settled_status(stack, booking)), lambda s: s == "failed")
        assert _balances(stack, booking) == {}
        assert reservation_state(stack, booking) == "released"
    finally:
        await _end(squatter)
    assert "psp_update_unproven" not in steps_of(stack, booking)


async def test_a_dashboard_refund_workflow_squatted_on_a_queue_no_worker_polls_does_not_hold_its_failure(
    stack: Stack, sandbox: SandboxControl
) -> None:
    """The same squat with the service's very input, on a task queue no worker polls: the PSP's
    failure would wait there for ever. The service takes the id back first."""
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    psp_refund_id = await _stripe_dashboard_refund(stack, payment, 1_000)
    external = external_refund_workflow_id("stripe", psp_refund_id)
    genuine = await started_input(stack.client, external, ExternalRefundInput)
    squatter = await stack.client.start_workflow(
        ExternalRefundWorkflow.run, genuine, id=external, task_queue=f"nobody-{uuid.uuid4().hex[:8]}"
    )
    booking = external_request_id("stripe", psp_refund_id)
    try:
        sandbox.fail_stripe_refund_late(psp_refund_id)
        await eventually(lambda: _async(_settled_status(stack, booking)), lambda s: s == "failed")
        assert reservation_state(stack, booking) == "released"
    finally:
        await _end(squatter)


# ---- the PSP's own messy behaviour ---------------------------------------------------------------


async def test_adyens_failure_arriving_before_its_success_books_nothing(
    stack: Stack, adyen: AdyenSandboxControl
) -> None:
    """A Customer Area refund Adyen fails at once: REFUND then REFUND_FAILED, delivered newest first
    (Adyen promises no order and signs no time). The failure, weighed first, has nothing to reverse;
    the success that follows must not book a refund the PSP already said failed (before, it was
    booked and the payment's refundable amount taken for good)."""
    reference = await known_adyen_payment(stack, adyen, 5_000)
    adyen.hold_notifications(True)
    psp_refund_id = adyen.dashboard_refund(reference, 4_000)
    adyen.fail_refund_late(psp_refund_id)
    assert adyen.release_notifications("reverse") == 2
    external = external_refund_workflow_id("adyen", psp_refund_id)
    # both words weighed: the failure (confirmed, nothing to reverse) and the success (confirmed,
    # then booked or not), and the run idle or ended
    await eventually(lambda: settled_after(stack.client, external, 3), bool)
    booking = external_request_id("adyen", psp_refund_id)
    assert _settled_status(stack, booking) in {None, "failed"}
    assert _balances(stack, booking) == {}
    assert reservation_state(stack, booking) in {None, "released"}
    await _end(stack.client.get_workflow_handle(external))


async def test_a_partial_refunded_reversed_does_not_reverse_the_whole_refund(
    stack: Stack, adyen: AdyenSandboxControl
) -> None:
    """Adyen says 10.00 of a 30.00 refund came back (REFUNDED_REVERSED carries its amount): the books
    must not give back 30.00 (the reversal reverses whole postings, so it is left to ops, listed by
    `refunds attention`), and the guard keeps the 30.00 taken."""
    reference = await known_adyen_payment(stack, adyen, 5_000)
    request_id = unique("adyen-partial")
    assert (
        await submit(stack, refund_body(request_id, reference, amount=3_000, provider="adyen"))
    ).is_success
    view = await wait_for_status(stack, request_id, SETTLED)
    assert view["status"] == "succeeded"
    psp_refund_id = view["psp_refund_id"]
    [refund] = [
        n["payload"]["notificationItems"][0]["NotificationRequestItem"]
        for n in adyen.notifications(psp_refund_id)
        if n["event_code"] == "REFUND"
    ]
    item = adyen_item(
        psp_refund_id,
        refund["merchantReference"],
        SANDBOX_ADYEN_HMAC_KEY,
        eventCode="REFUNDED_REVERSED",
        originalReference=reference,
        amount={"value": 1_000, "currency": "EUR"},
    )
    assert (await post(stack, "adyen", adyen_delivery(item))).status_code == 200
    late_id = late_failure_workflow_id(request_id, psp_refund_id)
    await eventually(lambda: workflow_completed(stack.client, late_id), bool)
    assert _settled_status(stack, request_id) == "succeeded"
    assert _balances(stack, request_id) != {}
    assert reservation_state(stack, request_id) == "committed"
    assert "late_failure_not_reversed" in steps_of(stack, request_id)
    listing = (await cli(stack, "attention")).stdout
    assert request_id in listing


# ---- an insider, with the PSP really failing the refund ------------------------------------------


async def test_audit_rows_carried_by_a_hand_started_late_failure_are_not_written(
    stack: Stack, sandbox: SandboxControl
) -> None:
    """The insider restarts a late-failure workflow with its proven input (copied from a history)
    once the PSP really failed the refund, adding audit rows of its own (a reviewer who never acted,
    the reversal's own key): the reversal happens, the rows do not."""
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    view = await refund_through_pipeline(stack, payment, amount=2_000)
    request_id, psp_refund_id = view["request_id"], view["psp_refund_id"]
    status, _ = await deliver(
        stack, refund_event(request_id, psp_refund_id, "failed"), SANDBOX_STRIPE_WEBHOOK_SECRET
    )
    assert status == 200
    late_id = late_failure_workflow_id(request_id, psp_refund_id)
    await eventually(lambda: workflow_completed(stack.client, late_id), bool)
    proven = await started_input(stack.client, late_id, LateFailureInput)

    sandbox.set_stripe_webhook_url(None)  # the service does not hear of the real failure
    try:
        sandbox.fail_stripe_refund_late(psp_refund_id)
    finally:
        sandbox.set_stripe_webhook_url(f"{stack.base_url}/webhooks/stripe")
    forged = [
        AuditEvent(key=key, step=step, actor="reviewer:alice", reason_code="forged", at=datetime.now(UTC))
        for key, step in (("late_failure", "late_failure_reversed"), ("forged", "review_decided"))
    ]
    again = await stack.client.start_workflow(
        LateRefundFailureWorkflow.run,
        proven.model_copy(update={"audit": forged}),
        id=late_id,
        task_queue=stack.settings.task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )
    assert await again.result() is True  # the PSP did fail it
    with stack.database.transaction() as session:
        trail = audit.trail(session, request_id)
    assert [entry.actor for entry in trail if entry.reason_code == "forged"] == []
    assert any(entry.step == "late_failure_reversed" and entry.actor == "psp:stripe" for entry in trail)


# ---- an unlucky operator -------------------------------------------------------------------------


async def test_a_late_failure_waits_for_the_services_keys_instead_of_being_dropped(
    stack: Stack, sandbox: SandboxControl
) -> None:
    """The worker holds no signing secret and the `service_keys` table is empty (emptied by hand, a
    worker on another database): a proven late failure cannot be checked, so it must wait, not be
    refused for good (the PSP's event is remembered and never taken again)."""
    async with (
        starter_for(stack) as (side, http),
        worker_for(stack, side.model_copy(update={"review_signing_key": ""})),
    ):
        payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
        request_id = unique("keys")
        body = refund_body(request_id, payment, amount=2_000)
        assert (
            await http.post("/v1/refund-requests", content=body, headers=signed_headers(body))
        ).status_code == 202

        async def view() -> dict[str, Any]:
            return dict((await http.get(f"/v1/refunds/{request_id}")).json())

        done = await eventually(view, lambda v: v.get("status") in SETTLED)
        assert done["status"] == "succeeded"
        psp_refund_id = done["psp_refund_id"]

        with stack.database.transaction() as session:
            session.execute(delete(ServiceKeyRow))
        sandbox.set_stripe_webhook_url(None)
        try:
            sandbox.fail_stripe_refund_late(psp_refund_id)
        finally:
            sandbox.set_stripe_webhook_url(f"{stack.base_url}/webhooks/stripe")
        try:
            [event] = [
                e["payload"]
                for e in sandbox.webhook_events()
                if e["payload"]["type"] == "refund.failed"
                and e["payload"]["data"]["object"]["id"] == psp_refund_id
            ]
            payload = json.dumps(event)
            header = stripe.WebhookSignature.generate_signature_header(payload, SANDBOX_STRIPE_WEBHOOK_SECRET)
            told = await http.post(
                "/webhooks/stripe",
                content=payload,
                headers={"Stripe-Signature": header, "content-type": "application/json"},
            )
            assert told.status_code == 200
            late = stack.client.get_workflow_handle(late_failure_workflow_id(request_id, psp_refund_id))

            async def attempts() -> int:
                """The proof's check attempts so far; -1 once the run ended."""
                try:
                    description = await late.describe()
                except RPCError:
                    return 0
                if description.status is not WorkflowExecutionStatus.RUNNING:
                    return -1
                pending = description.raw_description.pending_activities
                return pending[0].attempt if pending else 0

            # waiting for the keys, not done with the failure
            assert await eventually(attempts, lambda n: n >= 2 or n == -1) >= 2
            assert _settled_status(stack, request_id) == "succeeded"
        finally:
            with stack.database.transaction() as session:
                service_keys.publish(session, stack.services.review_keys)
        await eventually(
            lambda: _async(_settled_status(stack, request_id)), lambda s: s == "failed", timeout=40
        )
        assert reservation_state(stack, request_id) == "released"


async def test_a_refund_awaiting_adyen_confirmation_across_a_key_rotation_is_confirmed(
    stack: Stack, adyen: AdyenSandboxControl
) -> None:
    """An Adyen refund waits for its REFUND notification (Adyen cannot be polled) while the service
    is restarted with a new signing secret, the old one dropped (as `refunds pending` showed nothing
    left in review). The service publishes its new key; the refund must still be confirmed by the
    PSP's verified word (before, every word was refused and it waited for ops for ever)."""
    reference = await known_adyen_payment(stack, adyen, 5_000)
    request_id = unique("adyen-rotated")
    before = adyen.config()["webhook_url"]
    port = free_port()
    rotated = {"review_signing_key": f"rotated-review-signing-secret-{uuid.uuid4().hex}"}
    adyen.hold_notifications(True)
    try:
        async with starter_for(stack, port=port, **rotated):
            # Adyen's notifications go to the restarted service from now on
            adyen.set_webhook_url(f"http://127.0.0.1:{port}/webhooks/adyen")
            body = refund_body(request_id, reference, amount=1_500, provider="adyen")
            assert (await submit(stack, body)).is_success  # started by the service before the restart
            await wait_for_status(stack, request_id, {"awaiting_confirmation"})
            assert adyen.release_notifications() >= 1
            view = await wait_for_status(stack, request_id, SETTLED, timeout=30)
            assert view["status"] == "succeeded", view.get("failure_code")
    finally:
        adyen.set_webhook_url(before)
        adyen.hold_notifications(False)


# ---- another merchant's PSP account ----------------------------------------------------------------


async def test_another_merchants_adyen_account_naming_our_payment_takes_nothing_of_its_guard(
    stack: Stack, adyen: AdyenSandboxControl, globex_psps: SandboxServer, tmp_path: Path
) -> None:
    """Globex signs (with its own HMAC key, which it holds) a Customer Area REFUND naming the default
    merchant's payment. Adyen cannot be read back, so only the payment's own account may say what was
    refunded of it: the default merchant can still refund its payment in full."""
    reference = await known_adyen_payment(stack, adyen, 5_000)  # the default merchant's
    merchant = unique("globex")
    merchants = merchants_file(tmp_path, globex_psps.url, globex=merchant)
    forged_refund = unique("GLOBEXREF").upper().replace("-", "")
    async with starter_for(stack, merchants_file=merchants) as (settings, http), worker_for(stack, settings):
        item = adyen_item(
            forged_refund,
            "",
            GLOBEX_HMAC,
            merchantAccountCode=GLOBEX_ADYEN_ACCOUNT,
            originalReference=reference,
            amount={"value": 4_500, "currency": "EUR"},
        )
        told = await http.post(
            f"/webhooks/adyen/{merchant}",
            content=adyen_delivery(item),
            headers={"content-type": "application/json"},
        )
        assert told.status_code == 200
        external = external_refund_workflow_id("adyen", forged_refund, merchant)  # the reporter's own
        booking = external_request_id("adyen", forged_refund, merchant)

        async def weighed() -> bool:
            return await settled_after(stack.client, external, 2) or "psp_update_unproven" in steps_of(
                stack, booking
            )

        await eventually(weighed, bool)
    assert _settled_status(stack, booking) is None
    mine = unique("adyen-mine")
    assert (await submit(stack, refund_body(mine, reference, amount=5_000, provider="adyen"))).is_success
    view = await wait_for_status(stack, mine, SETTLED)
    assert view["status"] == "succeeded", view.get("failure_code")


async def test_another_merchants_stripe_refund_relabelled_with_our_payment_takes_nothing_of_its_guard(
    stack: Stack, sandbox: SandboxControl, globex_psps: SandboxServer, tmp_path: Path
) -> None:
    """Globex refunds 45.00 of its own payment in its Stripe dashboard, then signs (with its own
    webhook secret, which it holds) that refund's event with the payment changed to the default
    merchant's. Read back at Globex's Stripe the refund exists and succeeded, but of another payment:
    the default merchant can still refund its payment in full."""
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")  # the default merchant's
    globex = SandboxControl(globex_psps.url)
    own = globex.seed_stripe_payment(amount=5_000, currency="EUR")
    dashboard = stripe.StripeClient(GLOBEX_STRIPE_KEY, base_addresses={"api": globex_psps.url})
    made = dashboard.v1.refunds.create({"payment_intent": own, "amount": 4_500}).to_dict()
    merchant = unique("globex")
    merchants = merchants_file(tmp_path, globex_psps.url, globex=merchant)
    async with starter_for(stack, merchants_file=merchants) as (settings, http), worker_for(stack, settings):
        relabelled = {**made, "payment_intent": payment, "charge": None}
        event = {
            "id": unique("evt"),
            "object": "event",
            "type": "refund.updated",
            "data": {"object": relabelled},
        }
        payload = json.dumps(event)
        header = stripe.WebhookSignature.generate_signature_header(payload, GLOBEX_STRIPE_WEBHOOK_SECRET)
        told = await http.post(
            f"/webhooks/stripe/{merchant}",
            content=payload,
            headers={"Stripe-Signature": header, "content-type": "application/json"},
        )
        assert told.status_code == 200
        external = external_refund_workflow_id("stripe", made["id"], merchant)  # the reporter's own
        booking = external_request_id("stripe", made["id"], merchant)

        async def weighed() -> bool:
            return await settled_after(stack.client, external, 2) or "psp_update_unproven" in steps_of(
                stack, booking
            )

        await eventually(weighed, bool)
    assert _settled_status(stack, booking) is None
    mine = await refund_through_pipeline(stack, payment, amount=5_000)
    assert mine["status"] == "succeeded", mine.get("failure_code")


async def test_a_succeeded_refund_reset_to_before_its_psp_call_calls_the_psp_no_more(
    stack: Stack, sandbox: SandboxControl
) -> None:
    """The insider resets a succeeded refund's workflow to the task that scheduled its PSP call: the
    new run must not refund at the PSP again (its idempotency key is Stripe's for 24 hours only, so a
    reset a day later refunds twice), nor touch the settled books."""
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    view = await refund_through_pipeline(stack, payment, amount=2_000)
    request_id = view["request_id"]
    handle = stack.client.get_workflow_handle(f"refund-{request_id}")
    scheduled = None
    async for event in handle.fetch_history_events():
        attributes = event.activity_task_scheduled_event_attributes
        if event.HasField("activity_task_scheduled_event_attributes") and attributes.activity_type.name == (
            "refund_at_psp"
        ):
            scheduled = attributes.workflow_task_completed_event_id
    assert scheduled is not None
    before = _balances(stack, request_id)
    calls = sandbox.stats()

    reset = await stack.client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace=stack.client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=handle.id),
            reason="insider",
            workflow_task_finish_event_id=scheduled,
            request_id=uuid.uuid4().hex,
        )
    )
    again = stack.client.get_workflow_handle(handle.id, run_id=reset.run_id)
    state = await eventually(
        lambda: state_of(again), lambda s: s.status.value in {"needs_attention", "failed", "succeeded"}
    )
    await _end(again)
    assert sandbox.stats()["calls"].get("POST /v1/refunds") == calls["calls"].get("POST /v1/refunds")
    assert sandbox.stats()["replays"] == calls["replays"]
    assert len(sandbox.stripe_refunds(payment)) == 1
    assert _settled_status(stack, request_id) == "succeeded"
    assert _balances(stack, request_id) == before
    assert reservation_state(stack, request_id) == "committed"
    assert state.status.value != "succeeded" or state.psp_refund_id == view["psp_refund_id"]
