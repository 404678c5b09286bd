"""Early fraud warnings through the running product: Radar's and Adyen's warnings, sent signed by
the sandbox to the service, become refunds (or reviews, or records) as the merchant's policy says,
once whatever the redeliveries; a forged warning changes nothing."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.db import audit, holds, refunds
from domain.contracts import FraudWarningPolicy
from domain.status import Provider
from sandbox.adyen.control import AdyenSandboxControl
from sandbox.server import SandboxServer
from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack, free_port, starter_for, worker_for
from tests.deliveries import adyen_delivery, adyen_item, deliver, post
from tests.fixtures.merchants import fixture_globex_psps  # noqa: F401  (a fixture, used by name)
from tests.flows import assert_not_started, cli, known_adyen_payment, refund_through_pipeline, wait_for_status
from tests.helpers import decide, eventually, merchants_file, refund_body, signed_headers, unique
from workers.psp_wiring.stripe import SANDBOX_STRIPE_WEBHOOK_SECRET

REFUND_UP_TO = FraudWarningPolicy(
    mode="refund", refund_up_to_major=200, review_fraud_types=("misc",), chargeback_fees={"GBP": 1_500}
)
# the same rules as a policy file, for the CLI, which reads each merchant's policy as `serve` does
REFUND_UP_TO_FILE = (
    '[early_fraud_warnings]\nmode = "refund"\nrefund_up_to_major = 200\nreview_fraud_types = ["misc"]\n'
    'chargeback_fee = { GBP = "15.00" }\n'
)


@pytest.fixture
def refunding(stack: Stack) -> Iterator[None]:
    """The default merchant's policy refunds warnings up to 200.00 EUR (built in: it only records)."""
    policies = stack.services.policies
    merchant = stack.settings.merchant_id
    before = policies[merchant]
    policies[merchant] = before.model_copy(update={"early_fraud_warnings": REFUND_UP_TO})
    yield
    policies[merchant] = before


def trail(stack: Stack, request_id: str) -> list[audit.AuditEntry]:
    with stack.database.transaction() as session:
        return list(audit.trail(session, request_id))


async def stripe_event(sandbox: SandboxControl, warning_id: str) -> str:
    async def events() -> list[dict[str, Any]]:
        return [
            e
            for e in sandbox.webhook_events()
            if e["type"].startswith("radar.early_fraud_warning")
            and e["payload"]["data"]["object"]["id"] == warning_id
        ]

    [event] = await eventually(events, lambda found: len(found) == 1)
    return json.dumps(event["payload"])


async def test_a_stripe_warning_under_the_amount_is_refunded_once(
    stack: Stack, sandbox: SandboxControl, refunding: None
) -> None:
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    warning = sandbox.early_fraud_warning(payment)
    request_id = f"efw-stripe-{warning['id']}"

    done = await wait_for_status(stack, request_id, {"succeeded"})
    assert done["requested_by"] == f"psp:stripe:{warning['id']}"
    assert done["amount"] == {"value": 5_000, "currency": "EUR"}
    [refund] = sandbox.stripe_refunds(payment)
    assert refund["amount"] == 5_000 and refund["metadata"]["refund_request_id"] == request_id
    [taken] = [e for e in trail(stack, request_id) if e.step == "early_fraud_warning"]
    assert (taken.actor, taken.reason_code) == (f"psp:stripe:{warning['id']}", "refund")

    # the same event again, and Radar's update of the same warning: still one refund
    payload = await stripe_event(sandbox, warning["id"])
    for _ in range(2):
        status, _ = await deliver(stack, payload, SANDBOX_STRIPE_WEBHOOK_SECRET)
        assert status == 200
    sandbox.early_fraud_warning(payment, warning_id=warning["id"])

    async def updates_taken() -> int:
        return sum(e.step == "early_fraud_warning" for e in trail(stack, request_id))

    await eventually(updates_taken, lambda n: n == 2)
    assert len(sandbox.stripe_refunds(payment)) == 1
    update = trail(stack, request_id)[-1]
    assert (update.step, update.reason_code) == ("early_fraud_warning", "record")  # nothing left
    assert (await wait_for_status(stack, request_id, {"succeeded"}))["amount"] == done["amount"]

    metrics = (await stack.http.get("/metrics")).text
    assert 'refunds_early_fraud_warnings_total{outcome="refunded",source="stripe"}' in metrics


async def test_a_stripe_warning_above_the_amount_waits_for_a_human(
    stack: Stack, sandbox: SandboxControl, refunding: None
) -> None:
    payment = sandbox.seed_stripe_payment(amount=50_000, currency="EUR")
    warning = sandbox.early_fraud_warning(payment, fraud_type="card_never_received")
    request_id = f"efw-stripe-{warning['id']}"

    waiting = await wait_for_status(stack, request_id, {"awaiting_review"})
    assert waiting["requested_by"] == f"psp:stripe:{warning['id']}"
    [held] = [r for r in waiting["risk"]["reasons"] if r["code"] == "early_fraud_warning"]
    assert "above" in held["detail"] and warning["id"] in held["detail"]
    assert sandbox.stripe_refunds(payment) == []
    shown = (await cli(stack, "status", request_id)).stdout
    assert f"made on early fraud warning {warning['id']} (card_never_received), policy: review" in shown, (
        shown
    )
    queue = await cli(stack, "pending", "--json")
    row = next(row for row in json.loads(queue.stdout) if row["request_id"] == request_id)
    assert "early_fraud_warning" in row["reasons"], row
    assert row["requested_by"] == f"psp:stripe:{warning['id']}" and row["escalated"] is False, row


async def test_the_built_in_policy_records_a_warning_and_starts_nothing(
    stack: Stack, sandbox: SandboxControl
) -> None:
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    warning = sandbox.early_fraud_warning(payment)
    request_id = f"efw-stripe-{warning['id']}"

    async def recorded() -> list[audit.AuditEntry]:
        return trail(stack, request_id)

    [entry] = await eventually(recorded, lambda rows: len(rows) == 1)
    assert (entry.step, entry.reason_code) == ("early_fraud_warning", "record")
    assert entry.original_reference == payment
    await assert_not_started(stack, request_id)
    assert sandbox.stripe_refunds(payment) == []


async def test_an_adyen_notification_of_fraud_is_refunded_once(
    stack: Stack, adyen: AdyenSandboxControl, refunding: None
) -> None:
    reference = await known_adyen_payment(stack, adyen, 5_000)
    warning = adyen.fraud_notification(reference, reason="Card reported stolen")
    request_id = f"efw-adyen-{warning}"  # the notification's own pspReference names the warning

    done = await wait_for_status(stack, request_id, {"succeeded"})
    assert done["requested_by"] == f"psp:adyen:{warning}"
    [refund] = [m for m in adyen.modifications(reference) if m["kind"] == "refund"]
    assert refund["amount"] == 5_000

    [notification] = [n for n in adyen.notifications(reference) if n["event_code"] == "NOTIFICATION_OF_FRAUD"]
    replay = json.dumps(notification["payload"]).encode()
    for _ in range(2):
        response = await post(stack, "adyen", replay)
        assert (response.status_code, response.headers["Refunds-Signalled"]) == (200, "0")
    assert len([m for m in adyen.modifications(reference) if m["kind"] == "refund"]) == 1


async def test_a_dispute_decides_over_a_warning_before_it_and_stops_its_refund_after_it(
    stack: Stack, adyen: AdyenSandboxControl, refunding: None
) -> None:
    """Disputed first: the warning is recorded and nothing starts. Disputed while the warning's refund
    waits for review: the approval moves no money; ops decide, as for any disputed payment."""
    first = await known_adyen_payment(stack, adyen, 5_000)
    adyen.chargeback(first)
    await eventually(lambda: _held(stack, first), bool)
    warned = adyen.fraud_notification(first)

    async def recorded() -> list[audit.AuditEntry]:
        return trail(stack, f"efw-adyen-{warned}")

    [entry] = await eventually(recorded, lambda rows: len(rows) == 1)
    assert (entry.step, entry.reason_code) == ("early_fraud_warning", "record")
    await assert_not_started(stack, f"efw-adyen-{warned}")

    second = await known_adyen_payment(stack, adyen, 50_000)  # above 200.00: a human decides
    request_id = f"efw-adyen-{adyen.fraud_notification(second)}"
    await wait_for_status(stack, request_id, {"awaiting_review"})
    adyen.chargeback(second)
    await eventually(lambda: _held(stack, second), bool)
    approved = await decide(stack.http, request_id, "approve", "alice")
    assert approved.status_code == 200, approved.text
    stopped = await wait_for_status(stack, request_id, {"needs_attention"})
    assert stopped["failure_code"] == "payment_disputed"
    assert [m for m in adyen.modifications(second) if m["kind"] == "refund"] == []
    steps = [(e.step, e.reason_code) for e in trail(stack, request_id)]
    assert ("reservation_refused", "payment_disputed") in steps
    # ops decide the dispute is no reason to stop (it was lost, say): the refund goes on, once
    released = await cli(stack, "release-hold", "adyen", second, "--operator", "ops-ann")
    assert released.returncode == 0, released.stdout + released.stderr
    assert (await cli(stack, "retry", request_id, "--operator", "ops-ann")).returncode == 0
    await wait_for_status(stack, request_id, {"succeeded"})
    assert len([m for m in adyen.modifications(second) if m["kind"] == "refund"]) == 1


async def _held(stack: Stack, reference: str) -> bool:
    with stack.database.transaction() as session:
        return holds.held(session, Provider.ADYEN, reference) is not None


async def test_a_forged_warning_changes_nothing(
    stack: Stack, sandbox: SandboxControl, adyen: AdyenSandboxControl, refunding: None
) -> None:
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    forged = json.dumps(
        {
            "id": "evt_forged_efw",
            "object": "event",
            "type": "radar.early_fraud_warning.created",
            "data": {
                "object": {
                    "id": "issfr_forged",
                    "object": "radar.early_fraud_warning",
                    "actionable": True,
                    "payment_intent": payment,
                    "fraud_type": "made_with_stolen_card",
                }
            },
        }
    )
    status, body = await deliver(stack, forged, "whsec_not_the_sandboxes")
    assert (status, body["error"]["code"]) == (400, "signature_invalid")

    reference = await known_adyen_payment(stack, adyen, 5_000)
    item = adyen_item(reference, "", "00" * 32, eventCode="NOTIFICATION_OF_FRAUD")
    response = await post(stack, "adyen", adyen_delivery(item))
    assert (response.status_code, response.json()["error"]["code"]) == (400, "signature_invalid")

    for request_id in ("efw-stripe-issfr_forged", f"efw-adyen-{reference}"):
        await assert_not_started(stack, request_id)
        assert trail(stack, request_id) == []
    assert sandbox.stripe_refunds(payment) == []


async def test_no_merchant_can_take_a_warnings_request_id_first(stack: Stack) -> None:
    """Else the warning would find "its" refund already started, and refund nothing."""
    body = refund_body("efw-stripe-issfr_1", "pi_1", amount=100)
    response = await stack.http.post("/v1/refund-requests", content=body, headers=signed_headers(body))
    assert (response.status_code, response.json()["error"]["details"][0]["loc"]) == (422, ["request_id"])
    await assert_not_started(stack, "efw-stripe-issfr_1")


async def saved_on_warnings(stack: Stack, *args: str, **env: str) -> dict[tuple[str, str], dict[str, Any]]:
    done = await cli(stack, "fraud-warnings", "--json", *args, **env)
    assert done.returncode == 0, done.stdout + done.stderr
    return {(line["merchant"], line["currency"]): line for line in json.loads(done.stdout)}


async def test_refunds_on_warnings_report_the_chargeback_fees_they_saved(
    stack: Stack, sandbox: SandboxControl, refunding: None, tmp_path: Path
) -> None:
    """In pounds, which no other test refunds on warnings; compared before and after all the same,
    since the session's database holds every test's refunds."""
    policy = tmp_path / "policy.toml"
    policy.write_text('version = "savings-1"\n' + REFUND_UP_TO_FILE)
    mine = (stack.settings.merchant_id, "GBP")

    async def report() -> dict[str, Any]:
        lines = await saved_on_warnings(
            stack, "--merchant", stack.settings.merchant_id, REFUNDS_POLICY_FILE=str(policy)
        )
        nothing = {"value": 0, "currency": "GBP"}
        return lines.get(mine, {"refunds_on_warnings": 0, "refunded": nothing, "saved": nothing})

    before = await report()
    paid = sandbox.seed_stripe_payment(amount=4_000, currency="GBP")
    warning = sandbox.early_fraud_warning(paid)
    request_id = f"efw-stripe-{warning['id']}"
    await wait_for_status(stack, request_id, {"succeeded"})
    ordinary = await refund_through_pipeline(
        stack, sandbox.seed_stripe_payment(amount=7_000, currency="GBP"), amount=7_000, currency="GBP"
    )
    assert ordinary["status"] == "succeeded"

    # the Temporal UI finds it among the refunds made on warnings (docs/ops.md), and not the other
    async def on_warnings() -> list[str]:
        payments = f'"{paid}", "{ordinary["payment_reference"]}"'
        query = f'RefundRequestedBy STARTS_WITH "psp:" AND RefundPaymentReference IN ({payments})'
        return [execution.id async for execution in stack.client.list_workflows(query)]

    assert await eventually(on_warnings, bool) == [f"refund-{request_id}"]

    after = await report()
    assert after["refunds_on_warnings"] - before["refunds_on_warnings"] == 1  # not the ordinary one
    assert to_minor(after["refunded"]) - to_minor(before["refunded"]) == 4_000
    assert to_minor(after["saved"]) - to_minor(before["saved"]) == 1_500
    assert to_minor(after["chargebacks_would_have_cost"]) == to_minor(after["refunded"]) + to_minor(
        after["saved"]
    )
    assert after["fee_per_chargeback"] == {"value": 1_500, "currency": "GBP"}  # money, as every list
    metrics = (await stack.http.get("/metrics")).text
    labels = f'currency="GBP",merchant="{stack.settings.merchant_id}"'
    assert metric(metrics, f"refunds_refunded_on_warnings_minor{{{labels}}}") == to_minor(after["refunded"])
    assert metric(metrics, f"refunds_chargeback_fees_avoided_minor{{{labels}}}") == to_minor(after["saved"])

    # the PSP fails the refund afterwards: the chargeback may come after all, so nothing was saved
    [made] = sandbox.stripe_refunds(paid)
    sandbox.fail_stripe_refund_late(made["id"])

    async def settled() -> str | None:
        with stack.database.transaction() as session:
            row = refunds.get(session, request_id)
            return row.status if row else None

    await eventually(settled, lambda status: status == "failed")
    failed = await report()
    assert (failed["refunds_on_warnings"], failed["refunded"], failed["saved"]) == (
        before["refunds_on_warnings"],
        before["refunded"],
        before["saved"],
    )
    metrics = (await stack.http.get("/metrics")).text
    assert metric(metrics, f"refunds_refunded_on_warnings_minor{{{labels}}}") == to_minor(failed["refunded"])


async def test_another_merchants_warning_on_its_own_route_becomes_its_refund(
    stack: Stack, globex_psps: SandboxServer, tmp_path: Path
) -> None:
    """Radar on a merchant's own Stripe account posts to /webhooks/stripe/<merchant>: the refund is
    that merchant's, under its request ids and policy, refunded at its own account. The merchant has
    a name of its own here: its refund stays in the session's books, apart from other tests' globex."""
    merchant = unique("globex")
    port = free_port()
    globex_psps.set_stripe_webhook_url(f"http://127.0.0.1:{port}/webhooks/stripe/{merchant}")
    globex = SandboxControl(globex_psps.url)
    payment = globex.seed_stripe_payment(amount=5_000, currency="EUR")
    merchants = merchants_file(
        tmp_path, globex_psps.url, globex_policy=REFUND_UP_TO_FILE.replace("GBP", "EUR"), globex=merchant
    )

    starter = starter_for(stack, port=port, merchants_file=merchants)
    async with starter as (settings, http), worker_for(stack, settings):
        warning = globex.early_fraud_warning(payment)
        request_id = f"{merchant}~efw-stripe-{warning['id']}"

        async def view() -> dict[str, Any]:
            response = await http.get(f"/v1/refunds/{request_id}")
            return response.json() if response.status_code == 200 else {"status": None}

        done = await eventually(view, lambda v: v["status"] == "succeeded", timeout=30)

    assert (done["merchant_id"], done["requested_by"]) == (merchant, f"psp:stripe:{warning['id']}")
    assert done["amount"] == {"value": 5_000, "currency": "EUR"}
    [refund] = globex.stripe_refunds(payment)  # at the merchant's own account
    assert refund["metadata"]["refund_request_id"] == request_id
    [taken] = [e for e in trail(stack, request_id) if e.step == "early_fraud_warning"]
    assert (taken.actor, taken.reason_code) == (f"psp:stripe:{warning['id']}", "refund")
    await assert_not_started(stack, f"efw-stripe-{warning['id']}")  # never the default merchant's

    lines = await saved_on_warnings(stack, "--merchant", merchant, REFUNDS_MERCHANTS_FILE=str(merchants))
    assert lines == {
        (merchant, "EUR"): {
            "merchant": merchant,
            "currency": "EUR",
            "refunds_on_warnings": 1,
            "refunded": {"value": 5_000, "currency": "EUR"},
            "fee_per_chargeback": {"value": 1_500, "currency": "EUR"},
            "chargebacks_would_have_cost": {"value": 6_500, "currency": "EUR"},
            "saved": {"value": 1_500, "currency": "EUR"},
        }
    }


def to_minor(money: dict[str, Any]) -> int:
    assert money["currency"] == "GBP", money
    return int(money["value"])


def metric(text: str, sample: str) -> int:
    found = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.M)
    assert found, f"no {sample} in /metrics"
    value = found[1]
    assert value.endswith(".0"), value  # a gauge of minor units: integral
    return int(value.removesuffix(".0"))
