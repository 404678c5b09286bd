"""The Adyen sandbox, driven by the official `Adyen` SDK over loopback HTTP (nothing mocked)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import Adyen
import httpx
import pytest
from Adyen.services.checkout.modifications_api import ModificationsApi
from Adyen.util import is_valid_hmac_notification

from adapters.psp.adyen import sdk_checkout_version
from sandbox.adyen.api import mount_adyen
from sandbox.adyen.control import AdyenSandboxControl
from sandbox.server import SandboxServer
from tests.fixtures.adyen import (  # noqa: F401  (fixtures, used by name)
    ADYEN_API_KEY,
    ADYEN_HMAC_KEY,
    ADYEN_MERCHANT,
    AdyenStack,
    deliveries_with,
    fixture_adyen_control,
    fixture_adyen_receiver,
    fixture_adyen_stack,
    items,
)
from tests.fixtures.sandbox import WebhookReceiver, eventually, unique


def modifications_api(base: str, api_key: str = ADYEN_API_KEY) -> ModificationsApi:
    adyen = Adyen.Adyen()
    adyen.client.xapikey = api_key
    adyen.client.platform = "test"
    api: ModificationsApi = adyen.checkout.modifications_api
    api.baseUrl = f"{base}/checkout/{sdk_checkout_version()}"
    return api


@pytest.fixture(name="api", scope="module")
def fixture_api(adyen_stack: AdyenStack) -> ModificationsApi:
    return modifications_api(adyen_stack.server.url)


def refund_body(amount: int, reference: str = "req-1", currency: str = "EUR") -> dict[str, Any]:
    return {
        "merchantAccount": ADYEN_MERCHANT,
        "amount": {"value": amount, "currency": currency},
        "reference": reference,
    }


def test_refund_answers_201_received_and_notifies_signed(
    api: ModificationsApi, adyen_control: AdyenSandboxControl, adyen_stack: AdyenStack
) -> None:
    payment = adyen_control.seed_payment(amount=5_000, currency="EUR")
    result = api.refund_captured_payment(refund_body(1_200), payment, idempotency_key=unique("key"))
    assert result.status_code == 201
    assert result.message == {
        "merchantAccount": ADYEN_MERCHANT,
        "paymentPspReference": payment,
        "pspReference": result.psp,
        "reference": "req-1",
        "status": "received",
        "amount": {"value": 1_200, "currency": "EUR"},
    }
    [delivery] = deliveries_with(adyen_stack.receiver, result.psp, "REFUND")
    [item] = items(delivery)
    assert (item["success"], item["originalReference"], item["merchantReference"]) == (
        "true",
        payment,
        "req-1",
    )
    assert is_valid_hmac_notification(item, ADYEN_HMAC_KEY)
    for code in ("AUTHORISATION", "CAPTURE"):
        [seeded] = items(deliveries_with(adyen_stack.receiver, payment, code)[0])
        assert is_valid_hmac_notification(seeded, ADYEN_HMAC_KEY)


def test_wrong_api_key_merchant_account_and_unknown_payment(
    adyen_stack: AdyenStack, api: ModificationsApi, adyen_control: AdyenSandboxControl
) -> None:
    payment = adyen_control.seed_payment(amount=100, currency="EUR")
    with pytest.raises(Adyen.AdyenAPIAuthenticationError):
        modifications_api(adyen_stack.server.url, "wrong").refund_captured_payment(refund_body(1), payment)
    with pytest.raises(Adyen.AdyenAPIInvalidPermission):
        api.refund_captured_payment({**refund_body(1), "merchantAccount": "Other"}, payment)
    with pytest.raises(Adyen.AdyenAPIUnprocessableEntity) as err:
        api.refund_captured_payment(refund_body(1), "NOSUCHPAYMENT001")
    assert err.value.error_code == "167"


def test_idempotency_replay_conflict_and_validation_stores_nothing(
    api: ModificationsApi, adyen_control: AdyenSandboxControl
) -> None:
    payment = adyen_control.seed_payment(amount=5_000, currency="EUR")
    key = unique("key")
    with pytest.raises(Adyen.AdyenAPIUnprocessableEntity):
        api.refund_captured_payment(refund_body(0), payment, idempotency_key=key)  # invalid amount
    first = api.refund_captured_payment(refund_body(700), payment, idempotency_key=key)
    replay = api.refund_captured_payment(refund_body(700), payment, idempotency_key=key)
    assert replay.message == first.message
    with pytest.raises(Adyen.AdyenAPIUnprocessableEntity) as err:
        api.refund_captured_payment(refund_body(800), payment, idempotency_key=key)
    assert err.value.error_code == "704"
    assert "transient-error" not in {name.lower() for name in err.value.headers}
    assert [m["psp_reference"] for m in adyen_control.modifications(payment)] == [first.psp]


def test_stored_500_is_returned_again_for_its_key(
    api: ModificationsApi, adyen_control: AdyenSandboxControl
) -> None:
    payment = adyen_control.seed_payment(amount=5_000, currency="EUR")
    key = unique("key")
    adyen_control.inject_fault("error_500_stored")
    for _ in range(2):
        with pytest.raises(Adyen.AdyenAPICommunicationError) as err:
            api.refund_captured_payment(refund_body(100), payment, idempotency_key=key)
        assert err.value.status_code == 500
    assert adyen_control.modifications(payment) == []
    assert (
        api.refund_captured_payment(refund_body(100), payment, idempotency_key=unique("key")).status_code
        == 201
    )


def test_cancel_and_reversal_outcomes(
    api: ModificationsApi, adyen_control: AdyenSandboxControl, adyen_stack: AdyenStack
) -> None:
    authorised = adyen_control.seed_payment(amount=900, currency="EUR", captured=False)
    captured = adyen_control.seed_payment(amount=900, currency="EUR")
    body = {"merchantAccount": ADYEN_MERCHANT, "reference": "req-c"}
    cancel = api.cancel_authorised_payment_by_psp_reference(body, authorised)
    refused = api.cancel_authorised_payment_by_psp_reference(body, captured)
    reversal = api.refund_or_cancel_payment(body, captured)
    outcomes = {
        result.psp: items(deliveries_with(adyen_stack.receiver, result.psp, code)[0])[0]["success"]
        for result, code in (
            (cancel, "CANCELLATION"),
            (refused, "CANCELLATION"),
            (reversal, "CANCEL_OR_REFUND"),
        )
    }
    assert outcomes == {cancel.psp: "true", refused.psp: "false", reversal.psp: "true"}
    assert [m["amount"] for m in adyen_control.modifications(captured)] == [900, 900]


def test_held_notifications_are_released_out_of_order(
    api: ModificationsApi, adyen_control: AdyenSandboxControl, adyen_stack: AdyenStack
) -> None:
    payment = adyen_control.seed_payment(amount=5_000, currency="EUR")
    deliveries_with(adyen_stack.receiver, payment, "CAPTURE")
    adyen_control.hold_notifications()
    refund = api.refund_captured_payment(refund_body(100), payment)
    adyen_control.fail_refund_late(refund.psp)
    assert [n["state"] for n in adyen_control.notifications(refund.psp)] == ["held", "held"]
    assert adyen_control.release_notifications("reverse") == 2
    eventually(lambda: len(adyen_stack.receiver.matching(refund.psp)) == 2)
    codes = [items(d)[0]["eventCode"] for d in adyen_stack.receiver.matching(refund.psp)]
    assert codes == ["REFUND_FAILED", "REFUND"]


def test_failed_webhook_delivery_is_retried(
    api: ModificationsApi, adyen_control: AdyenSandboxControl, adyen_stack: AdyenStack
) -> None:
    payment = adyen_control.seed_payment(amount=5_000, currency="EUR")
    adyen_stack.receiver.fail('"REFUND"', 2)
    refund = api.refund_captured_payment(refund_body(100), payment)
    deliveries_with(adyen_stack.receiver, refund.psp, "REFUND")
    [notification] = adyen_control.notifications(refund.psp)
    assert (notification["state"], notification["attempts"]) == ("delivered", 3)


def test_control_api_rejects_bad_input(adyen_stack: AdyenStack, adyen_control: AdyenSandboxControl) -> None:
    base = f"{adyen_stack.server.url}/_sandbox/adyen"
    assert httpx.post(f"{base}/payments", json={"amount": -1, "currency": "EUR"}).status_code == 400
    assert httpx.post(f"{base}/faults", json={"kind": "nope"}).status_code == 400
    assert httpx.post(f"{base}/faults", json={"kind": "slow", "path_prefix": "/v1/"}).status_code == 400
    assert httpx.post(f"{base}/modifications/NOPE/refund_failed").status_code == 404
    assert httpx.get(f"{base}/nope").status_code == 404
    assert adyen_control.config()["merchant_account"] == ADYEN_MERCHANT


def test_restart_keeps_payments_modifications_keys_and_held_notifications(
    tmp_path: Path, adyen_receiver: WebhookReceiver
) -> None:
    state = tmp_path / "state.db"
    key = unique("key")
    url = adyen_receiver.url.replace("/stripe", "/adyen")
    with SandboxServer(port=0, state_path=state) as server:
        mount_adyen(server, api_key=ADYEN_API_KEY, merchant_account=ADYEN_MERCHANT, webhook_url=url)
        with AdyenSandboxControl(server.url) as control:
            control.hold_notifications()
            payment = control.seed_payment(amount=1_000, currency="EUR")
            first = modifications_api(server.url).refund_captured_payment(
                refund_body(400), payment, idempotency_key=key
            )
    assert adyen_receiver.matching(payment) == []
    with SandboxServer(port=0, state_path=state) as server:
        mount_adyen(server, api_key=ADYEN_API_KEY, merchant_account=ADYEN_MERCHANT, webhook_url=url)
        with AdyenSandboxControl(server.url) as control:
            again = modifications_api(server.url).refund_captured_payment(
                refund_body(400), payment, idempotency_key=key
            )
            assert again.message == first.message
            assert [m["amount"] for m in control.modifications(payment)] == [400]
            assert [n["state"] for n in control.notifications(payment)] == ["held"] * 3
            assert control.release_notifications() == 3
            deliveries = eventually(lambda: len(d := adyen_receiver.matching(payment)) == 3 and d)
            codes = [items(d)[0]["eventCode"] for d in deliveries]
            assert codes == ["AUTHORISATION", "CAPTURE", "REFUND"]
