"""Many merchants: each with its own inbound secret, policy and ledger accounts, chosen per request;
one merchant's secret never starts a refund for another."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import stripe
from temporalio.api.enums.v1 import EventType
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from adapters.db import audit, ledger, refunds
from domain.contracts import RefundWorkflowInput, SignatureEvidence
from domain.naming import SA_MERCHANT, Activity
from domain.policy_file import PolicyError
from domain.requests import RefundRequest
from domain.reviewer_tokens import new_reviewer_entry
from domain.status import Provider
from sandbox.adyen.control import AdyenSandboxControl
from sandbox.server import SandboxServer
from sandbox.stripe.control import SandboxControl
from sandbox.stripe.objects import webhook_headers
from tests.conftest import Stack, free_port, starter_for, worker_for
from tests.deliveries import refund_event
from tests.fixtures.merchants import fixture_globex_psps  # noqa: F401  (a fixture, used by name)
from tests.flows import assert_not_started, cli, known_adyen_payment, refund_through_pipeline
from tests.helpers import (
    ACME_SECRET,
    GLOBEX_SECRET,
    GLOBEX_STRIPE_KEY,
    GLOBEX_STRIPE_WEBHOOK_SECRET,
    eventually,
    merchants_file,
    refund_body,
    signed_for,
    signed_headers,
    unique,
    workflow_completed,
)
from workers.merchants import load_merchants
from workers.psp_wiring.stripe import SANDBOX_STRIPE_WEBHOOK_SECRET
from workers.reconcile import reconcile_provider
from workers.settings import Settings
from workflows.refund import RefundWorkflow


async def test_each_merchant_signs_its_own_refunds_and_refunds_through_its_own_psp_account(
    stack: Stack, sandbox: SandboxControl, globex_psps: SandboxServer, tmp_path: Path
) -> None:
    port = free_port()
    globex_psps.set_stripe_webhook_url(f"http://127.0.0.1:{port}/webhooks/stripe/globex")
    payment = SandboxControl(globex_psps.url).seed_stripe_payment(
        amount=5_000, currency="EUR", refund_behavior="pending_then_succeeded", settle_after_ms=200
    )
    request_id = unique("globex")
    body = refund_body(request_id, payment, amount=900)

    starter = starter_for(stack, port=port, merchants_file=merchants_file(tmp_path, globex_psps.url))
    async with starter as (settings, http), worker_for(stack, settings):

        async def send(merchant: str, secret: str) -> tuple[int, str | None]:
            headers = signed_for(merchant, secret, body)
            response = await http.post("/v1/refund-requests", content=body, headers=headers)
            return response.status_code, response.json().get("workflow_id")

        # acme's secret cannot start a refund for globex, nor an unknown merchant's
        assert (await send("globex", ACME_SECRET))[0] == 401
        assert (await send("initech", ACME_SECRET))[0] == 401
        assert await send("globex", GLOBEX_SECRET) == (202, f"refund-globex~{request_id}")
        assert await send("globex", GLOBEX_SECRET) == (200, f"refund-globex~{request_id}")
        # a merchant's request ids are its own: acme's same id is acme's own refund, no conflict
        assert await send("acme", ACME_SECRET) == (202, f"refund-acme~{request_id}")
        handle = stack.client.get_workflow_handle_for(RefundWorkflow.run, f"refund-globex~{request_id}")
        state = await handle.result()
        history = await handle.fetch_history()
        # a refund made by hand in globex's Stripe dashboard is adopted into globex's books
        dashboard = stripe.StripeClient(GLOBEX_STRIPE_KEY, base_addresses={"api": globex_psps.url})
        by_hand = dashboard.v1.refunds.create({"payment_intent": payment, "amount": 400})
        adopted = f"refund-external-stripe-globex~{by_hand.id}"  # globex's own, by its account
        await eventually(lambda: workflow_completed(stack.client, adopted), bool)
        found = reconcile_provider(
            settings, Provider.STRIPE, datetime.now(UTC) - timedelta(hours=1), [], merchant_id="globex"
        )

    assert state.status.value == "succeeded", state
    assert state.risk is not None
    assert state.risk.policy_version == "globex-3"
    # refunded at globex's own account, on its own rate-limited queue, confirmed by its own webhook
    assert [r["amount"] for r in SandboxControl(globex_psps.url).stripe_refunds(payment)] == [900, 400]
    scheduled = {
        event.activity_task_scheduled_event_attributes.activity_type.name: (
            event.activity_task_scheduled_event_attributes.task_queue.name
        )
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    assert scheduled[Activity.REFUND] == f"{settings.task_queue}-psp-stripe-globex"
    assert Activity.CHECK_REFUND not in scheduled  # no poll: globex's webhook confirmed it
    signals = [
        event.workflow_execution_signaled_event_attributes.signal_name
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    assert signals == ["psp_refund_update"]
    with stack.database.transaction() as session:
        accounts = {account for account, _ in ledger.balances(session, f"globex~{request_id}")}
        steps = [entry.step for entry in audit.trail(session, f"globex~{request_id}")]
    assert accounts == {"globex:refund_contra_revenue:EUR", "globex:psp_receivable:stripe:EUR"}
    assert "validated" in steps  # the worker re-verified globex's signature with globex's secret
    with stack.database.transaction() as session:
        by_hand_accounts = {
            account for account, _ in ledger.balances(session, f"external:stripe:globex~{by_hand.id}")
        }
    assert by_hand_accounts == accounts
    assert found == []  # globex's books (both refunds) match globex's account


async def test_a_merchant_cannot_refund_through_another_merchants_psp_account(
    stack: Stack,
    sandbox: SandboxControl,
    adyen: AdyenSandboxControl,
    globex_psps: SandboxServer,
    tmp_path: Path,
) -> None:
    theirs = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")  # the default merchant's
    theirs_at_adyen = await known_adyen_payment(stack, adyen, 5_000)
    starter = starter_for(stack, merchants_file=merchants_file(tmp_path, globex_psps.url))
    async with starter as (settings, http), worker_for(stack, settings):

        async def outcome(
            merchant: str, secret: str, payment: str, provider: str = "stripe"
        ) -> tuple[str, str | None]:
            body = refund_body(unique(merchant), payment, amount=700, provider=provider)
            response = await http.post(
                "/v1/refund-requests", content=body, headers=signed_for(merchant, secret, body)
            )
            assert response.status_code == 202
            handle = stack.client.get_workflow_handle_for(RefundWorkflow.run, response.json()["workflow_id"])
            state = await handle.result()
            return state.status.value, state.failure_code.value if state.failure_code else None

        # globex's account has never heard of the payment; acme has no Stripe account at all
        assert await outcome("globex", GLOBEX_SECRET, theirs) == ("failed", "payment_not_found")
        assert await outcome("acme", ACME_SECRET, theirs) == ("failed", "provider_not_configured")
        # Adyen cannot be asked: its payments are known from notifications, each kept with the
        # merchant account that was notified, so globex's Adyen account never sees the default's
        assert await outcome("globex", GLOBEX_SECRET, theirs_at_adyen, "adyen") == (
            "failed",
            "payment_not_found",
        )
    assert sandbox.stripe_refunds(theirs) == []
    assert adyen.modifications(theirs_at_adyen) == []


async def test_another_merchants_psp_account_cannot_fail_a_refund_in_the_books(
    stack: Stack, sandbox: SandboxControl, globex_psps: SandboxServer, tmp_path: Path
) -> None:
    """Globex's Stripe account reports a failure naming the default merchant's refund (a refund made
    by hand there, copying its metadata): verified as globex's, it names a refund that is not
    globex's, so it is refused at the route and reverses nothing."""
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    view = await refund_through_pipeline(stack, payment, amount=1_200)
    request_id, psp_refund_id = view["request_id"], view["psp_refund_id"]
    failure = refund_event(request_id, psp_refund_id, "failed")
    with stack.database.transaction() as session:
        before = ledger.balances(session, request_id)

    starter = starter_for(stack, merchants_file=merchants_file(tmp_path, globex_psps.url))
    async with starter as (settings, http), worker_for(stack, settings):
        headers = webhook_headers(GLOBEX_STRIPE_WEBHOOK_SECRET, failure)
        response = await http.post("/webhooks/stripe/globex", content=failure, headers=headers)
        assert (response.status_code, response.headers["Refunds-Signalled"]) == (200, "0")
        await assert_not_started(stack, f"late-failure-globex~{request_id}-{psp_refund_id}")

    with stack.database.transaction() as session:
        assert ledger.balances(session, request_id) == before != {}
        assert refunds.get(session, request_id).status == "succeeded"


async def test_a_merchants_psp_webhooks_are_verified_with_its_own_account_secret(
    stack: Stack, globex_psps: SandboxServer, tmp_path: Path
) -> None:
    event = json.dumps({"id": "evt_1", "object": "event", "type": "refund.updated", "data": {"object": {}}})
    starter = starter_for(stack, merchants_file=merchants_file(tmp_path, globex_psps.url))
    async with starter as (_, http):

        async def post(path: str, secret: str) -> tuple[int, str]:
            response = await http.post(path, content=event, headers=webhook_headers(secret, event))
            return response.status_code, response.json().get("error", {}).get("code", "")

        # the default account's secret does not pass for globex's endpoint, nor globex's for the default's
        assert await post("/webhooks/stripe/globex", SANDBOX_STRIPE_WEBHOOK_SECRET) == (
            400,
            "signature_invalid",
        )
        assert await post("/webhooks/stripe", GLOBEX_STRIPE_WEBHOOK_SECRET) == (400, "signature_invalid")
        # a merchant, or a merchant's PSP, that is not configured has no endpoint
        assert (await post("/webhooks/stripe/initech", GLOBEX_STRIPE_WEBHOOK_SECRET))[0] == 404
        assert (await post("/webhooks/paypal/globex", GLOBEX_STRIPE_WEBHOOK_SECRET))[0] == 404


async def test_a_merchants_reviewers_read_and_steer_only_its_own_refunds(
    stack: Stack, sandbox: SandboxControl, globex_psps: SandboxServer, tmp_path: Path
) -> None:
    carol_token, carol_entry = new_reviewer_entry("carol")
    carol = {"Authorization": f"Bearer {carol_token}"}
    alice = {"Authorization": "Bearer alice-token"}  # one of the installation's own reviewers
    theirs = sandbox.seed_stripe_payment(amount=200_000, currency="EUR")  # the default merchant's
    ours = SandboxControl(globex_psps.url).seed_stripe_payment(amount=200_000, currency="EUR")
    default_id, globex_id = unique("default"), unique("globex")
    returned = [
        {"sku": unique("sku"), "quantity": 1, "unit_amount": 150_000, "tax_amount": 0, "restock": True}
    ]
    globex_body = refund_body(globex_id, ours, amount=150_000, reason_code="changed_mind", items=returned)
    default_body = refund_body(default_id, theirs, amount=150_000)

    starter = starter_for(stack, merchants_file=merchants_file(tmp_path, globex_psps.url, carol_entry))
    async with starter as (settings, http), worker_for(stack, settings):
        posted = [
            await http.post(
                "/v1/refund-requests", content=default_body, headers=signed_headers(default_body)
            ),
            await http.post(
                "/v1/refund-requests",
                content=globex_body,
                headers=signed_for("globex", GLOBEX_SECRET, globex_body),
            ),
        ]
        assert [r.status_code for r in posted] == [202, 202]

        async def statuses() -> list[str]:
            views = [
                (await http.get(f"/v1/refunds/{i}", headers=alice)).json()
                for i in (default_id, f"globex~{globex_id}")  # the installation's: by the full id
            ]
            return [view["status"] for view in views]

        await eventually(statuses, lambda found: found == ["awaiting_review"] * 2)

        async def globex_queue() -> str:
            return (await cli(stack, "pending", "--merchant", "globex")).stdout

        listed = await eventually(globex_queue, lambda out: globex_id in out)
        assert default_id not in listed  # ops can work one merchant's review queue

        # carol cannot read, steer or decode the default merchant's refund: it is as unknown as none
        assert (await http.get(f"/v1/refunds/{default_id}", headers=carol)).status_code == 404
        refused = await http.post(f"/v1/refunds/{default_id}/approve", headers=carol)
        assert (refused.status_code, refused.json()["error"]["code"]) == (404, "not_found")
        assert (await http.post("/codec/decode", headers=carol, json={"payloads": []})).status_code == 403
        # her own merchant's refund she reads and approves, as carol@globex
        view = (await http.get(f"/v1/refunds/{globex_id}", headers=carol)).json()
        assert (view["merchant_id"], view["status"]) == ("globex", "awaiting_review")
        approved = await http.post(f"/v1/refunds/{globex_id}/approve", headers=carol)
        assert approved.status_code == 200, approved.text
        assert [a["reviewer"] for a in approved.json()["approvals"]] == ["carol@globex"]
        # the installation's reviewers act for every merchant
        assert (await http.post(f"/v1/refunds/{default_id}/approve", headers=alice)).status_code == 200

        # a receipt for globex's refund is globex's to sign: the default merchant's secret finds nothing
        line = {"sku": returned[0]["sku"], "received": 1, "sellable": 1}
        receipt = json.dumps({"receipt_id": "r1", "lines": [line], "request_id": globex_id}).encode()
        path = f"/v1/refunds/{globex_id}/goods-received"
        foreign = await http.post(path, content=receipt, headers=signed_headers(receipt))
        own = await http.post(path, content=receipt, headers=signed_for("globex", GLOBEX_SECRET, receipt))
        assert (foreign.status_code, own.status_code) == (404, 200)
        assert own.json()["received"] == {returned[0]["sku"]: 1}


async def test_reads_need_a_reviewer_token_in_production(stack: Stack, sandbox: SandboxControl) -> None:
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    request_id = unique("prod")
    body = refund_body(request_id, payment, amount=500)
    async with starter_for(stack, environment="production") as (settings, http), worker_for(stack, settings):
        assert (
            await http.post("/v1/refund-requests", content=body, headers=signed_headers(body))
        ).status_code == 202
        anonymous = await http.get(f"/v1/refunds/{request_id}")
        forged = await http.get(f"/v1/refunds/{request_id}", headers={"Authorization": "Bearer guess"})
        reviewer = await http.get(
            f"/v1/refunds/{request_id}", headers={"Authorization": "Bearer alice-token"}
        )
    assert [r.status_code for r in (anonymous, forged, reviewer)] == [401, 401, 200]
    assert anonymous.json()["error"]["code"] == "unauthorized"


def test_the_worker_refuses_to_start_on_a_bad_merchants_file(tmp_path: Path) -> None:
    path = tmp_path / "merchants.toml"
    path.write_text('[merchants.acme]\ninbound_webhook_secret = "s"\npolicy_file = "/nowhere.toml"\n')
    started = subprocess.run(
        [sys.executable, "-m", "workers.cli", "worker"],
        env={
            **os.environ,
            "REFUNDS_ENVIRONMENT": "dev",
            "REFUNDS_MERCHANTS_FILE": str(path),
            "REFUNDS_TEMPORAL_ADDRESS": "127.0.0.1:9",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (started.returncode, "invalid_policy" in started.stderr) == (2, True)
    assert "/nowhere.toml: cannot be read" in started.stderr


def test_a_bad_merchants_file_is_refused_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "merchants.toml"
    for text, reason in [
        ('[merchants.Acme]\ninbound_webhook_secret = "s"\n', "lowercase id"),
        ("[merchants.acme]\n", "inbound_webhook_secret is required"),
        ('[merchants.acme]\ninbound_webhook_secret = "s"\nstripe_key = "k"\n', "unknown keys"),
        ('[merchants.acme]\ninbound_webhook_secret = "s"\nstripe = "sk"\n', "stripe: a table"),
        (
            '[merchants.acme]\ninbound_webhook_secret = "s"\n[merchants.acme.stripe]\napi_key = "sk"\n',
            "acme.stripe.webhook_secret is required",
        ),
        (
            '[merchants.acme]\ninbound_webhook_secret = "s"\n[merchants.acme.paypal]\nclient_id = "c"\n'
            'client_secret = "x"\nwebhook_id = "w"\nrate_limit = 0\n',
            "paypal.rate_limit: calls per second",
        ),
        (
            '[merchants.acme]\ninbound_webhook_secret = "s"\n[merchants.acme.adyen]\napi_key = "k"\n'
            'merchant_account = "m"\nhmac_key = "h"\nwebhook_secret = "w"\n',
            "adyen: unknown keys",
        ),
    ]:
        path.write_text(text)
        with pytest.raises(PolicyError, match=reason):
            load_merchants(path)


def test_a_merchant_has_its_own_psp_accounts_and_no_one_elses(tmp_path: Path) -> None:
    path = tmp_path / "merchants.toml"
    path.write_text(
        '[merchants.acme]\ninbound_webhook_secret = "s"\n'
        '[merchants.acme.adyen]\napi_key = "ak"\nmerchant_account = "Acme"\nhmac_key = "00"\n'
        "rate_limit = 7.5\n"
    )
    installation = Settings(stripe_api_key="sk_default", adyen_api_key="ak_default", merchants_file=path)
    acme = installation.for_merchant(installation.merchant_profiles()["acme"])
    assert (acme.adyen_api_key, acme.adyen_merchant_account, acme.psp_rates) == ("ak", "Acme", {"adyen": 7.5})
    # the installation's own accounts are not lent to acme
    assert (acme.stripe_api_key, acme.paypal_client_id) == ("", "")
    default = installation.merchant_profiles()[installation.merchant_id]
    assert installation.for_merchant(default).stripe_api_key == "sk_default"


async def test_a_merchants_request_ids_are_its_own(
    stack: Stack, sandbox: SandboxControl, globex_psps: SandboxServer, tmp_path: Path
) -> None:
    """The same request id from two merchants is two refunds: neither is told the other's exists
    (no 409), neither can claim it first, each reads and steers only its own."""
    carol_token, carol_entry = new_reviewer_entry("carol")
    carol = {"Authorization": f"Bearer {carol_token}"}
    alice = {"Authorization": "Bearer alice-token"}
    shared = unique("shared")
    theirs = refund_body(shared, sandbox.seed_stripe_payment(amount=5_000, currency="EUR"), amount=700)
    ours = refund_body(
        shared, SandboxControl(globex_psps.url).seed_stripe_payment(amount=5_000, currency="EUR"), amount=900
    )
    starter = starter_for(stack, merchants_file=merchants_file(tmp_path, globex_psps.url, carol_entry))
    async with starter as (settings, http), worker_for(stack, settings):
        first = await http.post("/v1/refund-requests", content=theirs, headers=signed_headers(theirs))
        second = await http.post(
            "/v1/refund-requests", content=ours, headers=signed_for("globex", GLOBEX_SECRET, ours)
        )
        assert (first.status_code, second.status_code) == (202, 202), second.text
        assert first.json() == {"request_id": shared, "workflow_id": f"refund-{shared}", "status": "received"}
        assert second.json()["request_id"] == shared  # as the merchant knows it
        states = [
            await stack.client.get_workflow_handle_for(RefundWorkflow.run, r.json()["workflow_id"]).result()
            for r in (first, second)
        ]
        # carol (globex's reviewer) reads globex's by its own id; the installation's by the full id
        own = (await http.get(f"/v1/refunds/{shared}", headers=carol)).json()
        full = (await http.get(f"/v1/refunds/globex~{shared}", headers=alice)).json()
        bare = (await http.get(f"/v1/refunds/{shared}", headers=alice)).json()
        # a full id names its merchant: carol cannot reach another merchant's through it
        foreign = await http.get(f"/v1/refunds/acme~{shared}", headers=carol)
        # nor may a merchant send an id already marked with a merchant
        marked = refund_body(f"globex~{shared}", "pi_x", amount=100)
        forged = await http.post("/v1/refund-requests", content=marked, headers=signed_headers(marked))

    assert [(s.status.value, s.amount.value if s.amount else None) for s in states] == [
        ("succeeded", 700),
        ("succeeded", 900),
    ]
    assert (own["amount"]["value"], own["merchant_id"]) == (900, "globex")
    assert full["workflow_id"] == f"refund-globex~{shared}" and full["amount"]["value"] == 900
    assert (bare["amount"]["value"], bare["merchant_id"]) == (700, None)
    assert (foreign.status_code, foreign.json()["error"]["code"]) == (404, "not_found")
    assert (forged.status_code, forged.json()["error"]["details"][0]["loc"]) == (422, ["request_id"])
    with stack.database.transaction() as session:
        kept = {row: refunds.get(session, row) for row in (shared, f"globex~{shared}")}
    assert {row: (r.merchant, r.amount) for row, r in kept.items() if r} == {
        shared: (None, 700),
        f"globex~{shared}": ("globex", 900),
    }


async def test_a_refund_kept_under_its_bare_id_is_answered_never_refunded_again(
    stack: Stack, globex_psps: SandboxServer, tmp_path: Path
) -> None:
    """A merchant's refund started before its ids were its own runs under the bare id: the same
    request again is answered from it (200), a changed one is a conflict, and nothing refunds twice."""
    globex = SandboxControl(globex_psps.url)
    payment = globex.seed_stripe_payment(amount=5_000, currency="EUR")
    request_id = unique("before")
    body = refund_body(request_id, payment, amount=600)
    starter = starter_for(stack, merchants_file=merchants_file(tmp_path, globex_psps.url))
    async with starter as (settings, http), worker_for(stack, settings):
        sent = RefundRequest.model_validate_json(body)
        await stack.client.start_workflow(  # as the service started a merchant's refund before
            RefundWorkflow.run,
            RefundWorkflowInput(
                request=sent,
                evidence=SignatureEvidence(
                    raw_body=body.decode(),
                    signature_header=signed_for("globex", GLOBEX_SECRET, body)["Refund-Signature"],
                    received_at=datetime.now(UTC),
                ),
                policy=settings.for_merchant(settings.merchant_profiles()["globex"]).policy(),
                merchant_id="globex",
                review_keys=settings.review_public_keys(),
            ),
            id=f"refund-{request_id}",
            task_queue=settings.task_queue,
            search_attributes=TypedSearchAttributes([SearchAttributePair(SA_MERCHANT, "globex")]),
            memo={"body_sha256": sent.digest_for("globex")},
        )
        again = await http.post(
            "/v1/refund-requests", content=body, headers=signed_for("globex", GLOBEX_SECRET, body)
        )
        changed = refund_body(request_id, payment, amount=601)
        conflict = await http.post(
            "/v1/refund-requests", content=changed, headers=signed_for("globex", GLOBEX_SECRET, changed)
        )
        state = await stack.client.get_workflow_handle_for(
            RefundWorkflow.run, f"refund-{request_id}"
        ).result()
        settled = await http.post(
            "/v1/refund-requests", content=body, headers=signed_for("globex", GLOBEX_SECRET, body)
        )

    assert again.status_code == 200 and again.json()["workflow_id"] == f"refund-{request_id}"
    assert (conflict.status_code, conflict.json()["error"]["code"]) == (409, "request_conflict")
    assert state.status.value == "succeeded"
    assert (settled.status_code, settled.json()["status"]) == (200, "succeeded")
    assert [r["amount"] for r in globex.stripe_refunds(payment)] == [600]
