"""Bad input at the door: amounts that are not JSON integers of minor units in a refundable currency,
unbounded metadata and malformed signature headers are refused with a code, and nothing starts."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from domain import signature
from domain.currencies import MAX_MINOR_UNITS
from tests.conftest import Stack, starter_for
from tests.deliveries import adyen_delivery, adyen_item
from tests.deliveries import post as post_webhook
from tests.flows import assert_not_started, post
from tests.helpers import fresh_temporal, refund_body, signed_headers, unique
from workers.psp_wiring.adyen import SANDBOX_ADYEN_HMAC_KEY
from workers.service.body_limits import DRAIN_BYTES


def _body(request_id: str, **fields: Any) -> bytes:
    payload = json.loads(refund_body(request_id, "pi_any", amount=100))
    payload.update(fields)
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    "amount",
    [
        {"value": 25.0, "currency": "EUR"},  # a float: was refunded as 0.25 EUR
        {"value": "2500", "currency": "EUR"},
        {"value": True, "currency": "EUR"},
        {"value": 0, "currency": "EUR"},
        {"value": 100, "currency": "XYZ"},  # not a currency
        {"value": 100, "currency": "XAU"},  # gold has no minor units
        {"value": 10**23, "currency": "EUR"},
        {"value": 2**63 - 1, "currency": "EUR"},
        {"value": MAX_MINOR_UNITS + 1, "currency": "EUR"},
    ],
    ids=["float", "string", "bool", "zero", "unknown", "metal", "1e23", "int64", "above-cap"],
)
async def test_an_amount_is_a_positive_json_integer_in_a_refundable_currency(
    stack: Stack, amount: dict[str, Any]
) -> None:
    request_id = unique("amount")
    body = _body(request_id, amount=amount)
    status, payload = await post(stack, body, signed_headers(body))
    assert (status, payload["error"]["code"]) == (422, "invalid_request")
    await assert_not_started(stack, request_id)


@pytest.mark.parametrize(
    "fields",
    [
        {"shipping_amount": 5.5},
        {"items": [{"sku": "A", "quantity": 1.0, "unit_amount": 100}]},
        {"items": [{"sku": "A", "quantity": 1, "unit_amount": "100"}]},
        {"metadata": {f"k{i}": "v" for i in range(51)}},
        {"metadata": {"k" * 41: "v"}},
        {"metadata": {"note": "x" * 501}},
        {"metadata": {"": "v"}},
    ],
    ids=["shipping-float", "quantity-float", "unit-string", "51-keys", "long-key", "long-value", "empty-key"],
)
async def test_lines_shipping_and_metadata_are_bounded_integers_and_strings(
    stack: Stack, fields: dict[str, Any]
) -> None:
    request_id = unique("fields")
    body = _body(request_id, **fields)
    status, payload = await post(stack, body, signed_headers(body))
    assert (status, payload["error"]["code"]) == (422, "invalid_request")
    await assert_not_started(stack, request_id)


@pytest.mark.parametrize(
    "header",
    [
        "t=²,v1=" + "0" * 64,  # a digit to str.isdigit, not to int
        "t=" + "9" * 5000 + ",v1=" + "0" * 64,
        "t=1700000000,v1=é" + "0" * 63,
        "t=1700000000,v1=" + "0" * 64 + "\u0660",
        "t=-5,v1=" + "0" * 64,
        "t=1700000000,v1=" + "0" * 10_000,
    ],
    ids=["superscript-two", "5000-digits", "non-ascii-v1", "arabic-digit", "negative", "huge-v1"],
)
async def test_a_malformed_signature_header_is_401_never_500(stack: Stack, header: str) -> None:
    request_id = unique("header")
    body = refund_body(request_id, "pi_any", amount=100)
    # the bytes on the wire: HTTP header text is Latin-1, anything beyond it arrives as UTF-8 bytes
    wire = header.encode("latin-1") if max(header) <= "\xff" else header.encode()
    headers = {"content-type": b"application/json", "Refund-Signature": wire}
    response = await stack.http.post("/v1/refund-requests", content=body, headers=headers)
    assert (response.status_code, response.json()["error"]["code"]) == (401, "signature_invalid")
    await assert_not_started(stack, request_id)


def test_the_parser_refuses_what_it_cannot_compare() -> None:
    for header in ["t=²,v1=ab", "t=1,v1=é", "t=" + "1" * 20 + ",v1=ab"]:
        with pytest.raises(signature.SignatureError):
            signature.parse(header)


async def test_an_adyen_signature_that_is_not_base64_text_is_refused_not_a_500(stack: Stack) -> None:
    item = adyen_item("PSP0000000000001", "rf-nobody", SANDBOX_ADYEN_HMAC_KEY)
    item["additionalData"] = {"hmacSignature": "é" * 44}
    response = await post_webhook(stack, "adyen", adyen_delivery(item))
    assert (response.status_code, response.json()["error"]["code"]) == (400, "signature_invalid")


async def test_json_nested_deeper_than_the_parser_goes_is_400_never_500(stack: Stack) -> None:
    """Python's JSON parser gives up on deep nesting with a RecursionError, not a ValueError: an
    Adyen delivery (read before any HMAC is checked, so by anyone) and signed bodies were 500s."""
    deep = b"[" * 10_000 + b"]" * 10_000
    webhook = await post_webhook(stack, "adyen", deep)
    assert (webhook.status_code, webhook.json()["error"]["code"]) == (400, "invalid_payload")
    request = await stack.http.post("/v1/refund-requests", content=deep, headers=signed_headers(deep))
    assert (request.status_code, request.json()["error"]["code"]) == (400, "invalid_json")
    receipt = await stack.http.post(
        f"/v1/refunds/{unique('deep')}/goods-received", content=deep, headers=signed_headers(deep)
    )
    assert (receipt.status_code, receipt.json()["error"]["code"]) == (400, "invalid_json")


async def _chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        chunk = b"x" * min(size, total - sent)
        sent += len(chunk)
        yield chunk


@pytest.mark.parametrize(
    ("path", "limit"), [("/v1/refund-requests", 65_536), ("/webhooks/stripe", 1_048_576)]
)
async def test_an_oversized_body_is_413_and_never_kept(stack: Stack, path: str, limit: int) -> None:
    declared = await stack.http.post(
        path, content=b"x" * (limit + 1), headers={"content-type": "application/json"}
    )
    chunked = await stack.http.post(
        path, content=_chunks(limit * 3), headers={"content-type": "application/json"}
    )
    for response in (declared, chunked):
        assert (response.status_code, response.json()["error"]["code"]) == (413, "request_too_large")


async def test_a_signed_request_over_the_limit_is_413_and_never_asks_to_retry(stack: Stack) -> None:
    request_id = unique("big")
    body = _body(
        request_id,
        metadata={f"k{i}": "v" * 500 for i in range(50)},
        items=[{"sku": f"{i:03d}" + "S" * 120, "quantity": 1, "unit_amount": 1} for i in range(400)],
    )
    assert len(body) > 65_536
    status, payload = await post(stack, body, signed_headers(body))
    assert (status, payload["error"]["code"]) == (413, "request_too_large")
    assert "retry" not in payload["error"]["message"]
    await assert_not_started(stack, request_id)


def _answer_to(base_url: str, headers: dict[str, str], body: bytes, timeout: float) -> str:
    """What a client that sends its whole request before it reads (as `requests` and `urllib` do,
    `Connection: close` as urllib says it) reads back: the status line and headers, or its error."""
    where = urlsplit(base_url)
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    request = f"POST /v1/refund-requests HTTP/1.1\r\nHost: {where.netloc}\r\n{head}\r\n".encode()
    try:
        with socket.create_connection((where.hostname, where.port), timeout=timeout) as client:
            client.sendall(request + body)
            answer = b""
            while chunk := client.recv(65_536):
                answer += chunk
    except OSError as err:
        return type(err).__name__
    return answer.partition(b"\r\n\r\n")[0].decode("latin-1")


async def test_a_client_that_sends_its_whole_body_first_reads_the_413_not_a_reset(stack: Stack) -> None:
    """The service answered a 2 MB signed request at once and closed with the body unread: the kernel
    reset the connection, and a client still sending (Python's requests, urllib) saw the reset, never
    the 413. The body is read to its end and thrown away first (up to DRAIN_BYTES past the limit)."""
    body = b'{"padding": "' + b"x" * 2_000_000 + b'"}'
    headers = {**signed_headers(body), "Content-Length": str(len(body)), "Connection": "close"}
    answers = [await asyncio.to_thread(_answer_to, stack.base_url, headers, body, 30) for _ in range(20)]
    assert [answer.partition("\r\n")[0] for answer in answers] == [
        "HTTP/1.1 413 Request Entity Too Large"
    ] * 20


async def test_a_body_declared_far_over_the_limit_is_refused_without_waiting_for_it(stack: Stack) -> None:
    """Past what is worth reading, the 413 goes out before a byte of the body is sent, and the
    connection is closed: nothing waits for gigabytes to be thrown away."""
    declared = stack.settings.max_request_bytes + DRAIN_BYTES + 1
    headers = {"content-type": "application/json", "Content-Length": str(declared)}
    answer = await asyncio.to_thread(_answer_to, stack.base_url, headers, b"", 3)  # DRAIN_SECONDS is 5
    assert answer.startswith("HTTP/1.1 413 ") and "connection: close" in answer.lower(), answer


async def test_temporal_down_is_a_503_that_tells_the_client_what_to_do_not_our_internals(
    stack: Stack,
) -> None:
    async with fresh_temporal() as gone:
        pass  # a server the service was connected to, now down
    async with starter_for(stack, client=gone) as (_, http):
        request_id = unique("down")
        body = refund_body(request_id, "pi_any", amount=100)
        response = await http.post("/v1/refund-requests", content=body, headers=signed_headers(body))
    error = response.json()["error"]
    assert (response.status_code, error["code"]) == (503, "temporal_unavailable")
    assert error["message"] == "accepting refund requests is not possible right now; retry shortly"


async def test_a_signed_request_naming_a_key_twice_is_refused(stack: Stack) -> None:
    """Parsers differ on a key given twice (before, the last one won: a body a merchant's platform
    read as 1.00 EUR was refunded as 9,999.99): refused, nothing started."""
    request_id = unique("twice")
    body = refund_body(request_id, "pi_twice", amount=100).decode()
    twice = body[:-1] + ',"amount":{"value":999999,"currency":"EUR"}}'
    status, answer = await post(stack, twice.encode(), signed_headers(twice.encode()))
    assert (status, answer["error"]["code"]) == (400, "invalid_json"), answer
    assert "'amount' is given twice" in answer["error"]["message"]
    await assert_not_started(stack, request_id)
