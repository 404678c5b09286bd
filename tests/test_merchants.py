"""Many merchants: each with its own inbound secret, policy and ledger accounts, chosen per request;
one merchant's secret never starts a refund for another."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.db import audit, ledger
from adapters.sandbox.control import SandboxControl
from domain.policy_file import PolicyError
from tests.conftest import Stack, starter_for, worker_for
from tests.helpers import refund_body, signed_headers, unique
from workers.merchants import load_merchants
from workflows.refund import RefundWorkflow

ACME_SECRET, GLOBEX_SECRET = "acme-secret", "globex-secret"


def merchants_file(tmp_path: Path) -> Path:
    policy = tmp_path / "globex-policy.toml"
    policy.write_text('version = "globex-3"\n')
    path = tmp_path / "merchants.toml"
    path.write_text(
        f'[merchants.acme]\ninbound_webhook_secret = "{ACME_SECRET}"\n'
        f'[merchants.globex]\ninbound_webhook_secret = "{GLOBEX_SECRET}"\npolicy_file = "{policy}"\n'
    )
    return path


async def test_each_merchant_signs_its_own_refunds_and_books_them_apart(
    stack: Stack, sandbox: SandboxControl, tmp_path: Path
) -> None:
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    request_id = unique("globex")
    body = refund_body(request_id, payment, amount=900)

    starter = starter_for(stack, merchants_file=merchants_file(tmp_path))
    async with starter as (settings, http), worker_for(stack, settings):

        async def send(merchant: str, secret: str) -> int:
            headers = {**signed_headers(body, [secret]), "Refund-Merchant": merchant}
            return (await http.post("/v1/refund-requests", content=body, headers=headers)).status_code

        # acme's secret cannot start a refund for globex, nor an unknown merchant's
        assert await send("globex", ACME_SECRET) == 401
        assert await send("initech", ACME_SECRET) == 401
        assert await send("globex", GLOBEX_SECRET) == 202
        # the same request id from acme is not globex's refund
        assert await send("acme", ACME_SECRET) == 409
        state = await stack.client.get_workflow_handle_for(
            RefundWorkflow.run, f"refund-{request_id}"
        ).result()

    assert state.status.value == "succeeded" and state.risk is not None
    assert state.risk.policy_version == "globex-3"
    with stack.database.transaction() as session:
        accounts = {account for account, _ in ledger.balances(session, request_id)}
        steps = [entry.step for entry in audit.trail(session, request_id)]
    assert accounts == {"globex:refund_contra_revenue:EUR", "globex:psp_receivable:stripe:EUR"}
    assert "validated" in steps  # the worker re-verified globex's signature with globex's secret


def test_the_worker_refuses_to_start_on_a_bad_merchants_file(tmp_path: Path) -> None:
    path = tmp_path / "merchants.toml"
    path.write_text('[merchants.acme]\ninbound_webhook_secret = "s"\npolicy_file = "/nowhere.toml"\n')
    started = subprocess.run(
        [sys.executable, "-m", "workers.cli", "worker"],
        env={**os.environ, "REFUNDS_MERCHANTS_FILE": str(path), "REFUNDS_TEMPORAL_ADDRESS": "127.0.0.1:9"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (started.returncode, "invalid_policy" in started.stdout) == (2, True)
    assert "/nowhere.toml: cannot be read" in started.stdout


def test_a_bad_merchants_file_is_refused_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "merchants.toml"
    for text, reason in [
        ('[merchants.Acme]\ninbound_webhook_secret = "s"\n', "lowercase id"),
        ("[merchants.acme]\n", "inbound_webhook_secret is required"),
        ('[merchants.acme]\ninbound_webhook_secret = "s"\nstripe_key = "k"\n', "unknown keys"),
    ]:
        path.write_text(text)
        with pytest.raises(PolicyError, match=reason):
            load_merchants(path)
