"""Test helpers that need no running product: polling with a deadline (never sleeping for a
condition), signing, bodies, signed workflow inputs, review decisions and rules, merchants files,
bookings straight into the ledger, safe production settings."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from adapters.db import clients, ledger
from adapters.db.engine import Database
from domain import identity, signature
from domain.allocation import AllocatedLine, Allocation
from domain.clients import Client as ApiClient
from domain.clients import new_key
from domain.contracts import RefundPolicy, RefundState, RefundWorkflowInput, ReviewInput, SignatureEvidence
from domain.naming import SEARCH_ATTRIBUTES
from domain.postings import Posting, cost_legs, payout_leg
from domain.requests import RefundRequest
from workers.binaries import find_binary
from workers.codec import new_key_entry
from workers.settings import Settings
from workflows.refund import RefundWorkflow

T = TypeVar("T")

INBOUND_SECRET = "test-inbound-secret"


async def eventually(
    probe: Callable[[], Awaitable[T]],
    until: Callable[[T], bool],
    *,
    timeout: float = 20.0,
    interval: float = 0.05,
) -> T:
    """Call `probe` until `until(result)` holds; fail with the last result at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if until(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {result!r}")
        await asyncio.sleep(interval)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def refund_body(
    request_id: str,
    payment_reference: str,
    *,
    amount: int | None = None,
    currency: str = "EUR",
    provider: str = "stripe",
    **extra: Any,
) -> bytes:
    body: dict[str, Any] = {
        "request_id": request_id,
        "provider": provider,
        "payment_reference": payment_reference,
        "reason_code": "damaged",
        "order_id": f"order-{request_id}",
        "customer_id": f"cus-{request_id}",  # one customer per request: no velocity across tests
        **extra,
    }
    if amount is not None:
        body["amount"] = {"value": amount, "currency": currency}
    return json.dumps(body, separators=(",", ":")).encode()


def signed_headers(body: bytes, secrets: list[str] | None = None, at: int | None = None) -> dict[str, str]:
    stamp = int(time.time()) if at is None else at
    return {
        "content-type": "application/json",
        "Refund-Signature": signature.sign(secrets or [INBOUND_SECRET], stamp, body),
    }


async def workflow_completed(client: Client, workflow_id: str) -> bool:
    """False until the workflow exists and has completed (a PSP's webhook may still be on its way)."""
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except RPCError:
        return False
    return description.status is WorkflowExecutionStatus.COMPLETED


def proven_review(
    settings: Settings, request_id: str, reviewer: str, verdict: str = "approve"
) -> ReviewInput:
    """A decision as the service makes it for a reviewer it authenticated: signed for this refund."""
    key = settings.decision_key()
    proof = identity.sign_decision(key, f"refund-{request_id}", verdict, reviewer, "")
    return ReviewInput(reviewer=reviewer, proof=proof)


@asynccontextmanager
async def local_temporal() -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's dev server, in memory, with our search attributes."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(find_binary("temporal")),
        search_attributes=SEARCH_ATTRIBUTES,
        data_converter=pydantic_data_converter,
        dev_server_log_level="error",
    )
    try:
        yield env
    finally:
        await env.shutdown()


@asynccontextmanager
async def time_skipping_temporal() -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's time-skipping test server, with our search attributes: timers of days pass at once."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(find_binary("temporal-test-server")),
        data_converter=pydantic_data_converter,
    )
    try:
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=env.client.namespace,
                search_attributes={key.name: key.indexed_value_type for key in SEARCH_ATTRIBUTES},  # type: ignore[misc]
            )
        )
        yield env
    finally:
        await env.shutdown()


@asynccontextmanager
async def fresh_temporal() -> AsyncIterator[Client]:
    """A Temporal server of its own, in memory: shutting it down is retention forgetting everything."""
    async with local_temporal() as env:
        yield env.client


def signed_input(
    request_id: str, payment: str, amount: int, policy: RefundPolicy, **extra: Any
) -> RefundWorkflowInput:
    raw = refund_body(request_id, payment, amount=amount, **extra)
    return RefundWorkflowInput(
        request=RefundRequest.model_validate_json(raw),
        evidence=SignatureEvidence(
            raw_body=raw.decode(),
            signature_header=signature.sign([INBOUND_SECRET], int(time.time()), raw),
            received_at=datetime.now(UTC),
        ),
        policy=policy,
    )


async def state_of(handle: WorkflowHandle[Any, RefundState]) -> RefundState:
    return await handle.query(RefundWorkflow.state)


def book_refund(db: Database, *, goods: int, tax: int, confirmed: bool = True) -> str:
    """A refund's reservation and, when confirmed, its posting and payout, as the activities do."""
    request_id = unique("r")
    allocation = Allocation(currency="EUR", lines=[AllocatedLine(sku="A", quantity=1, goods=goods, tax=tax)])
    with db.transaction() as session:
        held = Posting(request_id, "m1", "EUR", f"{request_id}:hold1", tuple(cost_legs("m1", allocation)))
        ledger.hold(session, held, description="test")
        ledger.resolve(session, request_id, post=confirmed, description="settled")
        if confirmed:
            paid = (payout_leg("m1", "stripe", "EUR", goods + tax),)
            payout = Posting(request_id, "m1", "EUR", f"{request_id}:payout", paid)
            ledger.post(session, payout, description="test")
    return request_id


TOKENS = "alice:alice-token,bob:bob-token,carol:carol-token"
FOUR_EYES = 'version = "four-eyes-1"\n[review]\nfour_eyes_above_major = 5000\n'


async def decide(http: httpx.AsyncClient, request_id: str, verdict: str, who: str) -> httpx.Response:
    body = {"reason": "looked at it"}
    return await http.post(
        f"/v1/refunds/{request_id}/{verdict}", json=body, headers={"Authorization": f"Bearer {who}-token"}
    )


ACME_SECRET, GLOBEX_SECRET = "acme-secret", "globex-secret"
GLOBEX_STRIPE_KEY, GLOBEX_STRIPE_WEBHOOK_SECRET = "sk_test_globex", "whsec_globex"
GLOBEX_ADYEN_KEY, GLOBEX_ADYEN_ACCOUNT, GLOBEX_HMAC = "globex_adyen_key", "GlobexECOM", "00" * 32
GLOBEX_PAYPAL_CLIENT, GLOBEX_PAYPAL_SECRET = "globex_paypal", "globex_pp_secret"
GLOBEX_PAYPAL_WEBHOOK = "WH-GLOBEX"


def merchants_file(
    tmp_path: Path,
    globex_psps_url: str,
    globex_reviewers: str = "",
    globex_policy: str = "",
    globex: str = "globex",
    paypal: bool = False,
) -> Path:
    """acme (its secret only) and globex (its policy, reviewers and own PSP accounts: Stripe and
    Adyen, and PayPal with `paypal`); `globex_policy` is appended to globex's policy file after its
    version. `globex` names it: a test whose refunds must not meet other tests' globex refunds in the
    session's database gives a name of its own."""
    policy = tmp_path / "globex-policy.toml"
    policy.write_text('version = "globex-3"\n' + globex_policy)
    path = tmp_path / "merchants.toml"
    path.write_text(
        f'[merchants.acme]\ninbound_webhook_secret = "{ACME_SECRET}"\n'
        f'[merchants.{globex}]\ninbound_webhook_secret = "{GLOBEX_SECRET}"\npolicy_file = "{policy}"\n'
        f'reviewer_tokens = "{globex_reviewers}"\n'
        f'[merchants.{globex}.stripe]\napi_key = "{GLOBEX_STRIPE_KEY}"\n'
        f'webhook_secret = "{GLOBEX_STRIPE_WEBHOOK_SECRET}"\napi_base = "{globex_psps_url}"\n'
        "rate_limit = 5\n"
        f'[merchants.{globex}.adyen]\napi_key = "{GLOBEX_ADYEN_KEY}"\n'
        f'merchant_account = "{GLOBEX_ADYEN_ACCOUNT}"\n'
        f'hmac_key = "{GLOBEX_HMAC}"\napi_base = "{globex_psps_url}/checkout"\n'
    )
    if paypal:
        with path.open("a") as merchants:
            merchants.write(
                f'[merchants.{globex}.paypal]\nclient_id = "{GLOBEX_PAYPAL_CLIENT}"\n'
                f'client_secret = "{GLOBEX_PAYPAL_SECRET}"\nwebhook_id = "{GLOBEX_PAYPAL_WEBHOOK}"\n'
                f'api_base = "{globex_psps_url}"\n'
            )
    return path


def signed_for(merchant: str, secret: str, body: bytes) -> dict[str, str]:
    return {**signed_headers(body, [secret]), "Refund-Merchant": merchant}


SAFE = {
    "environment": "production",
    "inbound_webhook_secret": "a-real-inbound-secret",
    "review_signing_key": "a-review-signing-secret-of-32-chars-or-more",
    "payload_keys": new_key_entry("k1"),
}


def made_client(database: Database, client: ApiClient) -> str:
    """An API client stored as `refunds client create` stores it; its key, shown once."""
    key = new_key()
    with database.transaction() as session:
        assert clients.create(session, client, key)
    return key


def bearer(key: str) -> dict[str, str]:
    """The headers of a request an API client sends with its key."""
    return {"content-type": "application/json", "Authorization": f"Bearer {key}"}
