"""Reading a refund: the workflow's live state, with the database's settled row as fallback."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from adapters.db import audit, refunds
from adapters.db.audit import AuditEntry
from domain.contracts import RefundState
from domain.naming import (
    SA_MERCHANT,
    refund_id,
    refund_merchant,
    request_id_from_workflow_id,
    workflow_id,
)
from domain.recorded import as_recorded
from domain.status import ErrorCode, RefundStatus
from workers.service.deps import Services
from workers.service.errors import ApiError, temporal_unavailable
from workers.service.scope import EVERY_MERCHANT, Scope
from workflows.refund import RefundWorkflow

QUERY_TIMEOUT = timedelta(seconds=5)


async def current_state(services: Services, wf_id: str) -> RefundState | None:
    """The workflow's own answer; None for an unknown refund. A settled refund Temporal no longer
    remembers, or no worker can answer for, is read from the database; one still in flight that
    no worker answers for is a 503, never a false 404."""
    handle = services.temporal.get_workflow_handle(wf_id)
    try:
        state: RefundState = await handle.query(RefundWorkflow.state, rpc_timeout=QUERY_TIMEOUT)
    except (RPCError, WorkflowQueryFailedError) as err:  # unreachable, or no worker could answer
        settled = await run_in_threadpool(_settled_state, services, request_id_from_workflow_id(wf_id))
        if isinstance(err, RPCError) and err.status is RPCStatusCode.NOT_FOUND:
            return settled  # the lasting record outlives Temporal's retention
        if settled is None:
            raise temporal_unavailable(err, "reading this refund") from err
        return settled
    if state.status is RefundStatus.SUCCEEDED:  # the PSP may have failed it since
        return as_recorded(state, await run_in_threadpool(_settled_state, services, state.request_id))
    return state


async def state_for(services: Services, given: str, scope: Scope) -> RefundState:
    """The refund `given` names, as a caller of `scope` may see it: a merchant's by its own request
    id (or its full refund id), every merchant's by the full refund id. Another merchant's refund
    is as unknown as a missing one."""
    for candidate in _refund_ids(services, given, scope):
        try:
            state = await current_state(services, workflow_id(candidate))
        except ApiError:  # no answer now: a 503 only for the caller's own refund, else none of its business
            if scope is EVERY_MERCHANT or await _owner(services, candidate) in (scope, None):
                raise
            continue
        owner = state.merchant_id or services.settings.merchant_id if state is not None else None
        if state is not None and scope in (EVERY_MERCHANT, owner):
            return state
    raise ApiError(404, ErrorCode.NOT_FOUND, f"no refund {given}")


async def _owner(services: Services, refund: str) -> str | None:
    """The merchant a refund's workflow was started for, by its search attribute; None when that
    cannot be told (Temporal unreachable too, or a workflow started before refunds named theirs)."""
    marked = refund_merchant(refund)
    if marked is not None:
        return marked
    try:
        description = await services.temporal.get_workflow_handle(workflow_id(refund)).describe()
    except RPCError:
        return None
    return description.typed_search_attributes.get(SA_MERCHANT)


def _refund_ids(services: Services, given: str, scope: Scope) -> list[str]:
    """Where a caller's id may be kept, in order: the id marked with the caller's merchant, then
    the bare id (a refund kept before merchants had ids of their own); none for an id no refund can
    have: text with a NUL, which PostgreSQL refuses to even compare."""
    if "\x00" in given:
        return []
    if scope is EVERY_MERCHANT:
        return [given]
    marked = refund_merchant(given)
    if marked is not None:
        return [given] if marked == scope else []
    own = refund_id(services.owner(scope), given)
    return [own] if own == given else [own, given]


def narrowed(services: Services, scope: Scope) -> Scope:
    """The scope there is to check: an installation with one merchant has every refund its own."""
    return scope if len(services.merchants) > 1 else EVERY_MERCHANT


async def refund_to_act_on(services: Services, given: str, scope: Scope) -> str:
    """The id of the refund `given` names for a caller of `scope`; 404 unless it is in it. An
    installation with one merchant has nothing to check and spends no query on it."""
    scope = narrowed(services, scope)
    if scope is EVERY_MERCHANT:
        return given
    return (await state_for(services, given, scope)).request_id


def _settled_state(services: Services, request_id: str) -> RefundState | None:
    try:
        with services.db.transaction() as session:
            return refunds.settled_state(session, request_id)
    except SQLAlchemyError as err:  # a client retries later; nothing of ours in the answer
        raise ApiError(
            503, ErrorCode.DATABASE_UNAVAILABLE, "the refund database cannot be read right now; retry"
        ) from err


async def audit_trail(services: Services, request_id: str) -> list[AuditEntry]:
    def _read() -> list[AuditEntry]:
        with services.db.transaction() as session:
            return audit.trail(session, request_id)

    return await run_in_threadpool(_read)
