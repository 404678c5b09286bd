"""POST /v1/refund-requests: authenticate, validate, start one workflow per request id."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from adapters.db import clients, refunds
from adapters.db.models import RefundRow
from domain import signature
from domain.clients import BUDGET_CODE, LIMIT_CODE, Client, requested_by
from domain.contracts import RefundWorkflowInput, RiskReason, SignatureEvidence
from domain.fraud_warnings import WARNING_ID_PREFIX
from domain.json_keys import duplicate_key
from domain.naming import (
    PRODUCT_ID_PREFIXES,
    SA_MERCHANT,
    SA_PAYMENT,
    SA_PROVIDER,
    SA_REQUESTED_BY,
    SA_STATUS,
    refund_id,
    workflow_id,
)
from domain.requests import AS_SENT, REFUND_ID_LENGTH, REQUEST_ID_PATTERN, RefundRequest
from domain.status import ErrorCode, RefundStatus
from workers.bearer import bearer_token
from workers.service.deps import Services, ServicesDep, client_for_key
from workers.service.errors import ApiError, error_responses, temporal_unavailable
from workers.service.metrics import ACK_SECONDS, CLIENT_REQUESTS, REFUND_REQUESTS
from workers.service.openapi import json_body
from workers.service.reads import current_state
from workflows.refund import RefundWorkflow

BODY_DIGEST = "body_sha256"

router = APIRouter(prefix="/v1/refund-requests", tags=["refund requests"])


class Held(BaseModel):
    code: str
    detail: str


class Accepted(BaseModel):
    request_id: str
    workflow_id: str
    status: RefundStatus
    held_for: list[Held] | None = Field(
        default=None,
        description="An API client's new request held for a human at intake, and why (over its maximum "
        "per refund, over its daily budget); absent otherwise. The risk rules may still hold it later.",
    )


def _request_schema() -> dict[str, Any]:
    """The body as a merchant sends it: its own request id, never one marked with a merchant."""
    schema = RefundRequest.model_json_schema()
    schema["properties"]["request_id"]["pattern"] = REQUEST_ID_PATTERN
    return schema


# request ids the product starts workflows under itself: no merchant or client may take one first
_RESERVED_PREFIXES = (WARNING_ID_PREFIX, *PRODUCT_ID_PREFIXES)

_CLIENT_DOC = (
    "`Bearer <key>` of an API client (`refunds client create`), instead of `Refund-Signature`: the "
    "refund is the client's merchant's, limited to the client's reasons; over its maximum per refund "
    "or its daily budget it is started but held for a human"
)
_SIGNATURE_DOC = '`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`; several `v1=` during rotation'


@router.post(
    "",
    status_code=202,
    response_model=Accepted,
    response_model_exclude_none=True,
    responses={
        200: {
            "model": Accepted,
            "description": "The same request again: the existing workflow, nothing new started",
        },
        **error_responses(
            400,
            (
                401,
                "Missing, invalid or expired signature, an unknown merchant, or an unknown or revoked key",
            ),
            (
                403,
                "A client's key is valid but does not reach this: a reason it may not ask for "
                "(`reason_not_allowed`) or another merchant (`merchant_not_allowed`)",
            ),
            (409, "The request_id was used before with another body"),
            413,
            (422, "Malformed body"),
            503,
        ),
    },
    openapi_extra=json_body(_request_schema()),
)
async def create_refund_request(
    request: Request,
    response: Response,
    services: ServicesDep,
    refund_signature: Annotated[str | None, Header(description=_SIGNATURE_DOC)] = None,
    refund_merchant: Annotated[
        str | None, Header(description="The merchant whose secret signed the request (none: the default)")
    ] = None,
    authorization: Annotated[str | None, Header(description=_CLIENT_DOC)] = None,
) -> Accepted:
    started = time.perf_counter()
    try:
        accepted = await _admit(request, response, services, refund_signature, refund_merchant, authorization)
    except ApiError as err:
        REFUND_REQUESTS.labels(outcome=err.code).inc()
        raise
    REFUND_REQUESTS.labels(outcome="replayed" if response.status_code == 200 else "accepted").inc()
    ACK_SECONDS.observe(time.perf_counter() - started)
    return accepted


async def _admit(
    request: Request,
    response: Response,
    services: Services,
    header: str | None,
    merchant: str | None,
    authorization: str | None = None,
) -> Accepted:
    """One RPC for a new request: Temporal's workflow id is the idempotency record.

    A request id seen before is answered from its workflow: the same request (its canonical digest
    is in the memo) gets 200 and that workflow, a changed one 409. Nothing new starts either way.
    A merchant's request ids are its own: its refund is kept under the id marked with the merchant
    (`domain.naming.refund_id`), so another merchant's same id is another refund, never a 409.
    """
    raw = await request.body()
    key = bearer_token(authorization)
    client = await run_in_threadpool(_client, services, key, merchant) if key else None
    merchant_id = client.merchant_id if client else verify_merchant_signature(services, raw, header, merchant)
    sent = _parse(raw)
    if sent.request_id.startswith(_RESERVED_PREFIXES):
        raise _invalid_request_id(
            f"ids starting {' or '.join(map(repr, _RESERVED_PREFIXES))} are the product's own "
            "(refunds on fraud warnings, dashboard refunds, late failures)"
        )
    if client is not None and not client.allows(sent.reason_code):
        CLIENT_REQUESTS.labels(client=client.name, outcome=ErrorCode.REASON_NOT_ALLOWED.value).inc()
        raise ApiError(
            403,
            ErrorCode.REASON_NOT_ALLOWED,
            f"client {client.name} may not ask for refunds with reason {sent.reason_code!r}",
        )
    owner = services.owner(merchant_id)
    refund = _kept_as(sent, owner)
    digest = refund.digest_for(owner)
    wf_id = workflow_id(refund.request_id)
    settled = await run_in_threadpool(settled_row, services, refund.request_id)
    if settled is not None:  # the lasting record, whether or not Temporal still remembers the run
        if not _settled_as(settled, refund, digest, owner):
            raise _conflict()
        response.status_code = 200
        if client is not None:
            CLIENT_REQUESTS.labels(client=client.name, outcome="replayed").inc()
        return _accepted(sent, wf_id, RefundStatus(settled.status))
    if owner is not None and (kept_bare := await _kept_bare(services, sent, owner)) is not None:
        response.status_code = 200
        return _accepted(sent, workflow_id(sent.request_id), kept_bare)
    if client is not None:
        return await _admit_for_client(services, response, client, raw, sent, refund, digest)
    evidence = SignatureEvidence(
        raw_body=raw.decode(), signature_header=header or "", received_at=datetime.now(UTC)
    )
    if await start_refund(services, refund, evidence, digest, merchant_id):
        return _accepted(sent, wf_id, RefundStatus.RECEIVED)
    return await _answer_known(services, response, sent, wf_id, digest)


async def _answer_known(
    services: Services,
    response: Response,
    sent: RefundRequest,
    wf_id: str,
    digest: str,
    kept: _Kept | None = None,
    client: Client | None = None,
) -> Accepted:
    """A request whose workflow exists: the same one again is 200, another body 409. An API
    client's request is its own: the same body another requester sent is a 409 too (it learns
    nothing of a refund it did not ask for), and its own held one says again why it is held."""
    kept = kept or await _kept(services, wf_id)
    if kept.digest != digest or (client is not None and kept.requested_by != requested_by(client.name)):
        raise _conflict()
    response.status_code = 200
    if client is None:
        return _accepted(sent, wf_id, await _status(services, wf_id, kept))
    return await _client_view(services, sent, wf_id, kept)


async def _client_view(services: Services, sent: RefundRequest, wf_id: str, kept: _Kept) -> Accepted:
    """A client's own request, sent again: its status, and why its own limits held it (the reasons
    its 202 gave), never the merchant's risk rules."""
    try:
        state = await current_state(services, wf_id)
    except ApiError:
        state = None
    if state is None:
        return _accepted(sent, wf_id, await _status(services, wf_id, kept))
    accepted = _accepted(sent, wf_id, state.status)
    own = [r for r in (state.risk.reasons if state.risk else []) if r.code in (LIMIT_CODE, BUDGET_CODE)]
    if own and state.status is RefundStatus.AWAITING_REVIEW:
        accepted.held_for = [Held(code=reason.code, detail=reason.detail) for reason in own]
    return accepted


def _client(services: Services, key: str, merchant: str | None) -> Client:
    """The active client this key proves, acting for a merchant configured here: 401 otherwise."""
    client = client_for_key(services, key)
    if client is None:
        raise ApiError(401, ErrorCode.UNAUTHORIZED, "unknown or revoked client key")
    profile = services.merchants.get(client.merchant_id)
    if profile is None or not profile.secrets:
        raise ApiError(401, ErrorCode.UNAUTHORIZED, f"client {client.name}'s merchant is not configured here")
    if merchant is not None and merchant != client.merchant_id:
        raise ApiError(
            403,
            ErrorCode.MERCHANT_NOT_ALLOWED,
            f"client {client.name} acts for merchant {client.merchant_id!r} only",
        )
    return client


async def _admit_for_client(
    services: Services,
    response: Response,
    client: Client,
    raw: bytes,
    sent: RefundRequest,
    refund: RefundRequest,
    digest: str,
) -> Accepted:
    """A client's new request: reserve its budget (or hold it for a human), sign the body as the
    merchant's platform would (the worker re-verifies it like any other), start. Only the refund's
    outcome gives the reservation back."""
    wf_id = workflow_id(refund.request_id)
    kept = await _kept(services, wf_id)
    if kept.found:
        # sent again: answered from its workflow, reserving nothing (a refund held at intake stays a
        # human's to decide, however much budget is left now; what it reserved it keeps)
        known = await _answer_known(services, response, sent, wf_id, digest, kept, client)
        CLIENT_REQUESTS.labels(client=client.name, outcome="replayed").inc()
        return known
    held = await run_in_threadpool(_reserve, services, client, refund)
    secret = services.merchants[client.merchant_id].secrets[0]
    evidence = SignatureEvidence(
        raw_body=raw.decode(),
        signature_header=signature.sign([secret], int(time.time()), raw),
        received_at=datetime.now(UTC),
    )
    who = requested_by(client.name)
    # The reservation is never given back here, only by the refund's own outcome (activities/
    # ledger.py): a start that failed may have started the workflow (its answer lost), and a start
    # that found the workflow may have found this request's twin, sent at the same time, which saw
    # this reservation and counts on it. A retry with the same id reuses what it reserved; one never
    # retried holds budget until the window rolls: spending less, never more.
    if await start_refund(services, refund, evidence, digest, client.merchant_id, who, held):
        accepted = _accepted(sent, wf_id, RefundStatus.RECEIVED)
        if held:  # the client learns its own limits held it: nothing of anyone else's
            accepted.held_for = [Held(code=reason.code, detail=reason.detail) for reason in held]
        for outcome in [reason.code for reason in held] or ["accepted"]:
            CLIENT_REQUESTS.labels(client=client.name, outcome=outcome).inc()
        return accepted
    known = await _answer_known(services, response, sent, wf_id, digest, client=client)
    CLIENT_REQUESTS.labels(client=client.name, outcome="replayed").inc()
    return known


def _reserve(services: Services, client: Client, refund: RefundRequest) -> tuple[RiskReason, ...]:
    """Reserve the client's budget for this refund; why a human decides it instead (empty: within
    the client's own limits, reserved)."""
    over = client.over_max(refund.amount)
    if over is not None or refund.amount is None:
        return (over,) if over else ()
    try:
        with services.db.transaction() as session:
            reserved = clients.reserve(session, client, refund.request_id, refund.amount, datetime.now(UTC))
    except SQLAlchemyError as err:
        raise ApiError(
            503, ErrorCode.DATABASE_UNAVAILABLE, "the client's budget cannot be reserved right now; retry"
        ) from err
    return (reserved.held,) if reserved.held else ()


async def _kept_bare(services: Services, sent: RefundRequest, owner: str) -> RefundStatus | None:
    """The status of `owner`'s refund kept under the bare request id, as every refund was before
    merchants had ids of their own (so a resend of it never refunds again); 409 for another body.
    None when no refund of `owner`'s is kept so: another merchant's bare id is none of its business."""
    digest = sent.digest_for(owner)
    settled = await run_in_threadpool(settled_row, services, sent.request_id)
    if settled is not None:
        if settled.merchant != owner:
            return None
        if not _settled_as(settled, sent, digest, owner):
            raise _conflict()
        return RefundStatus(settled.status)
    wf_id = workflow_id(sent.request_id)
    kept = await _kept(services, wf_id)
    if kept.merchant != owner:
        return None
    if kept.digest != digest:
        raise _conflict()
    return await _status(services, wf_id, kept)


def _accepted(sent: RefundRequest, wf_id: str, status: RefundStatus) -> Accepted:
    """The merchant's own request id, and the workflow its refund runs as."""
    return Accepted(request_id=sent.request_id, workflow_id=wf_id, status=status)


def _kept_as(sent: RefundRequest, owner: str | None) -> RefundRequest:
    """The request as its refund is kept: under the request id marked with its merchant."""
    kept = refund_id(owner, sent.request_id)
    if len(kept) > REFUND_ID_LENGTH:
        most = REFUND_ID_LENGTH - len(kept) + len(sent.request_id)
        raise _invalid_request_id(f"{owner}'s request ids are at most {most} characters", "string_too_long")
    return sent.model_copy(update={"request_id": kept})


def _invalid_request_id(message: str, kind: str = "value_error") -> ApiError:
    """A 422 naming the request id, in the shape of every other invalid field."""
    details = [{"loc": ["request_id"], "msg": message, "type": kind}]
    return ApiError(422, ErrorCode.INVALID_REQUEST, "request is invalid", details)


def _conflict() -> ApiError:
    return ApiError(409, ErrorCode.REQUEST_CONFLICT, "request_id was already used with a different body")


def settled_row(services: Services, request_id: str) -> RefundRow | None:
    try:
        with services.db.transaction() as session:
            return refunds.get(session, request_id)
    except SQLAlchemyError as err:  # never start what the lasting record may already have settled
        raise ApiError(
            503, ErrorCode.DATABASE_UNAVAILABLE, "the refund database cannot be read right now; retry"
        ) from err


def _settled_as(row: RefundRow, refund: RefundRequest, digest: str, owner: str | None) -> bool:
    """Whether `refund` is the request the row settled: by digest, or (a row settled before
    digests were kept) by what the row remembers of it."""
    if row.request_digest is not None:
        return row.request_digest == digest
    amount_matches = refund.amount is None or (row.amount, row.currency) == (
        refund.amount.value,
        refund.amount.currency,
    )
    remembered = (row.merchant, row.provider, row.payment_reference, row.order_id)
    return amount_matches and remembered == (
        owner,
        refund.provider.value,
        refund.payment_reference,
        refund.order_id,
    )


def verify_merchant_signature(
    services: Services, raw: bytes, header: str | None, merchant: str | None
) -> str:
    """The merchant (`Refund-Merchant`, none: the default one) whose secret signed `raw`: its
    secrets and no other's."""
    merchant_id = merchant or services.settings.merchant_id
    profile = services.merchants.get(merchant_id)
    if profile is None:
        raise ApiError(401, ErrorCode.UNAUTHORIZED, f"unknown merchant {merchant_id!r}")
    verify_signature(raw, header, profile.secrets)
    return merchant_id


def verify_signature(raw: bytes, header: str | None, secrets: list[str]) -> None:
    try:
        signature.verify(header, raw, secrets, int(time.time()))
    except signature.SignatureError as err:
        raise ApiError(401, err.code, err.message) from err


def _parse(raw: bytes) -> RefundRequest:
    """The body read by the parser the worker re-verifies it with (`activities.validation`): a body
    only one of two parsers takes (UTF-16, a byte order mark, a lone surrogate, nesting past the
    parser's depth) is refused here, never accepted to fail later as a signature that does not match."""
    try:
        parsed = RefundRequest.model_validate_json(raw, context=AS_SENT)
    except ValidationError as err:
        errors = err.errors(include_url=False)
        unreadable = next((e for e in errors if e["type"] == "json_invalid"), None)
        if unreadable is not None:
            reason = (unreadable.get("ctx") or {}).get("error", unreadable["msg"])
            raise ApiError(400, ErrorCode.INVALID_JSON, f"body is not JSON: {reason}") from err
        details = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]
        raise ApiError(422, ErrorCode.INVALID_REQUEST, "request is invalid", details) from err
    twice = duplicate_key(raw)
    if twice is not None:
        raise ApiError(400, ErrorCode.INVALID_JSON, f"body is not JSON we take: {twice}")
    return parsed


async def start_refund(
    services: Services,
    refund: RefundRequest,
    evidence: SignatureEvidence,
    digest: str,
    merchant_id: str,
    who: str | None = None,
    held_for: tuple[RiskReason, ...] = (),
    doing: str = "accepting refund requests",
) -> bool:
    """Start the refund's workflow; False when one with this id exists, running or closed. `doing`
    says what a 503 was in the middle of."""
    settings = services.settings
    default = merchant_id == settings.merchant_id
    try:
        await services.temporal.start_workflow(
            RefundWorkflow.run,
            RefundWorkflowInput(
                request=refund,
                evidence=evidence,
                policy=services.policies[merchant_id],
                risk_model=services.risk_model,
                merchant_id=None if default else merchant_id,
                review_keys=services.review_keys,
                requested_by=who,
                held_for=held_for,
            ),
            id=workflow_id(refund.request_id),
            task_queue=settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=_initial_attributes(refund, merchant_id, who),
            memo={BODY_DIGEST: digest},
        )
    except WorkflowAlreadyStartedError:
        return False
    except RPCError as err:
        raise temporal_unavailable(err, doing) from err
    return True


@dataclass(frozen=True)
class _Kept:
    """What Temporal keeps of a workflow started for a request: all None when there is none."""

    found: bool = False
    digest: str | None = None
    merchant: str | None = None
    status: str | None = None  # as last published to the search attributes
    requested_by: str | None = None  # an API client that asked for it; None: the merchant's platform


async def _kept(services: Services, wf_id: str) -> _Kept:
    try:
        description = await services.temporal.get_workflow_handle(wf_id).describe()
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            return _Kept()
        raise _unavailable(err) from err
    digest: str | None = await description.memo_value(BODY_DIGEST, None)
    attributes = description.typed_search_attributes
    return _Kept(
        True, digest, attributes.get(SA_MERCHANT), attributes.get(SA_STATUS), attributes.get(SA_REQUESTED_BY)
    )


def _unavailable(err: RPCError) -> ApiError:
    return temporal_unavailable(err, "accepting refund requests")


def _initial_attributes(refund: RefundRequest, merchant: str, who: str | None) -> TypedSearchAttributes:
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(SA_STATUS, RefundStatus.RECEIVED.value),
        SearchAttributePair(SA_PROVIDER, refund.provider.value),
        SearchAttributePair(SA_PAYMENT, refund.payment_reference),
        SearchAttributePair(SA_MERCHANT, merchant),
    ]
    if who is not None:  # the merchant's platform is the rule; others are named, to be found
        pairs.append(SearchAttributePair(SA_REQUESTED_BY, who))
    return TypedSearchAttributes(pairs)


async def _status(services: Services, wf_id: str, kept: _Kept) -> RefundStatus:
    """The refund's status for a request sent again: its workflow's answer, else (no worker answers
    now) what the workflow last published. The request is known, nothing new starts: never a 503."""
    try:
        state = await current_state(services, wf_id)
    except ApiError:
        return RefundStatus(kept.status) if kept.status in set(RefundStatus) else RefundStatus.RECEIVED
    return state.status if state is not None else RefundStatus.RECEIVED
