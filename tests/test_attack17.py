"""Attack 17: API clients' budget and early fraud warnings."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest
import stripe
from pydantic import ValidationError
from sqlalchemy import select
from sqlmodel import col
from typer.testing import CliRunner

from adapters.db import clients, refunds
from adapters.db.engine import Database
from adapters.db.models import ApiClientRow, ClientReservationRow, RefundRow
from domain.clients import Client, parse_budget, parse_maxima
from domain.contracts import FraudWarningPolicy
from domain.fraud_warnings import request_id_for
from domain.money import Money
from domain.policy_file import PolicyError
from domain.status import ErrorCode
from domain.warning_savings import savings
from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack
from tests.flows import FINAL, cli, mcp_over_http, post, wait_for_status
from tests.helpers import bearer, made_client, refund_body, unique
from workers.cli import app
from workers.merchants import load_merchants
from workers.psp_wiring.stripe import SANDBOX_STRIPE_WEBHOOK_SECRET
from workers.service import refund_requests
from workers.service.errors import ApiError
from workers.settings import Settings


def _client(merchant: str, *, max_per_refund: str = "50.00", budget: str = "EUR:100.00") -> Client:
    return Client(
        name=unique("atk17"),
        merchant_id=merchant,
        reasons=("damaged",),
        maxima=parse_maxima([max_per_refund], (parse_budget(budget),)),
        budgets=(parse_budget(budget),),
    )


def _reserved(database: Database, name: str) -> list[tuple[int, str]]:
    with database.transaction() as session:
        query = select(ClientReservationRow).where(col(ClientReservationRow.client) == name)
        return [(row.amount, row.state) for row in session.execute(query).scalars()]


def test_the_same_request_id_with_a_larger_amount_does_not_ride_a_smaller_reservation(db: Database) -> None:
    """r1 reserved 10.00; r1 again with 50.00 (a twin racing to start first) must not pass as reserved."""
    client = _client("m", budget="EUR:100.00")
    made_client(db, client)
    now, rid = datetime.now(UTC), unique("atk17-r")
    with db.transaction() as session:
        assert clients.reserve(session, client, rid, Money(value=1_000, currency="EUR"), now).held is None
        twin = clients.reserve(session, client, rid, Money(value=5_000, currency="EUR"), now)
    assert twin.held is not None, "a 50.00 refund would run on a 10.00 reservation"


async def test_a_twin_request_that_loses_the_start_race_does_not_release_the_winners_budget(
    stack: Stack, sandbox: SandboxControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same request sent twice at once: the first reserves, the second (seeing the reservation)
    starts the workflow, the first finds it started and gives the reservation back: the refund then
    moves money that no budget counts, so a client can spend without limit."""
    client = _client(stack.settings.merchant_id)
    key = made_client(stack.database, client)
    payment = sandbox.seed_stripe_payment(amount=10_000, currency="EUR")
    request_id = unique("atk17-twin")
    real = refund_requests.start_refund
    first_in, second_done = asyncio.Event(), asyncio.Event()
    calls = 0

    async def racing(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 1:
            first_in.set()
            await second_done.wait()
            return await real(*args, **kwargs)
        try:
            return await real(*args, **kwargs)
        finally:
            second_done.set()

    monkeypatch.setattr(refund_requests, "start_refund", racing)
    body = refund_body(request_id, payment, amount=5_000)
    first = asyncio.create_task(post(stack, body, bearer(key)))
    await first_in.wait()
    second = await post(stack, body, bearer(key))
    assert second[0] == 202, second
    assert (await first)[0] == 200
    view = await wait_for_status(stack, request_id, FINAL)
    assert view["status"] == "succeeded", view
    assert _reserved(stack.database, client.name) == [(5_000, "reserved")]


async def test_a_start_that_timed_out_after_starting_keeps_its_reservation(
    stack: Stack, sandbox: SandboxControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Temporal started the workflow but the answer was lost (deadline): intake must not give the
    budget back, the refund runs and moves money."""
    client = _client(stack.settings.merchant_id)
    key = made_client(stack.database, client)
    payment = sandbox.seed_stripe_payment(amount=10_000, currency="EUR")
    request_id = unique("atk17-lost")
    real = refund_requests.start_refund

    async def lost_answer(*args, **kwargs):  # type: ignore[no-untyped-def]
        await real(*args, **kwargs)
        raise ApiError(503, ErrorCode.TEMPORAL_UNAVAILABLE, "deadline exceeded")

    monkeypatch.setattr(refund_requests, "start_refund", lost_answer)
    status, _ = await post(stack, refund_body(request_id, payment, amount=5_000), bearer(key))
    assert status == 503
    monkeypatch.setattr(refund_requests, "start_refund", real)
    view = await wait_for_status(stack, request_id, FINAL)
    assert view["status"] == "succeeded", view
    assert _reserved(stack.database, client.name) == [(5_000, "reserved")]


async def test_a_client_reading_its_refund_back_does_not_learn_who_decided_or_the_risk_rules(
    stack: Stack, sandbox: SandboxControl
) -> None:
    """A client reads its own refund without the trail of who decided: the reviewer's name (and
    reason) and the merchant's risk rules and features are not in the view either."""
    client = _client(stack.settings.merchant_id, max_per_refund="10.00")
    key = made_client(stack.database, client)
    payment = sandbox.seed_stripe_payment(amount=10_000, currency="EUR")
    request_id = unique("atk17-seen")
    assert (await post(stack, refund_body(request_id, payment, amount=2_000), bearer(key)))[0] == 202
    await wait_for_status(stack, request_id, {"awaiting_review"})
    approved = await stack.http.post(
        f"/v1/refunds/{request_id}/approve",
        json={"reason": "alice checked the customer's history"},
        headers={"Authorization": "Bearer alice-token"},
    )
    assert approved.status_code == 200, approved.text
    await wait_for_status(stack, request_id, FINAL)
    seen = await stack.http.get(f"/v1/refunds/{request_id}", headers=bearer(key))
    assert seen.status_code == 200 and seen.json()["status"] == "succeeded", seen.text
    assert "alice" not in seen.text, seen.json()
    view = seen.json()
    assert (view.get("review"), view.get("approvals"), view.get("risk")) == (None, [], None), view


@pytest.mark.parametrize(
    ("max_per_refund", "budget"),
    [
        ("50.00", "EUR:1e30"),  # past any BIGINT
        ("50.00", "EUR:92233720368547758.08"),  # 2^63 minor units: just past it
        ("1" + "0" * 40, "EUR:200.00"),  # past the column's 32 characters
        ("1." + "0" * 40, "EUR:200.00"),
    ],
)
async def test_the_cli_refuses_budgets_and_maximums_the_database_cannot_keep(
    stack: Stack, max_per_refund: str, budget: str
) -> None:
    """An operator's mistyped amount is an invalid client (exit 2, nothing kept), never a traceback
    from the database refusing what the CLI took."""
    name = unique("atk17-huge")
    made = await cli(
        stack,
        *("client", "create", name, "--reasons", "damaged", "--max-per-refund", max_per_refund),
        *("--daily-budget", budget),
    )
    assert made.returncode == 2 and "invalid_client" in made.stderr, made.stdout + made.stderr[-2000:]
    with stack.database.transaction() as session:
        assert session.get(ApiClientRow, name) is None


async def test_a_resend_racing_its_refunds_failure_does_not_take_the_budget_back_for_good(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refund failed and gave its budget back; the client's resend of it read the lasting record
    a moment before the failure was written (injected: the read answers none). It must not reserve
    the budget again: nothing would ever release it, the refund is over."""
    client = _client(stack.settings.merchant_id)
    key = made_client(stack.database, client)
    request_id = unique("atk17-late")
    body = refund_body(request_id, "pi_unknown_atk17", amount=1_000)
    assert (await post(stack, body, bearer(key)))[0] == 202
    assert (await wait_for_status(stack, request_id, FINAL))["status"] == "failed"
    assert _reserved(stack.database, client.name) == [(1_000, "released")]
    monkeypatch.setattr(refund_requests, "settled_row", lambda services, request_id: None)
    status, payload = await post(stack, body, bearer(key))
    assert (status, payload["status"]) == (200, "failed"), payload
    assert _reserved(stack.database, client.name) == [(1_000, "released")]


async def test_a_warning_id_ending_in_a_newline_is_refunded_under_a_hashed_id(
    stack: Stack, sandbox: SandboxControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`re.match(r"^...$")` takes "issfr_x\\n" as a plain id (`$` matches before a final newline):
    the refund's request then fails validation, the webhook answers 500 and Stripe redelivers for
    days. Such an id is hashed like any other that is not a request id."""
    merchant = stack.settings.merchant_id
    policy = stack.services.policies[merchant]
    refunding = FraudWarningPolicy(mode="refund", refund_up_to_major=200)
    monkeypatch.setitem(
        stack.services.policies, merchant, policy.model_copy(update={"early_fraud_warnings": refunding})
    )
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    warning_id = f"{unique('issfr_')}\n"
    event = {
        "id": unique("evt_atk17"),
        "object": "event",
        "type": "radar.early_fraud_warning.created",
        "data": {
            "object": {
                "id": warning_id,
                "object": "radar.early_fraud_warning",
                "actionable": True,
                "payment_intent": payment,
                "fraud_type": "made_with_stolen_card",
            }
        },
    }
    payload = json.dumps(event)
    header = stripe.WebhookSignature.generate_signature_header(
        payload, SANDBOX_STRIPE_WEBHOOK_SECRET, timestamp=int(time.time())
    )
    response = await stack.http.post(
        "/webhooks/stripe",
        content=payload,
        headers={"Stripe-Signature": header, "content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["Refunds-Signalled"] == "1"
    request_id = request_id_for("stripe", warning_id)
    assert "-sha-" in request_id
    assert (await wait_for_status(stack, request_id, FINAL))["status"] == "succeeded"


async def test_a_client_of_a_merchant_no_longer_configured_reads_nothing(stack: Stack) -> None:
    """The merchant was taken out of the merchants file (its reviewers' tokens went with it): its
    clients' keys are refused for requests, and for reads too."""
    key = made_client(stack.database, _client(unique("atk17-gone")))
    body = refund_body(unique("atk17-gone-r"), "pi_any", amount=100)
    assert (await post(stack, body, bearer(key)))[0] == 401
    for path in ("/v1/client", "/v1/client/refunds", "/v1/refunds/anything"):
        answer = await stack.http.get(path, headers=bearer(key))
        assert (answer.status_code, answer.json()["error"]["code"]) == (401, "unauthorized"), path


async def test_resending_a_request_held_for_its_budget_reserves_nothing_once_the_budget_frees(
    stack: Stack, sandbox: SandboxControl
) -> None:
    """r2 was held for a human at intake (over the budget r1 had reserved); r1 is rejected and gives
    its budget back; r2 sent again is the same refund, still a human's to decide: it must not take
    budget now (a human's decision spends none, and the client's standing would show it spent)."""
    client = _client(stack.settings.merchant_id, max_per_refund="5000", budget="EUR:2000.00")
    key = made_client(stack.database, client)
    payment = sandbox.seed_stripe_payment(amount=300_000, currency="EUR")
    r1, r2 = unique("atk17-big"), unique("atk17-held")
    assert (await post(stack, refund_body(r1, payment, amount=150_000), bearer(key)))[0] == 202
    held = refund_body(r2, payment, amount=60_000)
    status, payload = await post(stack, held, bearer(key))
    assert (status, [h["code"] for h in payload["held_for"]]) == (202, ["client_budget"]), payload
    await wait_for_status(stack, r1, {"awaiting_review"})  # the risk rules' own review: 1,500.00 EUR
    rejected = await stack.http.post(
        f"/v1/refunds/{r1}/reject", json={"reason": "no"}, headers={"Authorization": "Bearer alice-token"}
    )
    assert rejected.status_code == 200, rejected.text
    await wait_for_status(stack, r1, {"rejected"})
    assert _reserved(stack.database, client.name) == [(150_000, "released")]
    status, payload = await post(stack, held, bearer(key))
    assert (status, payload["status"]) == (200, "awaiting_review"), payload
    assert _reserved(stack.database, client.name) == [(150_000, "released")]
    standing = (await stack.http.get("/v1/client", headers=bearer(key))).json()
    assert standing["budgets"][0]["left"] == {"value": 200_000, "currency": "EUR"}


async def test_no_client_can_take_the_workflow_id_of_its_refunds_late_failure_first(
    stack: Stack, sandbox: SandboxControl
) -> None:
    """A default merchant's request id is its workflow's id without `refund-`: `late-failure-<r1>-
    <re_...>` (the PSP refund id a client reads back) is the workflow that would reverse r1's books
    when the PSP fails it late. Taken first, the failure finds it "already started": r1 stays
    succeeded in the books, its budget spent. Ids of the product's own workflows are refused."""
    client = _client(stack.settings.merchant_id)
    key = made_client(stack.database, client)
    payment = sandbox.seed_stripe_payment(amount=10_000, currency="EUR")
    r1 = unique("atk17-paid")
    assert (await post(stack, refund_body(r1, payment, amount=1_000), bearer(key)))[0] == 202
    view = await wait_for_status(stack, r1, FINAL)
    assert view["status"] == "succeeded", view
    psp_refund = (await stack.http.get(f"/v1/refunds/{r1}", headers=bearer(key))).json()["psp_refund_id"]
    for taken in (f"late-failure-{r1}-{psp_refund}", f"external-stripe-{psp_refund}"):
        status, payload = await post(stack, refund_body(taken, payment, amount=100), bearer(key))
        assert (status, payload["error"]["details"][0]["loc"]) == (422, ["request_id"]), payload
    sandbox.fail_stripe_refund_late(psp_refund)  # the PSP itself fails it: the event is read back true
    failure = json.dumps(
        {
            "id": unique("evt_atk17"),
            "object": "event",
            "type": "refund.updated",
            "data": {
                "object": {
                    "id": psp_refund,
                    "object": "refund",
                    "status": "failed",
                    "amount": 1_000,
                    "currency": "eur",
                    "metadata": {"refund_request_id": r1},
                }
            },
        }
    )
    header = stripe.WebhookSignature.generate_signature_header(
        failure, SANDBOX_STRIPE_WEBHOOK_SECRET, timestamp=int(time.time())
    )
    delivered = await stack.http.post(
        "/webhooks/stripe", content=failure, headers={"Stripe-Signature": header}
    )
    assert delivered.status_code == 200, delivered.text
    assert (await wait_for_status(stack, r1, {"failed"}))["status"] == "failed"
    assert _reserved(stack.database, client.name) == [(1_000, "released")]


async def test_a_key_of_other_text_than_ascii_is_refused_at_the_mcp_gate_not_a_500(stack: Stack) -> None:
    """A header's bytes past ASCII read as text no key is: the gate passing it on to the service
    raised (httpx sends ASCII headers), a 500 with a traceback instead of the 401 any unknown key gets."""
    key = made_client(stack.database, _client(stack.settings.merchant_id))
    async with mcp_over_http(stack) as url, httpx.AsyncClient(timeout=30) as http:
        for odd in (f"Bearer {key}\xff".encode("latin-1"), "Bearer rfc_é".encode()):
            refused = await http.post(url, headers={"Authorization": odd}, json={})
            assert (refused.status_code, refused.json()["error"]["code"]) == (401, "unauthorized"), odd
        # the key itself still goes through the gate
        assert (await http.post(url, headers=bearer(key), json={})).status_code != 401


async def test_metrics_answer_while_a_migration_holds_the_refunds_table(stack: Stack) -> None:
    """/metrics reads what refunds on warnings saved from the refunds table at each scrape: while a
    migration holds that table (ALTER TABLE refunds takes an exclusive lock), the scrape hung with
    it, and Prometheus, timing out, lost every metric, the review queue's depth included."""
    if not stack.settings.database_url.startswith("postgresql"):
        pytest.skip("the lock is PostgreSQL's")
    with psycopg.connect(stack.settings.database_url.replace("+psycopg", "", 1)) as migration:
        migration.execute("LOCK TABLE refunds IN ACCESS EXCLUSIVE MODE")
        scraped = await stack.http.get("/metrics", timeout=8)
        migration.rollback()
    assert scraped.status_code == 200
    assert "refunds_review_queue_depth" in scraped.text


def test_what_warnings_saved_is_summed_by_the_database_not_read_a_row_per_refund(db: Database) -> None:
    """/metrics computes what refunds on warnings saved at every scrape: read a row per refund, 50,000
    such refunds cost the service 2 s of CPU on every scrape of every replica. The database sums them
    by merchant, status and currency, exactly as before: only ids starting `efw-` after the merchant's
    mark, in that case (SQLite's LIKE ignores it), those without an amount left out."""
    acme = unique("atk17-m")
    kept = [  # (request id, status, amount)
        *[(f"{acme}~efw-stripe-{n}", "succeeded", 1_000) for n in range(5)],
        (f"{acme}~efw-adyen-x", "failed", 700),
        (f"efw-stripe-{unique('legacy')}", "succeeded", 300),  # kept bare, before merchants had ids
        (f"{acme}~efw-stripe-none", "failed", None),
        (f"{acme}~EFW-stripe-1", "succeeded", 9_999),  # sent by the merchant: any other case is its own
        (f"{acme}~order-efw-1", "succeeded", 9_999),
    ]
    with db.transaction() as session:
        for request_id, status, amount in kept:
            session.add(
                RefundRow(
                    request_id=request_id,
                    provider="stripe",
                    payment_reference=unique("pi"),
                    order_id="o",
                    merchant=acme,
                    status=status,
                    method="refund",
                    amount=amount,
                    currency="EUR" if amount is not None else None,
                )
            )
    with db.transaction() as session:
        made = refunds.warning_refunds(session, "default", acme)
    assert len(made) == 2, made  # one per merchant, status and currency: never one per refund
    [line] = savings(made, {acme: {"EUR": 1_500}})
    assert (line.refunds, line.refunded, line.saved) == (6, 5_300, 9_000)


@pytest.mark.parametrize("port", ["99999", "-1"])
def test_refunds_mcp_refuses_a_port_no_socket_has_in_one_line(port: str) -> None:
    """It said it was listening, then died of an OverflowError's traceback."""
    result = CliRunner().invoke(app, ["mcp", "--http", "--port", port], env={"REFUNDS_ENVIRONMENT": "dev"})
    assert result.exit_code == 2, result.output
    assert "listening" not in result.output and "--port" in result.output


@pytest.mark.parametrize("merchant_id", ["acme\n", 'ac"me', "Acme", "", "a" * 65, "acme~x"])
def test_a_merchant_id_that_could_break_a_visibility_query_is_refused_in_settings_and_merchants_file(
    merchant_id: str, tmp_path: Path
) -> None:
    """A merchant id is quoted into visibility queries and names accounts and queues: only whole ids
    of the documented alphabet, in the settings as in the merchants file (a `$` let "acme\\n" by)."""
    with pytest.raises(ValidationError, match="not a merchant id"):
        Settings(merchant_id=merchant_id)
    path = tmp_path / "merchants.toml"
    path.write_text(f'[merchants.{json.dumps(merchant_id)}]\ninbound_webhook_secret = "s"\n')
    with pytest.raises(PolicyError, match="a lowercase id and a table are required"):
        load_merchants(path)
