"""POST /codec/decode and /codec/encode: Temporal's codec server, so the Temporal UI can show
encrypted payloads to authenticated ops (configure the UI's codec endpoint to this service)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from domain.status import ErrorCode
from workers.codec import EncryptionCodec, KeyConfigError
from workers.service.deps import OperatorDep, ServicesDep
from workers.service.errors import ApiError, error_responses
from workers.service.openapi import json_body

router = APIRouter(
    prefix="/codec",
    tags=["codec server"],
    responses=error_responses(
        (400, "Not a JSON Payloads message"),
        401,
        (403, "A merchant's reviewer: the codec is for the installation's own"),
        (404, "Payload encryption is not configured"),
        413,
        (422, "A payload does not open with the configured keys"),
    ),
)
_BYTES = {"type": "string", "format": "byte"}
_PAYLOAD = {
    "type": "object",
    "properties": {"metadata": {"type": "object", "additionalProperties": _BYTES}, "data": _BYTES},
    "additionalProperties": False,
}
_PAYLOADS: dict[str, Any] = {
    "type": "object",
    "description": "Temporal's `Payloads` message in protobuf JSON",
    "properties": {"payloads": {"type": "array", "items": _PAYLOAD}},
    "additionalProperties": False,
}
_OPENED: dict[int | str, dict[str, Any]] = {200: {"content": {"application/json": {"schema": _PAYLOADS}}}}


def _codec(services: ServicesDep) -> EncryptionCodec:
    if services.codec is None:
        raise ApiError(404, ErrorCode.NOT_FOUND, "payload encryption is not configured")
    return services.codec


async def _payloads(request: Request) -> Payloads:
    """The body as a `Payloads` message: a JSON object (protobuf's parser alone also takes `""` and
    `[]` for an empty message, and fails on bytes that are not UTF-8 or nest too deep)."""
    try:
        message = json.loads(await request.body())
        if not isinstance(message, dict):
            raise json_format.ParseError("a Payloads message is a JSON object")
        return json_format.ParseDict(message, Payloads())
    except (ValueError, RecursionError, json_format.ParseError) as err:  # ValueError: not JSON, not UTF-8
        raise ApiError(400, ErrorCode.INVALID_JSON, f"not a Payloads message: {err}") from err


@router.post("/decode", responses=_OPENED, openapi_extra=json_body(_PAYLOADS))
async def decode(request: Request, services: ServicesDep, operator: OperatorDep) -> Response:
    """Open payloads for an installation reviewer; the UI sends its bearer token when told to. A
    payload marked encrypted that does not open (unknown key, tampered or cut short) is a 422."""
    codec = _codec(services)
    payloads = await _payloads(request)
    try:
        opened = await codec.decode(payloads.payloads)
    except KeyConfigError as err:
        raise ApiError(422, ErrorCode.INVALID_REQUEST, str(err)) from err
    body = json_format.MessageToJson(Payloads(payloads=opened))
    return Response(body, media_type="application/json")


@router.post("/encode", responses=_OPENED, openapi_extra=json_body(_PAYLOADS))
async def encode(request: Request, services: ServicesDep, operator: OperatorDep) -> Response:
    codec = _codec(services)
    payloads = await _payloads(request)
    sealed = await codec.encode(payloads.payloads)
    return Response(json_format.MessageToJson(Payloads(payloads=sealed)), media_type="application/json")
