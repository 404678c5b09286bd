"""Seeded fuzzing of every route: mutated, truncated, retyped, unsigned and signed bodies and headers.
Whatever comes in, the answer is never a 500, every error has the `{"error": {"code", "message"}}`
shape, and a request that is refused starts no workflow. A failure prints the seed and the case."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import Stack
from tests.flows import assert_not_started
from tests.helpers import refund_body, signed_headers, unique

SEED = 20261129
CASES = 240

_ODD_VALUES: list[Any] = [
    None,
    True,
    -1,
    0,
    2**63,
    10**30,
    1.5,
    float("1e308"),
    "",
    "x" * 5_000,
    "²",
    "\u202e\u0000",
    [],
    {},
    [1, [2, [3]]],
    {"value": "1", "currency": 1},
]


def _mutations(rng: random.Random) -> list[Callable[[dict[str, Any]], Any]]:
    def retype(body: dict[str, Any]) -> Any:
        body[rng.choice(list(body))] = rng.choice(_ODD_VALUES)
        return body

    def drop(body: dict[str, Any]) -> Any:
        body.pop(rng.choice(list(body)))
        return body

    def add(body: dict[str, Any]) -> Any:
        body[rng.choice(["extra", "__proto__", "amount ", "ITEMS"])] = rng.choice(_ODD_VALUES)
        return body

    def amount(body: dict[str, Any]) -> Any:
        body["amount"] = {"value": rng.choice(_ODD_VALUES), "currency": rng.choice(["EUR", "eur", "XYZ", 7])}
        return body

    def nest(body: dict[str, Any]) -> Any:
        return [body] if rng.random() < 0.5 else {"request": body}

    def items(body: dict[str, Any]) -> Any:
        body["items"] = [{"sku": rng.choice(_ODD_VALUES), "quantity": rng.choice(_ODD_VALUES)}]
        return body

    return [retype, drop, add, amount, nest, items]


def _case(rng: random.Random) -> tuple[str, bytes, bool]:
    """A fuzzed body, its request id and whether to sign it (signed ones reach validation)."""
    request_id = unique("fuzz")
    body: Any = json.loads(refund_body(request_id, "pi_fuzz", amount=100))
    for mutate in rng.sample(_mutations(rng), k=rng.randint(1, 3)):
        body = mutate(body) if isinstance(body, dict) else body
    raw = json.dumps(body).encode()
    if rng.random() < 0.2:
        raw = raw[: rng.randint(0, len(raw))]  # truncated
    if rng.random() < 0.1:
        raw = bytes(rng.randrange(256) for _ in range(rng.randint(1, 300)))  # not even text
    return request_id, raw, rng.random() < 0.7


def _assert_error_shape(response: httpx.Response, case: str) -> None:
    assert response.status_code != 500, case
    if response.status_code >= 400:
        payload = response.json()
        assert set(payload) == {"error"}, case
        assert {"code", "message"} <= set(payload["error"]), case


async def test_fuzzed_refund_requests_never_500_and_start_nothing_when_refused(stack: Stack) -> None:
    rng = random.Random(SEED)
    for number in range(CASES):
        request_id, raw, signed = _case(rng)
        headers = signed_headers(raw) if signed else {"content-type": "application/json"}
        if not signed and rng.random() < 0.5:
            headers["Refund-Signature"] = rng.choice(["t=1,v1=zz", "v1=", "t=²,v1=" + "0" * 64, "garbage"])
        sent = {name: value.encode("latin-1") for name, value in headers.items()}  # the bytes on the wire
        response = await stack.http.post("/v1/refund-requests", content=raw, headers=sent)
        case = f"seed {SEED} case {number}: {response.status_code} {raw[:200]!r}"
        _assert_error_shape(response, case)
        if response.status_code >= 400:
            await assert_not_started(stack, request_id)


@pytest.mark.parametrize("provider", ["stripe", "adyen", "paypal"])
async def test_fuzzed_psp_webhooks_never_500(stack: Stack, provider: str) -> None:
    rng = random.Random(f"{SEED}-{provider}")
    signature_headers = {
        "stripe": ["Stripe-Signature"],
        "adyen": [],
        "paypal": ["Paypal-Transmission-Sig", "Paypal-Cert-Url", "Paypal-Transmission-Id"],
    }[provider]
    for number in range(CASES // 4):
        body: Any = rng.choice(
            [
                {"id": "evt_1", "type": "refund.updated", "data": {"object": rng.choice(_ODD_VALUES)}},
                {"notificationItems": [{"NotificationRequestItem": {"eventCode": rng.choice(_ODD_VALUES)}}]},
                {"event_type": "PAYMENT.CAPTURE.REFUNDED", "resource": rng.choice(_ODD_VALUES)},
                rng.choice(_ODD_VALUES),
            ]
        )
        raw = json.dumps(body).encode()
        if rng.random() < 0.3:
            raw = raw[: rng.randint(0, len(raw))]
        headers = {"content-type": "application/json"}
        for name in signature_headers:
            headers[name] = rng.choice(["t=1,v1=00", "", "https://evil.example/cert.pem", "x" * 300])
        response = await stack.http.post(f"/webhooks/{provider}", content=raw, headers=headers)
        _assert_error_shape(response, f"seed {SEED} {provider} case {number}: {raw[:200]!r}")
        assert response.status_code in {400, 401, 413, 422}, f"{provider} case {number}: {response.text}"
