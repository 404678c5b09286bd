"""Payload encryption: Temporal's history holds no customer data or amounts in plain text, keys
rotate, and authenticated ops read payloads through the codec server."""

from __future__ import annotations

import base64
import json

import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import EventType

from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack, starter_for, worker_for
from tests.helpers import refund_body, signed_headers, unique
from workers.codec import ENCODING, EncryptionCodec, KeyConfigError, new_key_entry, parse_keys
from workers.temporal import connect
from workflows.refund import RefundWorkflow

OLD, NEW = new_key_entry("k1"), new_key_entry("k2")


def plain(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=text.encode())


async def test_payloads_are_sealed_with_the_first_key_and_open_with_any() -> None:
    old = EncryptionCodec(parse_keys(OLD))
    [sealed] = await old.encode([plain('{"amount": 1234}')])
    assert sealed.metadata["encoding"] == ENCODING and b"1234" not in sealed.data

    rotated = EncryptionCodec(parse_keys(f"{NEW},{OLD}"))
    assert (await rotated.decode([sealed]))[0] == plain('{"amount": 1234}')
    [resealed] = await rotated.encode([plain("x")])
    assert resealed.metadata["encryption-key-id"] == b"k2"
    assert (await rotated.decode([plain("untouched")]))[0] == plain("untouched")  # written before encryption

    tampered = Payload(metadata=sealed.metadata, data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1]))
    with pytest.raises(KeyConfigError, match="does not open"):
        await rotated.decode([tampered])
    with pytest.raises(KeyConfigError, match="unknown key"):
        await EncryptionCodec(parse_keys(NEW)).decode([sealed])
    for bad in ("k1:not-base64!", f"k1:{base64.b64encode(b'short').decode()}"):
        with pytest.raises(KeyConfigError):
            parse_keys(bad)


async def test_the_history_holds_no_plain_customer_data_and_the_codec_server_opens_it(
    stack: Stack, sandbox: SandboxControl
) -> None:
    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    request_id = unique("secret")
    encrypted = stack.settings.model_copy(update={"payload_keys": NEW})
    client = await connect(encrypted)
    handle = client.get_workflow_handle_for(RefundWorkflow.run, f"refund-{request_id}")

    async with (
        starter_for(stack, client, payload_keys=NEW) as (settings, http),
        worker_for(stack, settings, client=client),
    ):
        body = refund_body(request_id, payment, amount=1_234, customer_id="cus-very-private")
        assert (await http.post("/v1/refund-requests", content=body, headers=signed_headers(body))).is_success
        state = await handle.result()
        assert state.status.value == "succeeded"

        # the same history, read without the key
        raw = stack.client.get_workflow_handle(f"refund-{request_id}")
        history = await raw.fetch_history()
        started = history.events[0]
        assert started.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
        [payload] = started.workflow_execution_started_event_attributes.input.payloads
        assert payload.metadata["encoding"] == ENCODING
        everything = history.to_json()
        assert "cus-very-private" not in everything and "cus-very-private" not in str(payload.data)

        request = json_format.MessageToJson(Payloads(payloads=[payload]))
        refused = await http.post("/codec/decode", content=request)
        opened = await http.post(
            "/codec/decode", content=request, headers={"Authorization": "Bearer alice-token"}
        )
    assert refused.status_code == 401
    [decoded] = json.loads(opened.text)["payloads"]
    assert "cus-very-private" in base64.b64decode(decoded["data"]).decode()


async def test_the_codec_server_answers_what_is_not_a_payloads_message_or_does_not_open_never_500(
    stack: Stack,
) -> None:
    """Found fuzzing the OpenAPI: bytes that are not UTF-8 were a 500 and `""` or `[]` passed as an
    empty message; a payload marked encrypted but too short for a nonce, or naming its key in bytes
    that are not text, was a 500 too."""
    token = {"Authorization": "Bearer alice-token"}
    forged = [
        Payload(metadata={"encoding": ENCODING, "encryption-key-id": b"k2"}, data=b"short"),
        Payload(metadata={"encoding": ENCODING, "encryption-key-id": b"\xff"}, data=bytes(40)),
    ]
    async with starter_for(stack, payload_keys=NEW) as (_settings, http):
        for body in (b"\xff\xfe", b'""', b"[]", b"[" * 10_000 + b"]" * 10_000):
            for route in ("/codec/decode", "/codec/encode"):
                response = await http.post(route, content=body, headers=token)
                assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_json")
        for payload in forged:
            request = json_format.MessageToJson(Payloads(payloads=[payload]))
            response = await http.post("/codec/decode", content=request, headers=token)
            assert (response.status_code, response.json()["error"]["code"]) == (422, "invalid_request")
