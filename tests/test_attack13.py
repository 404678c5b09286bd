"""Adversarial review of issue 13 (input validation, unsafe defaults, per-merchant request ids), as a
forger, a replayer, a careless client and an unlucky operator: each test pins a weakness found (its
docstring says what it was), the last one an attack that was already refused."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from domain.reviewer_tokens import new_reviewer_entry, token_digest
from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack, repo_root, starter_for, worker_for
from tests.helpers import GLOBEX_SECRET, SAFE, merchants_file, refund_body, signed_for, signed_headers, unique
from workers.safety import start_problems
from workers.settings import DEV_REVIEWER_TOKEN, Settings

NO_PSP = "http://127.0.0.1:9"  # globex's Stripe account, never called by these tests


# ---- unsafe starts -------------------------------------------------------------------------------


def test_settings_that_cannot_be_loaded_are_refused_in_one_line_that_shows_no_secret() -> None:
    """Production without an inbound secret was a 65-line traceback, exit 1, whose last lines echoed
    the settings' values (REFUNDS_REVIEW_SIGNING_KEY among them) into the log."""
    signing_key = "a-review-signing-secret-nobody-may-see-0123"
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFUNDS_")}
    env |= {"REFUNDS_ENVIRONMENT": "production", "REFUNDS_REVIEW_SIGNING_KEY": signing_key}
    run = subprocess.run(
        [sys.executable, "-m", "workers.cli", "serve"],
        env=env,
        cwd=repo_root(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = run.stdout + run.stderr
    assert signing_key not in output and "nobody-may-see" not in output
    lines = output.strip().splitlines()  # every problem at once, a line each, no value shown
    assert run.returncode == 2 and all(line.startswith("unsafe_settings: REFUNDS_") for line in lines), output
    assert [line for line in lines if "REFUNDS_INBOUND_WEBHOOK_SECRET" in line] == [lines[0]], output


def _with_merchants(tmp_path: Path, text: str, **changes: str) -> str | None:
    """The one problem these merchants make, None when they make none."""
    path = tmp_path / "merchants.toml"
    path.write_text(text)
    problems = start_problems(Settings(**{**SAFE, **changes}, merchants_file=path))  # type: ignore[arg-type]
    assert len(problems) <= 1, problems
    return problems[0] if problems else None


def test_a_merchants_reviewers_may_not_accept_the_published_dev_token(tmp_path: Path) -> None:
    """Anyone could read and approve acme's refunds with the token printed in the README."""
    entry = f"ops:sha256:{token_digest(DEV_REVIEWER_TOKEN)}"
    problem = _with_merchants(
        tmp_path, f'[merchants.acme]\ninbound_webhook_secret = "acme-secret"\nreviewer_tokens = "{entry}"\n'
    )
    assert problem is not None and problem.startswith("merchant acme")


@pytest.mark.parametrize(
    "text",
    ids=["the default merchant's", "another merchant's"],
    argvalues=[
        # acme signs with the default merchant's secret: it starts the default merchant's refunds
        '[merchants.acme]\ninbound_webhook_secret = "a-real-inbound-secret"\n',
        # two merchants with one secret: each can sign as the other
        '[merchants.acme]\ninbound_webhook_secret = "shared"\n'
        '[merchants.globex]\ninbound_webhook_secret = "globex-new,shared"\n',
    ],
)
def test_no_two_merchants_share_an_inbound_secret(tmp_path: Path, text: str) -> None:
    problem = _with_merchants(tmp_path, text)
    assert problem is not None and "inbound_webhook_secret" in problem


def test_the_review_signing_key_is_no_merchants_request_secret(tmp_path: Path) -> None:
    """Refused for the default merchant's secret, but a merchant from the file could derive the
    service's decision key from its own secret."""
    key = "a-review-signing-secret-of-32-chars-or-more"
    problem = _with_merchants(tmp_path, f'[merchants.acme]\ninbound_webhook_secret = "{key}"\n')
    assert problem is not None and "REFUNDS_REVIEW_SIGNING_KEY" in problem


# ---- bodies the service took that the worker cannot read --------------------------------------


async def test_unauthenticated_garbage_at_the_adyen_webhook_is_a_400_never_a_500(stack: Stack) -> None:
    """No HMAC key needed: a lone surrogate (the hmacSignature, or any signed field) and deep nesting
    were unhandled errors."""
    item = {"eventCode": "REFUND", "pspReference": "psp1", "additionalData": {"hmacSignature": "abc"}}
    forged = [
        {
            "notificationItems": [
                {"NotificationRequestItem": {**item, "additionalData": {"hmacSignature": "\ud800"}}}
            ]
        },
        {"notificationItems": [{"NotificationRequestItem": {**item, "pspReference": "\udc00"}}]},
    ]
    bodies = [json.dumps(b).encode() for b in forged] + [b"[" * 100_000]
    for body in bodies:
        response = await stack.http.post("/webhooks/adyen", content=body)
        assert response.status_code == 400, response.text


def _plain(request_id: str) -> str:
    return refund_body(request_id, "pi_x", amount=100).decode()


SIGNED_BODIES = {
    "utf-16 with a BOM": lambda: _plain(unique("enc")).encode("utf-16"),  # a 500: the evidence is UTF-8
    "utf-16-le": lambda: _plain(unique("enc")).encode("utf-16-le"),  # 202, then signature_invalid
    "utf-8 with a BOM": lambda: _plain(unique("enc")).encode("utf-8-sig"),  # the same
    "a lone surrogate": lambda: refund_body(unique("sur"), "pi_x", amount=100, metadata={"\ud800": "x"}),
    "deep nesting": lambda: b"[" * 60_000,  # a 500
}


@pytest.mark.parametrize("what", SIGNED_BODIES)
async def test_a_signed_body_is_parsed_as_the_worker_parses_it(stack: Stack, what: str) -> None:
    """The service parsed with `json.loads`, the worker re-verifies with pydantic's parser: what only
    the first accepts was a 202 for a refund that then failed as `signature_invalid` (or a 500)."""
    body = SIGNED_BODIES[what]()
    response = await stack.http.post("/v1/refund-requests", content=body, headers=signed_headers(body))
    if response.status_code == 202:
        await stack.client.get_workflow_handle(response.json()["workflow_id"]).terminate("test")
    assert response.status_code in (400, 422), (what, response.status_code, response.text)


async def test_a_nul_in_a_signed_request_is_refused_not_stuck_in_validation(
    stack: Stack, sandbox: SandboxControl
) -> None:
    """PostgreSQL refuses NUL in text: the refund was accepted, then validated again and again, forever
    (its validation writes the audit and velocity rows); a receipt's SKU the same at restocking."""
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    body = refund_body(unique("nul"), payment, amount=100, customer_id="cus\u0000x")
    response = await stack.http.post("/v1/refund-requests", content=body, headers=signed_headers(body))
    if response.status_code == 202:
        await stack.client.get_workflow_handle(response.json()["workflow_id"]).terminate("test")
    assert response.status_code == 422, response.text
    line = {"sku": "sku\u0000", "received": 1, "sellable": 1}
    receipt = json.dumps({"receipt_id": "r1", "lines": [line], "request_id": "r-1"}).encode()
    posted = await stack.http.post(
        "/v1/refunds/r-1/goods-received", content=receipt, headers=signed_headers(receipt)
    )
    assert posted.status_code == 422, posted.text


async def test_reading_an_id_with_a_nul_is_a_404_not_a_500(stack: Stack) -> None:
    response = await stack.http.get("/v1/refunds/a%00b")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")


async def test_an_oversized_chunked_review_is_a_413(stack: Stack) -> None:
    """A body without Content-Length is cut off at the limit; where FastAPI reads it (a review's
    reason) the 413 became `400 There was an error parsing the body`."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b" " * 1024

    response = await stack.http.post(
        "/v1/refunds/whatever/approve",
        content=chunks(),
        headers={"Authorization": "Bearer alice-token", "content-type": "application/json"},
    )
    assert (response.status_code, response.json()["error"]["code"]) == (413, "request_too_large")


# ---- per-merchant request ids ------------------------------------------------------------------


async def test_a_merchants_reviewer_learns_nothing_of_another_merchants_refund_while_no_worker_answers(
    stack: Stack, tmp_path: Path
) -> None:
    """With the workers down, the default merchant's refund was a 503 to globex's reviewer where an
    id no one used is a 404: a merchant could probe another's request ids during an outage."""
    carol_token, carol_entry = new_reviewer_entry("carol")
    carol = {"Authorization": f"Bearer {carol_token}"}
    theirs = unique("theirs")
    body = refund_body(theirs, "pi_x", amount=100)
    starter = starter_for(stack, merchants_file=merchants_file(tmp_path, NO_PSP, carol_entry))
    async with starter as (_, http):  # no worker polls this starter's queue
        assert (
            await http.post("/v1/refund-requests", content=body, headers=signed_headers(body))
        ).status_code == 202
        try:
            read = await http.get(f"/v1/refunds/{theirs}", headers=carol)
            unused = await http.get(f"/v1/refunds/{unique('unused')}", headers=carol)
        finally:
            await stack.client.get_workflow_handle(f"refund-{theirs}").terminate("test")
    assert unused.status_code == 404
    assert (read.status_code, read.json()["error"]["code"]) == (404, "not_found")


async def test_two_identical_requests_of_a_merchant_at_once_start_one_workflow(
    stack: Stack, tmp_path: Path
) -> None:
    body = refund_body(unique("twice"), "pi_x", amount=100)
    starter = starter_for(stack, merchants_file=merchants_file(tmp_path, NO_PSP))
    async with starter as (settings, http), worker_for(stack, settings):
        sent = await asyncio.gather(
            *(
                http.post(
                    "/v1/refund-requests", content=body, headers=signed_for("globex", GLOBEX_SECRET, body)
                )
                for _ in range(4)
            )
        )
        ids = {r.json().get("workflow_id") for r in sent}
        for wf_id in ids - {None}:
            await stack.client.get_workflow_handle(wf_id).terminate("test")
    assert sorted(r.status_code for r in sent) == [200, 200, 200, 202], [r.text for r in sent]
    assert len(ids) == 1 and str(ids.pop()).startswith("refund-globex~")


async def test_a_resend_is_answered_while_no_worker_answers(stack: Stack) -> None:
    """The same request again is known by its workflow alone (nothing new starts): it was a 503
    `retry shortly` for as long as the workers were down, only because its status could not be read."""
    body = refund_body(unique("resend"), "pi_x", amount=100)
    async with starter_for(stack) as (_, http):  # no worker polls this starter's queue
        first = await http.post("/v1/refund-requests", content=body, headers=signed_headers(body))
        try:
            again = await http.post("/v1/refund-requests", content=body, headers=signed_headers(body))
        finally:
            await stack.client.get_workflow_handle(first.json()["workflow_id"]).terminate("test")
    assert (first.status_code, again.status_code) == (202, 200), again.text
    assert again.json()["workflow_id"] == first.json()["workflow_id"]


async def test_another_merchants_warehouse_cannot_name_a_refund_by_its_full_id(
    stack: Stack, tmp_path: Path
) -> None:
    """The default merchant's warehouse posts a receipt naming globex's refund by its full id."""
    request_id = unique("ret")
    sku = unique("sku")
    items = [{"sku": sku, "quantity": 1, "unit_amount": 100, "tax_amount": 0, "restock": True}]
    body = refund_body(request_id, "pi_x", amount=100, reason_code="changed_mind", items=items)
    starter = starter_for(stack, merchants_file=merchants_file(tmp_path, NO_PSP))
    async with starter as (_, http):
        started = await http.post(
            "/v1/refund-requests", content=body, headers=signed_for("globex", GLOBEX_SECRET, body)
        )
        full = f"globex~{request_id}"
        try:
            answers = []
            for named in (full, request_id):
                receipt = json.dumps(
                    {
                        "receipt_id": "r1",
                        "lines": [{"sku": sku, "received": 1, "sellable": 1}],
                        "request_id": named,
                    }
                ).encode()
                response = await http.post(
                    f"/v1/refunds/{named}/goods-received", content=receipt, headers=signed_headers(receipt)
                )
                answers.append(response.status_code)
        finally:
            await stack.client.get_workflow_handle(started.json()["workflow_id"]).terminate("test")
    assert answers == [404, 404]
