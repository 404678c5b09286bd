"""The Stripe sandbox, driven by the official `stripe` SDK over loopback HTTP (nothing mocked)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe

from sandbox.server import SandboxServer
from sandbox.stripe.api import parse_form
from sandbox.stripe.control import SandboxControl
from sandbox.stripe.demo import DEMO_PAYMENTS, seed_demo_payments
from tests.fixtures.sandbox import (  # noqa: F401  (fixtures, used by name)
    API_KEY,
    WEBHOOK_SECRET,
    WebhookReceiver,
    eventually,
    fixture_sandbox_control,
    fixture_stripe_client,
    fixture_stripe_sandbox,
    fixture_webhook_receiver,
    unique,
)


def _header(obj: stripe.StripeObject, name: str) -> str | None:
    assert obj.last_response is not None
    return obj.last_response.headers.get(name)


def _seed(control: SandboxControl, amount: int = 10_000, **kwargs: object) -> str:
    return control.seed_stripe_payment(amount=amount, currency="EUR", **kwargs)  # type: ignore[arg-type]


# payments ---------------------------------------------------------------------------------------


def test_create_and_retrieve_payment_intents(stripe_client: stripe.StripeClient) -> None:
    intent = stripe_client.v1.payment_intents.create(
        {
            "amount": 2_500,
            "currency": "EUR",
            "confirm": True,
            "payment_method": "pm_card_visa",
            "metadata": {"order": "o-1"},
        }
    )
    assert intent.id.startswith("pi_")
    assert (intent.status, intent.currency, intent.amount_received) == ("succeeded", "eur", 2_500)
    assert intent.metadata.to_dict() == {"order": "o-1"}
    assert str(_header(intent, "Request-Id")).startswith("req_")

    again = stripe_client.v1.payment_intents.retrieve(intent.id, {"expand": ["latest_charge"]})
    charge = again.latest_charge
    assert isinstance(charge, stripe.Charge)
    assert (charge.amount_captured, charge.amount_refunded, charge.captured) == (2_500, 0, True)
    assert charge.payment_intent == intent.id
    assert stripe_client.v1.charges.retrieve(charge.id).id == charge.id

    manual = stripe_client.v1.payment_intents.create(
        {"amount": 900, "currency": "eur", "confirm": True, "capture_method": "manual"}
    )
    assert (manual.status, manual.amount_capturable, manual.amount_received) == (
        "requires_capture",
        900,
        0,
    )
    captured = stripe_client.v1.payment_intents.capture(manual.id, {"amount_to_capture": 600})
    assert (captured.status, captured.amount_received) == ("succeeded", 600)


def test_unknown_objects_are_404_resource_missing(stripe_client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe_client.v1.payment_intents.retrieve("pi_does_not_exist")
    assert (err.value.http_status, err.value.code) == (404, "resource_missing")
    assert str(err.value.request_id).startswith("req_")
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe_client.v1.refunds.create({"payment_intent": "pi_nope", "amount": 1})
    assert (err.value.http_status, err.value.code) == (404, "resource_missing")


def test_wrong_api_key_is_401(stripe_sandbox: SandboxServer) -> None:
    client = stripe.StripeClient(
        "sk_test_wrong", base_addresses={"api": stripe_sandbox.url}, max_network_retries=0
    )
    with pytest.raises(stripe.AuthenticationError) as err:
        client.v1.payment_intents.retrieve("pi_x")
    assert err.value.http_status == 401


def test_cancel_authorised_intent_but_not_a_captured_one(
    stripe_client: stripe.StripeClient, sandbox_control: SandboxControl
) -> None:
    authorised = _seed(sandbox_control, 8_000, captured=False)
    canceled = stripe_client.v1.payment_intents.cancel(authorised)
    assert (canceled.status, canceled.amount_capturable) == ("canceled", 0)
    charge = stripe_client.v1.charges.retrieve(str(canceled.latest_charge))
    assert (charge.captured, charge.refunded) == (False, True)

    captured = _seed(sandbox_control)
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe_client.v1.payment_intents.cancel(captured)
    assert (err.value.http_status, err.value.code) == (400, "payment_intent_unexpected_state")


# refunds ----------------------------------------------------------------------------------------


def test_refund_happy_path_list_and_pagination(
    stripe_client: stripe.StripeClient, sandbox_control: SandboxControl
) -> None:
    payment = _seed(sandbox_control, 10_000)
    first = stripe_client.v1.refunds.create(
        {"payment_intent": payment, "amount": 1_000, "metadata": {"refund_request_id": "r-1"}}
    )
    assert (first.status, first.amount, first.currency, first.payment_intent) == (
        "succeeded",
        1_000,
        "eur",
        payment,
    )
    assert first.id.startswith("re_") and first.metadata is not None
    assert first.metadata["refund_request_id"] == "r-1"
    assert stripe_client.v1.refunds.retrieve(first.id).amount == 1_000

    made = [first.id]
    for _ in range(4):
        made.append(stripe_client.v1.refunds.create({"payment_intent": payment, "amount": 100}).id)
    page = stripe_client.v1.refunds.list({"payment_intent": payment, "limit": 2})
    assert (len(page.data), page.has_more) == (2, True)
    assert [r.id for r in page.auto_paging_iter()] == list(reversed(made))

    charge_id = stripe_client.v1.payment_intents.retrieve(payment).latest_charge
    charge = stripe_client.v1.charges.retrieve(str(charge_id))
    assert charge.amount_refunded == 1_400
    by_charge = stripe_client.v1.refunds.list({"charge": str(charge_id), "limit": 100})
    assert len(by_charge.data) == 5

    rest = stripe_client.v1.refunds.create({"charge": str(charge_id)})
    assert rest.amount == 8_600
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe_client.v1.refunds.create({"payment_intent": payment, "amount": 1})
    assert err.value.code == "charge_already_refunded"


def test_refund_refusals(stripe_client: stripe.StripeClient, sandbox_control: SandboxControl) -> None:
    payment = _seed(sandbox_control, 1_000)
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe_client.v1.refunds.create({"payment_intent": payment, "amount": 1_001})
    assert (err.value.http_status, err.value.code, err.value.param) == (
        400,
        "amount_too_large",
        "amount",
    )
    authorised = _seed(sandbox_control, 1_000, captured=False)
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe_client.v1.refunds.create({"payment_intent": authorised})
    assert err.value.http_status == 400
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe_client.v1.refunds.create({"amount": 1})
    assert err.value.code == "parameter_missing"
    assert sandbox_control.stripe_refunds(payment) == []


def test_same_idempotency_key_replays_the_first_refund(
    stripe_client: stripe.StripeClient, sandbox_control: SandboxControl
) -> None:
    payment = _seed(sandbox_control)
    key = unique("key")
    params = {"payment_intent": payment, "amount": 700, "metadata": {"refund_request_id": "r"}}
    first = stripe_client.v1.refunds.create(params, options={"idempotency_key": key})  # type: ignore[arg-type]
    second = stripe_client.v1.refunds.create(params, options={"idempotency_key": key})  # type: ignore[arg-type]
    assert second.id == first.id
    assert _header(first, "Idempotent-Replayed") is None
    assert _header(second, "Idempotent-Replayed") == "true"
    assert _header(second, "Request-Id") != _header(first, "Request-Id")
    refunds = sandbox_control.stripe_refunds(payment)
    assert [(r["id"], r["idempotency_key"]) for r in refunds] == [(first.id, key)]

    with pytest.raises(stripe.IdempotencyError) as err:
        stripe_client.v1.refunds.create(
            {**params, "amount": 701},  # type: ignore[arg-type]
            options={"idempotency_key": key},
        )
    assert err.value.http_status == 400
    assert len(sandbox_control.stripe_refunds(payment)) == 1


def test_validation_failure_stores_nothing_under_the_key(
    stripe_client: stripe.StripeClient, sandbox_control: SandboxControl
) -> None:
    payment = _seed(sandbox_control)
    key = unique("key")
    with pytest.raises(stripe.InvalidRequestError):
        bogus: Any = {"payment_intent": payment, "amount": 5, "bogus": "x"}
        stripe_client.v1.refunds.create(bogus, options={"idempotency_key": key})
    refund = stripe_client.v1.refunds.create(
        {"payment_intent": payment, "amount": 5}, options={"idempotency_key": key}
    )
    assert _header(refund, "Idempotent-Replayed") is None


# faults -----------------------------------------------------------------------------------------


def test_error_500_stores_nothing(
    stripe_client: stripe.StripeClient, sandbox_control: SandboxControl
) -> None:
    payment = _seed(sandbox_control)
    sandbox_control.inject_fault("error_500", path_prefix="/v1/refunds", method="POST")
    params = {"payment_intent": payment, "amount": 100}
    key = unique("key")
    with pytest.raises(stripe.APIError) as err:
        stripe_client.v1.refunds.create(params, options={"idempotency_key": key})  # type: ignore[arg-type]
    assert err.value.http_status == 500
    refund = stripe_client.v1.refunds.create(params, options={"idempotency_key": key})  # type: ignore[arg-type]
    assert _header(refund, "Idempotent-Replayed") is None
    assert len(sandbox_control.stripe_refunds(payment)) == 1


def test_stored_500_is_replayed_for_the_key(
    stripe_client: stripe.StripeClient, sandbox_control: SandboxControl
) -> None:
    payment = _seed(sandbox_control)
    sandbox_control.inject_fault("error_500_stored", path_prefix="/v1/refunds", method="POST")
    params = {"payment_intent": payment, "amount": 100}
    key = unique("key")
    with pytest.raises(stripe.APIError) as first:
        stripe_client.v1.refunds.create(params, options={"idempotency_key": key})  # type: ignore[arg-type]
    with pytest.raises(stripe.APIError) as again:
        stripe_client.v1.refunds.create(params, options={"idempotency_key": key})  # type: ignore[arg-type]
    assert first.value.http_status == again.value.http_status == 500
    assert (first.value.headers or {}).get("Idempotent-Replayed") is None
    assert (again.value.headers or {}).get("Idempotent-Replayed") == "true"
    assert sandbox_control.stripe_refunds(payment) == []
    fresh = stripe_client.v1.refunds.create(params, options={"idempotency_key": unique("key")})  # type: ignore[arg-type]
    assert fresh.status == "succeeded"


def test_lost_response_still_refunds_and_the_key_returns_it(
    stripe_client: stripe.StripeClient, sandbox_control: SandboxControl
) -> None:
    payment = _seed(sandbox_control)
    sandbox_control.inject_fault("lose_response", path_prefix="/v1/refunds", method="POST")
    params = {"payment_intent": payment, "amount": 300}
    key = unique("key")
    with pytest.raises(stripe.APIConnectionError):
        stripe_client.v1.refunds.create(params, options={"idempotency_key": key})  # type: ignore[arg-type]
    [made] = sandbox_control.stripe_refunds(payment)
    retried = stripe_client.v1.refunds.create(params, options={"idempotency_key": key})  # type: ignore[arg-type]
    assert retried.id == made["id"]
    assert _header(retried, "Idempotent-Replayed") == "true"
    assert len(sandbox_control.stripe_refunds(payment)) == 1


def test_rate_limit_answers_429_with_retry_after(
    stripe_client: stripe.StripeClient, sandbox_control: SandboxControl
) -> None:
    sandbox_control.inject_fault("rate_limit", path_prefix="/v1/payment_intents", retry_after=3)
    with pytest.raises(stripe.RateLimitError) as err:
        stripe_client.v1.payment_intents.retrieve("pi_anything")
    assert err.value.http_status == 429
    assert (err.value.headers or {}).get("Retry-After") == "3"


def test_concurrent_use_of_a_key_is_409_while_the_first_executes(
    stripe_client: stripe.StripeClient, sandbox_control: SandboxControl
) -> None:
    payment = _seed(sandbox_control)
    sandbox_control.inject_fault("slow", path_prefix="/v1/refunds", method="POST", delay_ms=600)
    params = {"payment_intent": payment, "amount": 100}
    key = unique("key")
    results: list[str] = []
    first = threading.Thread(
        target=lambda: results.append(
            stripe_client.v1.refunds.create(params, options={"idempotency_key": key}).id  # type: ignore[arg-type]
        )
    )
    first.start()
    eventually(lambda: key in sandbox_control.stats()["executing"])
    with pytest.raises(stripe.APIError) as err:
        stripe_client.v1.refunds.create(params, options={"idempotency_key": key})  # type: ignore[arg-type]
    assert err.value.http_status == 409
    assert err.value.error is not None and err.value.error.code == "idempotency_key_in_use"
    first.join(5)
    assert [r["id"] for r in sandbox_control.stripe_refunds(payment)] == results


def test_stats_count_calls_and_replays(
    stripe_client: stripe.StripeClient, sandbox_control: SandboxControl
) -> None:
    payment = _seed(sandbox_control)
    before = sandbox_control.stats()
    key = unique("key")
    for _ in range(3):
        stripe_client.v1.refunds.create(
            {"payment_intent": payment, "amount": 10}, options={"idempotency_key": key}
        )
    after = sandbox_control.stats()
    calls = after["calls"]["POST /v1/refunds"] - before["calls"].get("POST /v1/refunds", 0)
    replays = after["replays"]["POST /v1/refunds"] - before["replays"].get("POST /v1/refunds", 0)
    assert (calls, replays) == (3, 2)


# settlement and webhooks ------------------------------------------------------------------------


def test_pending_refund_settles_and_sends_signed_webhooks(
    stripe_client: stripe.StripeClient,
    sandbox_control: SandboxControl,
    webhook_receiver: WebhookReceiver,
) -> None:
    payment = _seed(sandbox_control, refund_behavior="pending_then_succeeded", settle_after_ms=100)
    refund = stripe_client.v1.refunds.create({"payment_intent": payment, "amount": 500})
    assert refund.status == "pending"

    eventually(lambda: stripe_client.v1.refunds.retrieve(refund.id).status == "succeeded")
    deliveries = eventually(
        lambda: len(webhook_receiver.matching(refund.id)) == 2 and webhook_receiver.matching(refund.id)
    )
    events = [
        stripe.Webhook.construct_event(d.body, d.headers["Stripe-Signature"], WEBHOOK_SECRET)
        for d in deliveries
    ]
    assert [e.type for e in events] == ["refund.created", "refund.updated"]
    assert [e.data.object["status"] for e in events] == ["pending", "succeeded"]
    assert all(e.id.startswith("evt_") and e.livemode is False for e in events)
    ids = {event.id for event in events}

    def recorded() -> list[tuple[str, int]]:
        return sorted((d["type"], d["http_status"]) for d in sandbox_control.events() if d["event_id"] in ids)

    eventually(lambda: len(recorded()) == 2)
    assert recorded() == [("refund.created", 200), ("refund.updated", 200)]


def test_failed_refund_gives_the_amount_back(
    stripe_client: stripe.StripeClient,
    sandbox_control: SandboxControl,
    webhook_receiver: WebhookReceiver,
) -> None:
    payment = _seed(sandbox_control, 1_000, refund_behavior="pending_then_failed", settle_after_ms=50)
    refund = stripe_client.v1.refunds.create({"payment_intent": payment})
    assert (refund.status, refund.amount) == ("pending", 1_000)

    failed = eventually(lambda: (r := stripe_client.v1.refunds.retrieve(refund.id)).status == "failed" and r)
    assert failed.failure_reason == "insufficient_funds"
    intent = stripe_client.v1.payment_intents.retrieve(payment, {"expand": ["latest_charge"]})
    assert isinstance(intent.latest_charge, stripe.Charge)
    assert intent.latest_charge.amount_refunded == 0
    eventually(lambda: any(b"refund.failed" in d.body for d in webhook_receiver.matching(refund.id)))


def test_pending_refund_settled_through_the_control_api(
    stripe_client: stripe.StripeClient,
    sandbox_control: SandboxControl,
    webhook_receiver: WebhookReceiver,
) -> None:
    payment = _seed(sandbox_control, refund_behavior="pending")
    refund = stripe_client.v1.refunds.create({"payment_intent": payment, "amount": 250})
    settled = sandbox_control.settle_stripe_refund(refund.id, "failed", "declined")
    assert (settled["status"], settled["failure_reason"]) == ("failed", "declined")
    with pytest.raises(httpx.HTTPStatusError):
        sandbox_control.settle_stripe_refund(refund.id, "succeeded")
    eventually(lambda: any(b"refund.failed" in d.body for d in webhook_receiver.matching(refund.id)))


def test_succeeded_refund_fails_late_through_the_control_api(
    stripe_client: stripe.StripeClient,
    sandbox_control: SandboxControl,
    webhook_receiver: WebhookReceiver,
) -> None:
    payment = _seed(sandbox_control, 1_000)
    refund = stripe_client.v1.refunds.create({"payment_intent": payment, "amount": 400})
    assert refund.status == "succeeded"
    failed = sandbox_control.fail_stripe_refund_late(refund.id)
    assert (failed["status"], failed["failure_reason"]) == ("failed", "lost_or_stolen_card")
    assert stripe_client.v1.refunds.retrieve(refund.id).status == "failed"
    intent = stripe_client.v1.payment_intents.retrieve(payment, {"expand": ["latest_charge"]})
    assert isinstance(intent.latest_charge, stripe.Charge)
    assert intent.latest_charge.amount_refunded == 0
    with pytest.raises(httpx.HTTPStatusError):  # only once, and only a succeeded refund
        sandbox_control.fail_stripe_refund_late(refund.id)
    deliveries = eventually(
        lambda: len(webhook_receiver.matching(refund.id)) == 2 and webhook_receiver.matching(refund.id)
    )
    events = [
        stripe.Webhook.construct_event(d.body, d.headers["Stripe-Signature"], WEBHOOK_SECRET)
        for d in deliveries
    ]
    assert [e.type for e in events] == ["refund.created", "refund.failed"]
    assert events[1].data.object["status"] == "failed"


def test_webhook_delivery_is_retried_until_accepted(
    stripe_client: stripe.StripeClient,
    sandbox_control: SandboxControl,
    webhook_receiver: WebhookReceiver,
) -> None:
    payment = _seed(sandbox_control)
    tag = unique("tag")  # in the refund's events only (charge.refunded names the payment too)
    webhook_receiver.fail(tag, 2)
    refund = stripe_client.v1.refunds.create(
        {"payment_intent": payment, "amount": 10, "metadata": {"tag": tag}}
    )
    [event] = [e for e in sandbox_control.webhook_events() if refund.id in str(e["payload"])]

    def attempts() -> list[int | None]:
        return [d["http_status"] for d in sandbox_control.events() if d["event_id"] == event["id"]]

    eventually(lambda: len(attempts()) == 3)
    assert attempts() == [500, 500, 200]
    assert len(webhook_receiver.matching(refund.id)) == 1


# persistence ------------------------------------------------------------------------------------


def test_restart_keeps_payments_refunds_keys_and_pending_settlements(
    tmp_path: Path, webhook_receiver: WebhookReceiver
) -> None:
    state = tmp_path / "state.db"

    def client(server: SandboxServer) -> stripe.StripeClient:
        return stripe.StripeClient(API_KEY, base_addresses={"api": server.url}, max_network_retries=0)

    with SandboxServer(state_path=state, stripe_api_key=API_KEY) as first:
        control = SandboxControl(first.url)
        payment = control.seed_stripe_payment(amount=5_000, currency="EUR")
        slow = control.seed_stripe_payment(
            amount=5_000, currency="EUR", refund_behavior="pending_then_succeeded", settle_after_ms=800
        )
        key = unique("key")
        params = {"payment_intent": payment, "amount": 1_200}
        made = client(first).v1.refunds.create(params, options={"idempotency_key": key})  # type: ignore[arg-type]
        pending = client(first).v1.refunds.create({"payment_intent": slow, "amount": 100})
        control.close()

    with SandboxServer(
        state_path=state,
        stripe_api_key=API_KEY,
        stripe_webhook_secret=WEBHOOK_SECRET,
        stripe_webhook_url=webhook_receiver.url,
    ) as second:
        sdk = client(second)
        assert sdk.v1.payment_intents.retrieve(payment).status == "succeeded"
        assert sdk.v1.refunds.retrieve(made.id).amount == 1_200
        replay = sdk.v1.refunds.create(params, options={"idempotency_key": key})  # type: ignore[arg-type]
        assert replay.id == made.id and _header(replay, "Idempotent-Replayed") == "true"
        eventually(lambda: sdk.v1.refunds.retrieve(pending.id).status == "succeeded")
        eventually(lambda: webhook_receiver.matching(pending.id) or None)  # [] is not yet


# seeding and encoding ---------------------------------------------------------------------------


def test_demo_seed_is_deterministic_and_idempotent(tmp_path: Path) -> None:
    with SandboxServer(state_path=tmp_path / "demo.db") as server:
        assert seed_demo_payments(server) == [seed.id for seed in DEMO_PAYMENTS]
        assert seed_demo_payments(server) == []
        sdk = stripe.StripeClient(
            "sk_test_sandbox", base_addresses={"api": server.url}, max_network_retries=0
        )
        authorised = sdk.v1.payment_intents.retrieve("pi_demo_eur_authorized")
        assert (authorised.status, authorised.amount) == ("requires_capture", 8_000)
        jpy = sdk.v1.payment_intents.retrieve("pi_demo_jpy", {"expand": ["latest_charge"]})
        assert (jpy.currency, jpy.amount_received) == ("jpy", 12_000)


def test_form_decoding_matches_the_sdk_encoding() -> None:
    assert parse_form(
        "amount=5&metadata[refund_request_id]=r-1&metadata[0]=x&expand[0]=a&expand[1]=b&ids[]=p"
    ) == {
        "amount": "5",
        "metadata": {"refund_request_id": "r-1", "0": "x"},
        "expand": ["a", "b"],
        "ids": ["p"],
    }


def test_control_api_rejects_bad_input(sandbox_control: SandboxControl) -> None:
    with pytest.raises(httpx.HTTPStatusError) as err:
        sandbox_control.inject_fault("explode")  # type: ignore[arg-type]
    assert err.value.response.status_code == 400
    with pytest.raises(httpx.HTTPStatusError):
        sandbox_control.seed_stripe_payment(amount=-1, currency="EUR")
    assert sandbox_control.healthy()
