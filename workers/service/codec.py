"""POST /codec/decode and /codec/encode: Temporal's codec server, so the Temporal UI can show
encrypted payloads to authenticated ops (configure the UI's codec endpoint to this service)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from domain.status import ErrorCode
from workers.codec import EncryptionCodec, KeyConfigError
from workers.service.deps import OperatorDep, ServicesDep
from workers.service.errors import ApiError

router = APIRouter(prefix="/codec", tags=["codec server"])


def _codec(services: ServicesDep) -> EncryptionCodec:
    if services.codec is None:
        raise ApiError(404, ErrorCode.NOT_FOUND, "payload encryption is not configured")
    return services.codec


async def _payloads(request: Request) -> Payloads:
    try:
        return json_format.Parse(await request.body(), Payloads())
    except json_format.ParseError as err:
        raise ApiError(400, ErrorCode.INVALID_JSON, f"not a Payloads message: {err}") from err


@router.post("/decode")
async def decode(request: Request, services: ServicesDep, operator: OperatorDep) -> Response:
    """Open payloads for an installation reviewer; the UI sends its bearer token when told to."""
    codec = _codec(services)
    payloads = await _payloads(request)
    try:
        opened = await codec.decode(payloads.payloads)
    except KeyConfigError as err:
        raise ApiError(422, ErrorCode.INVALID_REQUEST, str(err)) from err
    body = json_format.MessageToJson(Payloads(payloads=opened))
    return Response(body, media_type="application/json")


@router.post("/encode")
async def encode(request: Request, services: ServicesDep, operator: OperatorDep) -> Response:
    codec = _codec(services)
    payloads = await _payloads(request)
    sealed = await codec.encode(payloads.payloads)
    return Response(json_format.MessageToJson(Payloads(payloads=sealed)), media_type="application/json")
