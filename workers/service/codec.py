"""POST /codec/decode and /codec/encode: Temporal's codec server, so the Temporal UI can show
encrypted payloads to authenticated ops (configure the UI's codec endpoint to this service).

The UI calls it from the reviewer's browser: a reviewer signs in once at /codec/login with their
token, and the browser then sends the session cookie with the UI's codec calls."""

from __future__ import annotations

import html
import json
import time
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from domain.reviewer_tokens import token_digest
from domain.status import ErrorCode
from workers.codec import EncryptionCodec, KeyConfigError
from workers.service import codec_session
from workers.service.deps import CodecReaderDep, Reviewer, ServicesDep
from workers.service.errors import ApiError, error_responses
from workers.service.openapi import json_body
from workers.service.scope import EVERY_MERCHANT

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
# protobuf's JSON mapping takes `null` for any field as its default (no metadata, no data): the
# schema says so rather than promise a 400 the parser never gives
_PAYLOAD = {
    "type": "object",
    "properties": {
        "metadata": {"type": ["object", "null"], "additionalProperties": _BYTES},
        "data": {"type": ["string", "null"], "format": "byte"},
    },
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
async def decode(request: Request, services: ServicesDep, operator: CodecReaderDep) -> Response:
    """Open payloads for an installation reviewer (bearer token, or the UI's codec session). A
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
async def encode(request: Request, services: ServicesDep, operator: CodecReaderDep) -> Response:
    codec = _codec(services)
    payloads = await _payloads(request)
    sealed = await codec.encode(payloads.payloads)
    return Response(json_format.MessageToJson(Payloads(payloads=sealed)), media_type="application/json")


_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Refunds codec sign-in</title></head>
<body style="font-family: sans-serif; max-width: 32em; margin: 4em auto">{body}</body></html>"""
_FORM = """<h1>Decrypt payloads in the Temporal UI</h1>
<p>Sign in with your reviewer token: this browser then sends a session with the Temporal UI's codec
calls for {hours} hours, or until your token is removed. Signing out (POST logout) removes it from
this browser only: a copy taken before stays valid until then.</p>
<form method="post" action="login"><input type="password" name="token" autocomplete="off" autofocus
 size="40"> <button>Sign in</button></form>"""
# never cached, never framed by another page (a framed sign-in could be clicked into by that page)
_NO_STORE = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
}


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
async def login_page() -> HTMLResponse:
    form = _FORM.format(hours=codec_session.SESSION_SECONDS // 3600)
    return HTMLResponse(_PAGE.format(body=form), headers=_NO_STORE)


@router.post("/login", response_class=HTMLResponse, include_in_schema=False)
async def login(request: Request, services: ServicesDep) -> HTMLResponse:
    """An installation reviewer's token, posted by the form above, opens a codec session."""
    try:
        fields = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=4)
    except ValueError as err:  # more fields than the form has
        raise ApiError(400, ErrorCode.INVALID_REQUEST, "not the sign-in form") from err
    token = (fields.get("token") or [""])[0].strip()
    reviewer = services.settings.reviewer_for(token)  # the installation's own reviewers only
    if reviewer is None:
        raise ApiError(401, ErrorCode.UNAUTHORIZED, "not a token of the installation's reviewers")
    return _signed_in(services, request, Reviewer(reviewer, EVERY_MERCHANT), token_digest(token))


def _signed_in(services: ServicesDep, request: Request, reviewer: Reviewer, digest: str) -> HTMLResponse:
    secrets = services.settings.review_signing_secrets
    session = codec_session.issue(secrets, reviewer.name, digest, int(time.time()))
    page = HTMLResponse(
        _PAGE.format(body=f"<p>Signed in as {html.escape(reviewer.name)}. You can close this tab.</p>"),
        headers=_NO_STORE,
    )
    page.set_cookie(
        codec_session.COOKIE,
        session,
        max_age=codec_session.SESSION_SECONDS,
        path="/codec",
        httponly=True,
        samesite="strict",  # same-site pages only: the UI and the service share a site
        secure=_https(request),
    )
    return page


@router.post("/logout", include_in_schema=False)
async def logout(request: Request) -> Response:
    response = Response(status_code=204, headers=_NO_STORE)
    response.delete_cookie(
        codec_session.COOKIE, path="/codec", httponly=True, samesite="strict", secure=_https(request)
    )
    return response


def _https(request: Request) -> bool:
    """Reached over TLS, here or at the proxy in front (its first hop is the client's)."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"
