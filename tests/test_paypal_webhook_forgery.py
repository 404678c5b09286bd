"""PayPal signs `transmission_id|transmission_time|webhook_id|crc32(body)`, and a crc32 can be matched
at will: whoever saw one genuine delivery could send any body padded to its CRC under its headers. A
transmission id is taken with one body only; the signing certificate must be PayPal's (its subject,
its chain to a CA we trust, valid at the transmission and now, on every use, cached or not); and a
reversal's word opens a hold only once PayPal's own record of it is read back."""

from __future__ import annotations

import json
import time
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509

from adapters.db import audit, holds, ledger
from adapters.psp.base import WebhookRejected
from adapters.psp.paypal import PayPalAdapter
from domain.status import Provider
from sandbox.paypal import certificates
from sandbox.paypal.control import PayPalSandboxControl
from tests.conftest import Stack
from tests.deliveries import post
from tests.fixtures.paypal import (  # noqa: F401  (fixtures, used by name)
    PayPalEnvironment,
    fixture_paypal_adapter,
    fixture_paypal_control,
    fixture_paypal_sandbox,
    fixture_paypal_webhooks,
)
from tests.flows import submit, wait_for_status
from tests.helpers import eventually, refund_body, unique

FILLER = "@@crc@@"
WIDTH = 8  # characters of '`'..DEL: 5 free bits each, 40 unknowns for crc32's 32 equations


def forge_crc(prefix: bytes, suffix: bytes, target: int) -> bytes:
    """WIDTH printable characters that give `prefix + them + suffix` the crc32 `target`.

    crc32 is affine over GF(2): flipping one input bit flips a fixed set of output bits, whatever the
    other bits are. So crc(base with bits x flipped) = crc(base) ^ M·x, and x solves M·x = target ^
    crc(base) by Gaussian elimination. Only the low five bits of each character vary (0x60-0x7F:
    letters and `{|}~`, never a quote or backslash), so the result stays inside a JSON string."""
    filler = bytearray(b"`" * WIDTH)
    base = zlib.crc32(prefix + bytes(filler) + suffix)
    basis: list[tuple[int, int]] = []  # (crc difference, the bits flipped for it), distinct top bits
    for position in range(WIDTH * 5):
        trial = bytearray(filler)
        trial[position // 5] ^= 1 << (position % 5)
        vector, combination = zlib.crc32(prefix + bytes(trial) + suffix) ^ base, 1 << position
        for pivot, pivot_combination in basis:
            if vector ^ pivot < vector:  # the pivot's top bit is set in vector
                vector, combination = vector ^ pivot, combination ^ pivot_combination
        if vector:
            basis.append((vector, combination))
            basis.sort(reverse=True)
    needed, combination = target ^ base, 0
    for pivot, pivot_combination in basis:
        if needed ^ pivot < needed:
            needed, combination = needed ^ pivot, combination ^ pivot_combination
    assert needed == 0, "the free bits do not span crc32's 32 bits"
    for position in range(WIDTH * 5):
        if combination >> position & 1:
            filler[position // 5] ^= 1 << (position % 5)
    return bytes(filler)


def forged_like(genuine: bytes, event: dict[str, Any]) -> bytes:
    """`event` (with a FILLER in one string field) as JSON, padded to `genuine`'s crc32."""
    prefix, suffix = json.dumps(event).encode().split(FILLER.encode())
    forged = prefix + forge_crc(prefix, suffix, zlib.crc32(genuine)) + suffix
    assert zlib.crc32(forged) == zlib.crc32(genuine) and forged != genuine
    assert json.loads(forged)["event_type"] == event["event_type"]  # valid JSON, as PayPal's
    return forged


def refund_failed(refund_id: str, request_id: str) -> dict[str, Any]:
    return {
        "id": unique("WH-FORGED"),
        "event_type": "PAYMENT.REFUND.FAILED",
        "resource": {
            "id": refund_id,
            "status": "FAILED",
            "status_details": {"reason": "ECHECK"},
            "amount": {"value": "10.00", "currency_code": "EUR"},
            "custom_id": request_id,
            "note_to_payer": FILLER,
        },
    }


def refunded_event(refund_id: str) -> str:
    return json.dumps(
        {
            "id": unique("WH"),
            "event_type": "PAYMENT.CAPTURE.REFUNDED",
            "resource": {"id": refund_id, "status": "COMPLETED", "custom_id": unique("rid")},
        }
    )


def test_the_crc_forgery_matches_any_crc() -> None:
    for target in (0, 0xFFFFFFFF, zlib.crc32(b"genuine")):
        filler = forge_crc(b'{"a": "', b'"}', target)
        assert zlib.crc32(b'{"a": "' + filler + b'"}') == target
        assert all(0x60 <= c <= 0x7F for c in filler)


# the adapter, against the sandbox ---------------------------------------------------------------


def _rejected(adapter: PayPalAdapter, body: bytes, headers: dict[str, str]) -> str:
    with pytest.raises(WebhookRejected) as caught:
        adapter.parse_webhook(body, headers)
    return caught.value.code


def test_a_body_padded_to_a_genuine_deliverys_crc_is_refused(
    paypal_adapter: PayPalAdapter, paypal_control: PayPalSandboxControl
) -> None:
    genuine = refunded_event("REFUND0000000001").encode()
    headers = paypal_control.sign(genuine.decode())
    assert paypal_adapter.parse_webhook(genuine, headers)[0].kind == "refund_update"

    forged = forged_like(genuine, refund_failed("REFUND0000000001", unique("rid")))
    assert _rejected(paypal_adapter, forged, headers) == "signature_replayed"
    # PayPal's own retry of that very delivery is still taken (and deduplicated by its event id)
    assert paypal_adapter.parse_webhook(genuine, headers)[0].kind == "refund_update"
    # the forgery first, then the genuine body: the transmission id is taken with the first body seen
    fresh = paypal_control.sign(genuine.decode())
    assert paypal_adapter.parse_webhook(genuine, fresh)[0].kind == "refund_update"
    assert _rejected(paypal_adapter, forged, fresh) == "signature_replayed"


@pytest.mark.parametrize("certificate", ["expired", "other_subject", "self_signed", "forged_ca"])
def test_a_certificate_paypal_would_not_sign_with_is_refused(
    paypal_adapter: PayPalAdapter, paypal_control: PayPalSandboxControl, certificate: str
) -> None:
    body = refunded_event("REFUND0000000002")
    headers = paypal_control.sign(body, certificate=certificate)
    assert _rejected(paypal_adapter, body.encode(), headers) == "certificate_untrusted"
    # the same certificate again, now cached: refused again
    again = paypal_control.sign(body, certificate=certificate)
    assert _rejected(paypal_adapter, body.encode(), again) == "certificate_untrusted"


def test_a_cached_certificate_is_checked_at_every_use(
    paypal_adapter: PayPalAdapter, paypal_control: PayPalSandboxControl
) -> None:
    first, second = refunded_event("REFUND0000000003"), refunded_event("REFUND0000000004")
    signed_first = paypal_control.sign(first, certificate="short_lived")
    signed_second = paypal_control.sign(second, certificate="short_lived")
    assert signed_first["PAYPAL-CERT-URL"] == signed_second["PAYPAL-CERT-URL"]
    assert paypal_adapter.parse_webhook(first.encode(), signed_first)  # valid now: taken, and cached

    # signed before the certificate was valid, though inside the 15 minute tolerance
    earlier = (datetime.now(UTC) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    backdated = paypal_control.sign(first, sent_at=earlier, certificate="short_lived")
    assert backdated["PAYPAL-CERT-URL"] == signed_first["PAYPAL-CERT-URL"]
    assert _rejected(paypal_adapter, first.encode(), backdated) == "certificate_untrusted"

    time.sleep(certificates.SHORT_LIVED_SECONDS + 1)  # the cached certificate has expired since
    assert _rejected(paypal_adapter, second.encode(), signed_second) == "certificate_untrusted"


@pytest.mark.parametrize(
    "event_type", ["PAYMENT.CAPTURE.COMPLETED", "PAYMENT.CAPTURE.DENIED", "PAYMENT.CAPTURE.PENDING"]
)
def test_a_capture_event_moves_nothing_on_its_own_word(
    paypal_adapter: PayPalAdapter, paypal_control: PayPalSandboxControl, event_type: str
) -> None:
    """Only refund outcomes (read back before they book) and holds (which move no money) come of a
    PayPal event; a payment's state is read with `lookup_payment`, never taken from an event."""
    body = json.dumps(
        {
            "id": unique("WH"),
            "event_type": event_type,
            "resource": {"id": "CAPTURE000000001", "status": "COMPLETED"},
        }
    )
    [event] = paypal_adapter.parse_webhook(body.encode(), paypal_control.sign(body))
    assert (event.kind, event.update, event.payment) == ("ignored", None, None)


def test_a_signed_reversal_paypal_knows_nothing_of_holds_nothing(
    paypal_adapter: PayPalAdapter, paypal_control: PayPalSandboxControl
) -> None:
    capture = paypal_control.seed_capture(amount="20.00", currency="EUR")
    body = json.dumps(
        {
            "id": unique("WH"),
            "event_type": "PAYMENT.CAPTURE.REVERSED",
            "resource": {
                "id": "REVERSAL00000002",
                "status": "COMPLETED",
                "links": [{"rel": "up", "href": f"https://api.paypal.com/v2/payments/captures/{capture}"}],
            },
        }
    )
    [event] = paypal_adapter.parse_webhook(body.encode(), paypal_control.sign(body))
    assert event.kind == "ignored"
    reversal = paypal_control.reverse_capture(capture, "5.00")
    # PayPal's own reversal, named with another capture in the event: the capture PayPal names holds
    other = json.loads(body) | {"id": unique("WH")}
    other["resource"] |= {"id": reversal["id"]}
    other["resource"]["links"][0]["href"] = "https://api.paypal.com/v2/payments/captures/SOMEONEELSE0000"
    signed = json.dumps(other)
    [held] = paypal_adapter.parse_webhook(signed.encode(), paypal_control.sign(signed))
    assert (held.kind, held.payment_reference) == ("dispute_opened", capture)


def test_the_sandbox_ca_dev_and_tests_trust_is_the_one_the_sandbox_issues_under(
    paypal_sandbox: PayPalEnvironment,
) -> None:
    from workers.psp_wiring.paypal import SANDBOX_PAYPAL_CA_PEM

    with PayPalSandboxControl(paypal_sandbox.url) as control:
        leaf, issuer = x509.load_pem_x509_certificates(control.cert_pem())
    pinned = x509.load_pem_x509_certificate(SANDBOX_PAYPAL_CA_PEM.encode())
    leaf.verify_directly_issued_by(pinned)
    assert issuer.public_key() == pinned.public_key() and issuer.subject == pinned.subject
    assert leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == (
        "messageverificationcerts.sandbox.paypal.com"
    )


# through the running service ------------------------------------------------------------------


def books(stack: Stack, request_id: str) -> tuple[list[int], list[str]]:
    with stack.database.transaction() as session:
        balances = sorted(ledger.balances(session, request_id).values())
        steps = [entry.step for entry in audit.trail(session, request_id)]
    return balances, steps


async def test_a_forged_failure_under_a_genuine_deliverys_headers_changes_nothing(
    stack: Stack, paypal: PayPalSandboxControl
) -> None:
    capture = paypal.seed_capture(amount="50.00", currency="EUR")
    request_id = unique("forge")
    assert (await submit(stack, refund_body(request_id, capture, amount=1_000, provider="paypal"))).is_success
    done = await wait_for_status(stack, request_id, {"succeeded"})
    refund_id = done["psp_refund_id"]
    [event] = [
        e
        for e in paypal.events()
        if e["event_type"] == "PAYMENT.CAPTURE.REFUNDED" and e["payload"]["resource"]["id"] == refund_id
    ]
    genuine = json.dumps(event["payload"]).encode()
    headers = paypal.sign(genuine.decode())  # a delivery of it, as PayPal's retry would sign it
    settled = books(stack, request_id)

    # the same genuine delivery twice: taken both times, nothing changes
    for _ in range(2):
        response = await post(stack, "paypal", genuine, headers)
        assert response.status_code == 200 and response.headers["Refunds-Signalled"] == "0"

    forged = forged_like(genuine, refund_failed(refund_id, request_id))
    response = await post(stack, "paypal", forged, headers)
    assert (response.status_code, response.json()["error"]["code"]) == (400, "signature_replayed")

    for certificate in ("expired", "other_subject"):
        failed = forged.decode()
        response = await post(stack, "paypal", forged, paypal.sign(failed, certificate=certificate))
        assert (response.status_code, response.json()["error"]["code"]) == (400, "certificate_untrusted")

    # each forgery was refused before anything was signalled or started (a 400 comes before both)
    assert (await wait_for_status(stack, request_id, {"succeeded"}))["audit"] == done["audit"]
    assert books(stack, request_id) == settled
    assert settled[0] == [-1_000, 1_000]


async def test_a_reversal_paypal_does_not_show_opens_no_hold(
    stack: Stack, paypal: PayPalSandboxControl
) -> None:
    """A hold moves no money but stops refunds: PAYMENT.CAPTURE.REVERSED is read back first."""
    capture = paypal.seed_capture(amount="30.00", currency="EUR")
    made_up = json.dumps(
        {
            "id": unique("WH"),
            "event_type": "PAYMENT.CAPTURE.REVERSED",
            "resource": {
                "id": "REVERSAL00000001",
                "status": "COMPLETED",
                "amount": {"value": "30.00", "currency_code": "EUR"},
                "links": [{"rel": "up", "href": f"https://api.paypal.com/v2/payments/captures/{capture}"}],
            },
        }
    )
    response = await post(stack, "paypal", made_up.encode(), paypal.sign(made_up))
    assert response.status_code == 200

    def hold() -> str | None:
        with stack.database.transaction() as session:
            return holds.held(session, Provider.PAYPAL, capture)

    assert hold() is None  # PayPal knows no such reversal

    paypal.reverse_capture(capture)  # PayPal takes the money back: its event, read back, holds

    async def held() -> str | None:
        return hold()

    await eventually(held, lambda reason: reason is not None)
