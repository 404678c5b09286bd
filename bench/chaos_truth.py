"""The PSP is the truth: what the chaos run does to the product's outcome proofs, and what it keeps
to check them afterwards.

Forged outcomes are sent straight to Temporal, as anyone with access to it (its UI, `temporal
workflow signal`) could: without a proof, with a proof the service really signed but for another
workflow, and with a proof signed by a key of nobody's. Replayed ones are genuine: a proven
`psp_refund_update` signal's input, read out of a refund's workflow history and decoded with the data
converter every process shares (which decrypts, where payload keys are configured; the chaos stack
runs without them, so its histories hold the payloads in clear), then signalled to another refund's
workflow and again to its own.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench.chaos_plan import DashboardPlan
from bench.chaos_tenant import Attack
from domain.contracts import PspRefundUpdate
from domain.money import Money
from domain.outcome_proofs import sign_outcome, subject
from domain.status import ErrorCode, PspRefundStatus

SIGNAL = "psp_refund_update"
UNPROVEN_STEP = "psp_update_unproven"  # the trail's row for an outcome refused for want of proof


@dataclass
class Extra:
    """A refund the run asked for beside the plans: a second refund after a reversed one (`again`),
    the refund an early fraud warning made (`warning`), ours after a failed dashboard refund
    (`after`), the rest of a payment the hostile tenant named (`rest`)."""

    request_id: str
    provider: str
    payment: str
    kind: str
    source: str  # the plan's request id, or the dashboard refund's key
    amount: int | None = None  # what it must refund, where the run knows it


@dataclass
class DashboardRecord:
    plan: DashboardPlan
    payment: str
    psp_refund_id: str | None = None
    failed_at_psp: bool = False


@dataclass
class Truth:
    """What the run did around the service, for the checks."""

    direct_signals: Counter[str] = field(default_factory=Counter)  # sent straight to each refund
    forged: Counter[str] = field(default_factory=Counter)  # forged signals its open workflow took
    forged_ids: dict[str, str] = field(default_factory=dict)  # refund -> the PSP refund they named
    replayed_into: dict[str, tuple[str, str]] = field(default_factory=dict)  # source -> target, PSP id
    replayed_own: set[str] = field(default_factory=set)  # sources that took their own signal again
    extras: list[Extra] = field(default_factory=list)
    dashboards: list[DashboardRecord] = field(default_factory=list)
    warnings: dict[str, str] = field(default_factory=dict)  # plan -> its warning's refund
    hostile: dict[str, Attack] = field(default_factory=dict)  # plan -> what the tenant sent naming it


def forged_updates(
    request_id: str,
    workflow: str,
    psp_refund_id: str,
    amount: Money,
    elsewhere: tuple[str, str],
    service_keys: list[Ed25519PrivateKey],
    rng: random.Random,
) -> list[PspRefundUpdate]:
    """Six outcomes for a refund's PSP refund, `failed` and `succeeded` each: with no proof; with the
    service's own proof but for another workflow (`elsewhere`: for the failure, the late-failure
    workflow the service signs failures for; for the success, another refund's); with a proof by a
    key the service never had. Each names this refund, as the service's proofs do: only the workflow
    or the key is wrong. In an order drawn from `rng`."""
    about = subject(None, request_id)  # the default merchant's refund, as the service signs for it
    stranger = Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))
    updates = []
    for status, other in zip((PspRefundStatus.FAILED, PspRefundStatus.SUCCEEDED), elsewhere, strict=True):
        failed = status is PspRefundStatus.FAILED
        base = PspRefundUpdate(
            psp_refund_id=psp_refund_id,
            status=status,
            failure_code=ErrorCode.PSP_DECLINED if failed else None,
            failure_message="forged: refund declined by the issuer" if failed else "",
            psp_event_id=f"evt_forged_{rng.getrandbits(64):016x}",
            amount=amount,
        )
        updates += [
            base,
            sign_outcome(service_keys, other, about, base),
            sign_outcome([stranger], workflow, about, base),
        ]
    rng.shuffle(updates)
    return updates


async def proven_signals(client: Client, workflow: str) -> list[PspRefundUpdate]:
    """The psp_refund_update signals in a workflow's history that carry a proof, decoded."""
    history = await client.get_workflow_handle(workflow).fetch_history()
    found = []
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            continue
        attributes = event.workflow_execution_signaled_event_attributes
        if attributes.signal_name != SIGNAL or not attributes.input.payloads:
            continue
        decoded = await client.data_converter.decode(list(attributes.input.payloads), [PspRefundUpdate])
        update = decoded[0]
        if isinstance(update, PspRefundUpdate) and update.proof:
            found.append(update)
    return found
