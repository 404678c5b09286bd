"""The PayPal sandbox over raw HTTP: OAuth, PayPal-shaped answers and errors, PayPal-Request-Id replay,
webhook signing with its served certificate, and state that survives a restart.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sandbox.paypal.control import PayPalSandboxControl
from tests.fixtures.paypal import (  # noqa: F401  (fixtures, used by name)
    CLIENT_ID,
    CLIENT_SECRET,
    WEBHOOK_ID,
    PayPalEnvironment,
    fixture_paypal_control,
    fixture_paypal_sandbox,
    fixture_paypal_webhooks,
    start_paypal,
    stop_paypal,
)
from tests.fixtures.sandbox import WebhookReceiver, eventually, unique


def token(http: httpx.Client, secret: str = CLIENT_SECRET) -> httpx.Response:
    return http.post(
        "/v1/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic " + base64.b64encode(f"{CLIENT_ID}:{secret}".encode()).decode()},
    )


@pytest.fixture(name="http")
def fixture_http(paypal_sandbox: PayPalEnvironment) -> Iterator[httpx.Client]:
    """An authenticated client speaking PayPal's REST API to the sandbox."""
    with httpx.Client(base_url=paypal_sandbox.url, timeout=5) as http:
        http.headers["Authorization"] = f"Bearer {token(http).json()['access_token']}"
        yield http


def refund(
    http: httpx.Client, capture: str, body: Mapping[str, object], request_id: str | None = None
) -> httpx.Response:
    headers = {"Prefer": "return=representation"}
    if request_id is not None:
        headers["PayPal-Request-Id"] = request_id
    return http.post(f"/v2/payments/captures/{capture}/refund", json=body, headers=headers)


def test_oauth_client_credentials(paypal_sandbox: PayPalEnvironment) -> None:
    with httpx.Client(base_url=paypal_sandbox.url, timeout=5) as http:
        granted = token(http)
        assert granted.status_code == 200
        assert granted.json()["token_type"] == "Bearer" and granted.json()["expires_in"] > 0
        assert granted.headers["Paypal-Debug-Id"]
        refused = token(http, secret="nope")
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
        anonymous = http.get("/v2/payments/captures/X")
        assert anonymous.status_code == 401 and anonymous.json()["name"] == "AUTHENTICATION_FAILURE"


def test_paypal_shaped_resources_and_errors(http: httpx.Client, paypal_control: PayPalSandboxControl) -> None:
    capture = paypal_control.seed_capture(amount="20.00", currency="EUR")
    shown = http.get(f"/v2/payments/captures/{capture}")
    assert shown.status_code == 200 and shown.headers["Paypal-Debug-Id"]
    assert shown.json()["status"] == "COMPLETED"
    assert shown.json()["amount"] == {"currency_code": "EUR", "value": "20.00"}

    missing = http.get("/v2/payments/refunds/NOSUCHREFUND")
    assert missing.status_code == 404 and missing.json()["name"] == "RESOURCE_NOT_FOUND"
    assert missing.json()["debug_id"] == missing.headers["Paypal-Debug-Id"]

    exceeded = refund(http, capture, {"amount": {"currency_code": "EUR", "value": "20.01"}})
    assert exceeded.status_code == 422 and exceeded.json()["name"] == "UNPROCESSABLE_ENTITY"
    assert exceeded.json()["details"][0]["issue"] == "REFUND_AMOUNT_EXCEEDED"

    precision = refund(http, capture, {"amount": {"currency_code": "EUR", "value": "1.005"}})
    assert precision.json()["details"][0]["issue"] == "DECIMAL_PRECISION"

    minimal = http.post(f"/v2/payments/captures/{capture}/refund", json={})  # full refund, minimal answer
    assert minimal.status_code == 201 and set(minimal.json()) == {"id", "status", "links"}
    assert http.get(f"/v2/payments/captures/{capture}").json()["status"] == "REFUNDED"
    again = refund(http, capture, {})
    assert again.json()["details"][0]["issue"] == "CAPTURE_FULLY_REFUNDED"


def test_request_id_replays_the_first_answer(
    http: httpx.Client, paypal_control: PayPalSandboxControl
) -> None:
    capture = paypal_control.seed_capture(amount="20.00", currency="EUR")
    request_id = unique("refund")
    body = {"amount": {"currency_code": "EUR", "value": "5.00"}, "custom_id": "r-1", "invoice_id": "r-1"}
    first = refund(http, capture, body, request_id)
    second = refund(http, capture, body, request_id)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert len(paypal_control.refunds(capture)) == 1

    # A refusal is the request id's answer too; a request that failed validation stores nothing.
    refused_id = unique("refund")
    too_much = {"amount": {"currency_code": "EUR", "value": "99.00"}}
    assert refund(http, capture, too_much, refused_id).status_code == 422
    assert refund(http, capture, body, refused_id).status_code == 422
    invalid_id = unique("refund")
    assert (
        refund(http, capture, {"amount": {"currency_code": "EUR", "value": "x"}}, invalid_id).status_code
        == 400
    )
    assert refund(http, capture, body, invalid_id).status_code == 201


def test_void_and_order_listing(http: httpx.Client, paypal_control: PayPalSandboxControl) -> None:
    authorization = paypal_control.seed_authorization(amount="9.99", currency="USD")
    voided = http.post(f"/v2/payments/authorizations/{authorization}/void")
    assert voided.status_code == 204
    shown = http.get(f"/v2/payments/authorizations/{authorization}").json()
    assert shown["status"] == "VOIDED"
    again = http.post(f"/v2/payments/authorizations/{authorization}/void")
    assert again.json()["details"][0]["issue"] == "PREVIOUSLY_VOIDED"

    capture = paypal_control.seed_capture(amount="10.00", currency="USD")
    made = refund(http, capture, {"amount": {"currency_code": "USD", "value": "1.00"}, "custom_id": "c-1"})
    order_id = http.get(f"/v2/payments/captures/{capture}").json()["supplementary_data"]["related_ids"][
        "order_id"
    ]
    order = http.get(f"/v2/checkout/orders/{order_id}").json()
    [listed] = order["purchase_units"][0]["payments"]["refunds"]
    assert (listed["id"], listed["custom_id"]) == (made.json()["id"], "c-1")


def test_webhooks_are_signed_with_the_served_certificate(
    http: httpx.Client, paypal_control: PayPalSandboxControl, paypal_webhooks: WebhookReceiver
) -> None:
    capture = paypal_control.seed_capture(amount="10.00", currency="EUR")
    refund_id = refund(http, capture, {"amount": {"currency_code": "EUR", "value": "2.00"}}).json()["id"]
    delivery = eventually(lambda: next(iter(paypal_webhooks.matching(refund_id)), None))
    event = json.loads(delivery.body)
    assert event["event_type"] == "PAYMENT.CAPTURE.REFUNDED" and event["id"].startswith("WH-")
    assert event["resource"]["id"] == refund_id
    headers = {name.upper(): value for name, value in delivery.headers.items()}
    assert headers["PAYPAL-AUTH-ALGO"] == "SHA256withRSA"
    pem = httpx.get(headers["PAYPAL-CERT-URL"], timeout=5).content
    key = x509.load_pem_x509_certificate(pem).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    signed = "|".join(
        [
            headers["PAYPAL-TRANSMISSION-ID"],
            headers["PAYPAL-TRANSMISSION-TIME"],
            WEBHOOK_ID,
            str(zlib.crc32(delivery.body)),
        ]
    )
    key.verify(
        base64.b64decode(headers["PAYPAL-TRANSMISSION-SIG"]),
        signed.encode(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )


def test_failed_deliveries_are_retried(
    http: httpx.Client, paypal_control: PayPalSandboxControl, paypal_webhooks: WebhookReceiver
) -> None:
    capture = paypal_control.seed_capture(amount="10.00", currency="EUR")
    paypal_webhooks.fail(capture, 2)
    paypal_control.open_dispute(capture)
    [event] = [
        e
        for e in paypal_control.events()
        if e["payload"]["resource"].get("disputed_transactions")
        and e["payload"]["resource"]["disputed_transactions"][0]["seller_transaction_id"] == capture
    ]

    def statuses() -> list[int] | None:
        attempts = [d["http_status"] for d in paypal_control.deliveries() if d["event_id"] == event["id"]]
        return attempts if attempts[-1:] == [200] else None

    assert eventually(statuses) == [500, 500, 200]
    assert paypal_webhooks.matching(capture)


def test_state_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    first = start_paypal(state, None)
    try:
        with PayPalSandboxControl(first.url) as control:
            capture = control.seed_capture(amount="10.00", currency="EUR")
            cert = control.cert_pem()
        with httpx.Client(base_url=first.url, timeout=5) as http:
            bearer = token(http).json()["access_token"]
            http.headers["Authorization"] = f"Bearer {bearer}"
            made = refund(
                http, capture, {"amount": {"currency_code": "EUR", "value": "3.00"}}, "rid-1"
            ).json()
    finally:
        stop_paypal(first)
    second = start_paypal(state, None)
    try:
        with httpx.Client(base_url=second.url, timeout=5) as http:
            http.headers["Authorization"] = f"Bearer {bearer}"  # tokens persist too
            replayed = refund(http, capture, {"amount": {"currency_code": "EUR", "value": "3.00"}}, "rid-1")
            assert replayed.json()["id"] == made["id"]
        with PayPalSandboxControl(second.url) as control:
            assert len(control.refunds(capture)) == 1
            assert control.cert_pem() == cert
    finally:
        stop_paypal(second)
