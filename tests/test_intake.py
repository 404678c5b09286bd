"""The public contract of POST /v1/refund-requests: authenticate first, validate, start nothing on error."""

from __future__ import annotations

import json
import time

import pytest

from domain import signature
from tests.conftest import Stack, starter_for
from tests.flows import assert_not_started, post
from tests.helpers import INBOUND_SECRET, refund_body, signed_headers, unique


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("missing", "signature_missing"),
        ("garbage", "signature_invalid"),
        ("wrong_secret", "signature_invalid"),
        ("tampered_body", "signature_invalid"),
        ("stale", "signature_expired"),
        ("future", "signature_expired"),
    ],
)
async def test_bad_signatures_are_refused_and_start_nothing(stack: Stack, case: str, code: str) -> None:
    request_id = unique("forged")
    body = refund_body(request_id, "pi_any", amount=100)
    now = int(time.time())
    headers = {
        "missing": {"content-type": "application/json"},
        "garbage": {"Refund-Signature": "v1=nothex"},
        "wrong_secret": signed_headers(body, ["not-our-secret"]),
        "tampered_body": signed_headers(body.replace(b'"value":100', b'"value":999')),
        "stale": signed_headers(body, at=now - 301),
        "future": signed_headers(body, at=now + 301),
    }[case]

    status, payload = await post(stack, body, headers)

    assert status == 401
    assert payload == {"error": {"code": code, "message": payload["error"]["message"]}}
    await assert_not_started(stack, request_id)


async def test_rotated_secrets_any_v1_may_match(stack: Stack) -> None:
    """During rotation the merchant signs with old and new; we accept a match on either."""
    request_id = unique("rotated")
    body = refund_body(request_id, "pi_unknown_rotation", amount=100)
    header = signature.sign(["retired-secret", INBOUND_SECRET], int(time.time()), body)
    status, payload = await post(stack, body, {"Refund-Signature": header})
    assert status == 202, payload


async def test_server_side_rotation_accepts_each_configured_secret() -> None:
    body = b'{"x":1}'
    now = int(time.time())
    for secret in ("old", "new"):
        header = signature.sign([secret], now, body)
        assert signature.verify(header, body, ["old", "new"], now).timestamp == now


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b'{"request_id": "x"}', 422, "invalid_request"),
        (refund_body("neg", "pi_1", amount=-5), 422, "invalid_request"),
        (refund_body("bad id!", "pi_1", amount=5), 422, "invalid_request"),
        (refund_body("cur", "pi_1", amount=5, currency="EU1"), 422, "invalid_request"),
        (refund_body("prov", "pi_1", amount=5, provider="venmo"), 422, "invalid_request"),
        (refund_body("extra", "pi_1", amount=5, surprise="field"), 422, "invalid_request"),
    ],
)
async def test_malformed_bodies_get_coded_errors_and_start_nothing(
    stack: Stack, body: bytes, status: int, code: str
) -> None:
    got_status, payload = await post(stack, body, signed_headers(body))
    assert (got_status, payload["error"]["code"]) == (status, code)
    assert "Traceback" not in str(payload)


async def test_same_request_id_with_another_body_is_409(stack: Stack) -> None:
    request_id = unique("conflict")
    first = refund_body(request_id, "pi_unknown_conflict", amount=100)
    changed = refund_body(request_id, "pi_unknown_conflict", amount=200)

    assert (await post(stack, first, signed_headers(first)))[0] == 202
    status, payload = await post(stack, changed, signed_headers(changed))

    assert status == 409
    assert payload["error"]["code"] == "request_conflict"


async def test_the_same_request_reserialised_is_a_replay_not_a_conflict(stack: Stack) -> None:
    request_id = unique("reserialised")
    first = refund_body(request_id, "pi_unknown_reserialised", amount=100)
    again = json.dumps(dict(reversed(list(json.loads(first).items()))), indent=2).encode()
    assert first != again

    assert (await post(stack, first, signed_headers(first)))[0] == 202
    status, payload = await post(stack, again, signed_headers(again))

    assert (status, payload["workflow_id"]) == (200, f"refund-{request_id}")


async def test_unknown_refund_is_404_with_code(stack: Stack) -> None:
    response = await stack.http.get(f"/v1/refunds/{unique('nobody')}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_openapi_documents_the_contract(stack: Stack) -> None:
    spec = (await stack.http.get("/openapi.json")).json()
    assert "/v1/refund-requests" in spec["paths"]
    assert "/v1/refunds/{request_id}" in spec["paths"]
    assert "/webhooks/{provider}" in spec["paths"]


async def test_a_refund_in_flight_without_a_worker_is_503_not_404(stack: Stack) -> None:
    """No worker polls this starter's queue: its refund exists but nobody can answer for it yet."""
    request_id = unique("noworker")
    body = refund_body(request_id, "pi_unknown_noworker", amount=100)
    async with starter_for(stack) as (_settings, http):
        accepted = await http.post("/v1/refund-requests", content=body, headers=signed_headers(body))
        assert accepted.status_code == 202
        response = await http.get(f"/v1/refunds/{request_id}")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "temporal_unavailable"
