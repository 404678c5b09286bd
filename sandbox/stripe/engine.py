"""What the Stripe sandbox does to money: intents, captures, cancels, refunds and their settlement.

Every operation runs inside a store transaction it is given, so the HTTP layer can commit an effect
together with its idempotency record. Webhook events go to the store's outbox in the same
transaction; the webhook sender and the settlement loop are woken after commit.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import stripe

from sandbox.store import (
    EventRow,
    PaymentRow,
    RefundRow,
    SandboxStore,
    Settlement,
    StoreTx,
    now_ms,
)
from sandbox.stripe.objects import (
    StripeApiError,
    balance_transaction,
    charge_json,
    dispute_json,
    event_json,
    new_id,
    now_s,
    payment_intent_json,
    refund_json,
    resource_missing,
)

RefundBehavior = Literal["succeeded", "pending_then_succeeded", "pending_then_failed", "pending"]
"""How a seeded payment's refunds behave: answered at once, or pending and settled later."""
REFUND_BEHAVIORS: frozenset[str] = frozenset(get_args(RefundBehavior))

CANCELABLE = ("requires_payment_method", "requires_capture", "requires_confirmation", "requires_action")
SETTLED_STATUSES = ("succeeded", "failed", "canceled")
DEFAULT_FAILURE_REASON = "insufficient_funds"


@dataclass(frozen=True)
class PaymentSeed:
    """A payment created through the control API or the demo seed, with its refund behaviour."""

    amount: int
    currency: str
    captured: bool = True
    id: str | None = None
    refund_behavior: RefundBehavior = "succeeded"
    settle_after_ms: int = 1000
    metadata: dict[str, str] = field(default_factory=dict)
    settlement: Settlement | None = None  # the merchant's balance is in another currency


def _noop() -> None:
    return None


def _no_url() -> str | None:
    return None


class StripeEngine:
    def __init__(
        self,
        store: SandboxStore,
        *,
        webhook_url: Callable[[], str | None] = _no_url,
        on_event: Callable[[], None] = _noop,
        on_settlement_scheduled: Callable[[], None] = _noop,
    ) -> None:
        self.store = store
        self._webhook_url = webhook_url
        self._on_event = on_event
        self._on_settlement_scheduled = on_settlement_scheduled

    # payment intents -------------------------------------------------------------------------

    def create_intent(
        self,
        tx: StoreTx,
        *,
        amount: int,
        currency: str,
        capture_method: str = "automatic",
        confirm: bool = True,
        metadata: dict[str, str] | None = None,
        intent_id: str | None = None,
        refund_behavior: RefundBehavior = "succeeded",
        settle_after_ms: int = 1000,
    ) -> PaymentRow:
        status = "requires_payment_method"
        if confirm:
            status = "requires_capture" if capture_method == "manual" else "succeeded"
        suffix = intent_id.removeprefix("pi_") if intent_id else None
        payment = PaymentRow(
            id=intent_id or new_id("pi_"),
            charge_id=(f"ch_{suffix}" if suffix else new_id("ch_")) if confirm else None,
            amount=amount,
            currency=currency.lower(),
            capture_method=capture_method,
            status=status,
            amount_captured=amount if status == "succeeded" else 0,
            refund_behavior=refund_behavior,
            settle_after_ms=settle_after_ms,
            metadata=dict(metadata or {}),
            created=now_s(),
        )
        tx.insert_payment(payment)
        return payment

    def require_intent(self, tx: StoreTx, intent_id: str, param: str = "id") -> PaymentRow:
        payment = tx.get_payment(intent_id)
        if payment is None:
            raise resource_missing("payment_intent", intent_id, param)
        return payment

    def cancel_intent(self, tx: StoreTx, intent_id: str, reason: str | None) -> PaymentRow:
        payment = self.require_intent(tx, intent_id)
        if payment.status not in CANCELABLE:
            raise StripeApiError(
                400,
                f"You cannot cancel this PaymentIntent because it has a status of {payment.status}."
                f" Only a PaymentIntent with one of the following statuses may be canceled:"
                f" {', '.join(CANCELABLE)}.",
                code="payment_intent_unexpected_state",
            )
        payment.status = "canceled"
        payment.canceled_at = now_s()
        payment.cancellation_reason = reason
        tx.update_payment_state(payment)
        return payment

    def capture_intent(self, tx: StoreTx, intent_id: str, amount: int | None) -> PaymentRow:
        payment = self.require_intent(tx, intent_id)
        if payment.status != "requires_capture":
            raise StripeApiError(
                400,
                f"This PaymentIntent could not be captured because it has a status of"
                f" {payment.status}. Only a PaymentIntent with one of the following statuses may"
                f" be captured: requires_capture.",
                code="payment_intent_unexpected_state",
            )
        captured = payment.amount if amount is None else amount
        if captured > payment.amount:
            raise StripeApiError(
                400,
                "The amount to capture must be less than or equal to the authorized amount.",
                code="amount_too_large",
                param="amount_to_capture",
            )
        payment.status = "succeeded"
        payment.amount_captured = captured
        tx.update_payment_state(payment)
        return payment

    def intent_json(self, tx: StoreTx, payment: PaymentRow, expand: Collection[str] = ()) -> dict[str, Any]:
        latest: str | dict[str, Any] | None = payment.charge_id
        if payment.charge_id and any(e == "latest_charge" or e.startswith("latest_charge.") for e in expand):
            transaction = None
            if "latest_charge.balance_transaction" in expand and payment.amount_captured:
                transaction = balance_transaction(
                    payment.charge_id,
                    payment.amount_captured,
                    payment.currency,
                    tx.settlement_of(payment.id),
                    refund=False,
                    created=payment.created,
                )
            latest = charge_json(payment, tx.refunded_amount(payment.id), transaction)
        return payment_intent_json(payment, latest)

    def charge_json(self, tx: StoreTx, charge_id: str, expand: Collection[str] = ()) -> dict[str, Any]:
        payment = tx.get_payment_by_charge(charge_id)
        if payment is None:
            raise resource_missing("charge", charge_id)
        body = charge_json(payment, tx.refunded_amount(payment.id))
        if "payment_intent" in expand:
            body["payment_intent"] = self.intent_json(tx, payment)
        return body

    # refunds ---------------------------------------------------------------------------------

    def create_refund(
        self,
        tx: StoreTx,
        *,
        payment_intent: str | None,
        charge: str | None,
        amount: int | None,
        reason: str | None,
        metadata: dict[str, str],
        idempotency_key: str | None,
    ) -> RefundRow:
        if payment_intent is not None:
            payment = self.require_intent(tx, payment_intent, "payment_intent")
        else:
            assert charge is not None
            found = tx.get_payment_by_charge(charge)
            if found is None:
                raise resource_missing("charge", charge, "charge")
            payment = found
        if payment.status == "requires_capture":
            if payment_intent is None:
                raise StripeApiError(
                    400,
                    f"Charge {payment.charge_id} has not been captured and cannot be refunded;"
                    " cancel its PaymentIntent to release the authorization.",
                    code="charge_not_refundable",
                    param="charge",
                )
            raise StripeApiError(
                400,
                f"This PaymentIntent ({payment.id}) has a status of requires_capture and cannot be"
                " refunded. Cancel the PaymentIntent to release the uncaptured funds.",
                code="payment_intent_unexpected_state",
                param="payment_intent",
            )
        if payment.status != "succeeded" or payment.charge_id is None:
            raise StripeApiError(
                400,
                f"This PaymentIntent ({payment.id}) does not have a successful charge to refund.",
                code="payment_intent_unexpected_state",
                param="payment_intent",
            )
        left = payment.amount_captured - tx.refunded_amount(payment.id)
        if left <= 0:
            raise StripeApiError(
                400,
                f"Charge {payment.charge_id} has already been refunded.",
                code="charge_already_refunded",
            )
        value = left if amount is None else amount
        if value > left:
            raise StripeApiError(
                400,
                f"Refund amount ({value} {payment.currency}) is greater than unrefunded amount on"
                f" charge ({left} {payment.currency})",
                code="amount_too_large",
                param="amount",
            )
        refund = RefundRow(
            id=new_id("re_"),
            payment_id=payment.id,
            charge_id=payment.charge_id,
            amount=value,
            currency=payment.currency,
            status="succeeded",
            reason=reason,
            metadata=metadata,
            created=now_s(),
            idempotency_key=idempotency_key,
        )
        match payment.refund_behavior:
            case "succeeded":
                pass
            case "pending":
                refund.status = "pending"
            case "pending_then_succeeded" | "pending_then_failed":
                refund.status = "pending"
                refund.settle_at_ms = now_ms() + payment.settle_after_ms
                refund.settle_to = payment.refund_behavior.removeprefix("pending_then_")
                tx.after_commit(self._on_settlement_scheduled)
            case other:
                raise ValueError(f"unknown refund behaviour {other!r}")
        tx.insert_refund(refund)
        self._emit(tx, "refund.created", refund_json(refund))
        # Stripe announces the charge too, with its new amount_refunded (pending refunds count)
        self._emit(tx, "charge.refunded", charge_json(payment, tx.refunded_amount(payment.id)))
        return refund

    def require_refund(self, tx: StoreTx, refund_id: str) -> RefundRow:
        refund = tx.get_refund(refund_id)
        if refund is None:
            raise resource_missing("refund", refund_id)
        return refund

    def refund_json(self, tx: StoreTx, refund: RefundRow, expand: Collection[str] = ()) -> dict[str, Any]:
        charge: dict[str, Any] | None = None
        intent: dict[str, Any] | None = None
        if "charge" in expand:
            charge = self.charge_json(tx, refund.charge_id)
        if "payment_intent" in expand:
            intent = self.intent_json(tx, self.require_intent(tx, refund.payment_id))
        transaction = None
        if "balance_transaction" in expand:
            settlement = tx.settlement_of(refund.payment_id)
            transaction = balance_transaction(
                refund.id, refund.amount, refund.currency, settlement, refund=True, created=refund.created
            )
        return refund_json(refund, charge=charge, payment_intent=intent, balance_transaction=transaction)

    def settle_refund(
        self, tx: StoreTx, refund_id: str, status: str, failure_reason: str | None = None
    ) -> RefundRow:
        """Move a pending refund to its final status and announce it with a webhook event."""
        if status not in SETTLED_STATUSES:
            raise StripeApiError(400, f"status must be one of {', '.join(SETTLED_STATUSES)}")
        refund = self.require_refund(tx, refund_id)
        if refund.status not in ("pending", "requires_action"):
            raise StripeApiError(
                400,
                f"Refund {refund_id} is {refund.status}; only a pending refund can be settled.",
                code="refund_not_pending",
            )
        reason = None if status == "succeeded" else failure_reason or DEFAULT_FAILURE_REASON
        tx.settle_refund(refund_id, status, reason)
        refund.status, refund.failure_reason = status, reason
        refund.settle_at_ms = refund.settle_to = None
        self._emit(tx, "refund.updated" if status == "succeeded" else "refund.failed", refund_json(refund))
        return refund

    def fail_refund_late(self, tx: StoreTx, refund_id: str, failure_reason: str | None = None) -> RefundRow:
        """A succeeded refund fails after all (the card's issuer bounced it, as Stripe reports rarely):
        the amount is refundable again and a `refund.failed` event announces it."""
        refund = self.require_refund(tx, refund_id)
        if refund.status != "succeeded":
            raise StripeApiError(
                400,
                f"Refund {refund_id} is {refund.status}; only a succeeded refund can fail late.",
                code="refund_not_succeeded",
            )
        reason = failure_reason or "lost_or_stolen_card"
        tx.settle_refund(refund_id, "failed", reason)
        refund.status, refund.failure_reason = "failed", reason
        self._emit(tx, "refund.failed", refund_json(refund))
        return refund

    def settle_due(self) -> int | None:
        """Settle every refund whose time has come; return when the next one is due (ms epoch)."""
        with self.store.transaction() as tx:
            for refund in tx.due_settlements(now_ms()):
                self.settle_refund(tx, refund.id, refund.settle_to or "succeeded")
            return tx.next_settlement_ms()

    # seeding ---------------------------------------------------------------------------------

    def seed_payment(self, seed: PaymentSeed) -> tuple[dict[str, Any], bool]:
        """Create a payment (intent + charge) unless its id exists; return it and whether it is new."""
        with self.store.transaction() as tx:
            existing = tx.get_payment(seed.id) if seed.id else None
            created = existing is None
            payment = existing or self.create_intent(
                tx,
                amount=seed.amount,
                currency=seed.currency,
                capture_method="automatic" if seed.captured else "manual",
                confirm=True,
                metadata=seed.metadata,
                intent_id=seed.id,
                refund_behavior=seed.refund_behavior,
                settle_after_ms=seed.settle_after_ms,
            )
            if created and seed.settlement is not None:
                tx.set_settlement(payment.id, seed.settlement)
            intent = self.intent_json(tx, payment, ("latest_charge",))
        return intent, created

    # Radar -----------------------------------------------------------------------------------

    def early_fraud_warning(
        self, tx: StoreTx, intent_id: str, fraud_type: str, actionable: bool, warning_id: str | None = None
    ) -> dict[str, Any]:
        """Radar's early fraud warning on a payment's charge, announced by a signed
        `radar.early_fraud_warning.created` (or `.updated`, for a warning id given again)."""
        payment = self.require_intent(tx, intent_id)
        if payment.charge_id is None:
            raise StripeApiError(400, f"PaymentIntent {intent_id} has no charge to warn about.")
        warning = {
            "id": warning_id or new_id("issfr_"),
            "object": stripe.radar.EarlyFraudWarning.OBJECT_NAME,  # "radar.early_fraud_warning"
            "actionable": actionable,
            "charge": payment.charge_id,
            "payment_intent": payment.id,
            "fraud_type": fraud_type,
            "created": now_s(),
            "livemode": False,
        }
        self._emit(tx, f"radar.early_fraud_warning.{'updated' if warning_id else 'created'}", warning)
        return warning

    def open_dispute(self, tx: StoreTx, intent_id: str, reason: str) -> dict[str, Any]:
        """The cardholder disputes the payment's charge: a signed `charge.dispute.created` follows.
        The sandbox keeps no dispute state: the charge still says `disputed: false`."""
        payment = self.require_intent(tx, intent_id)
        if payment.charge_id is None or payment.amount_captured == 0:
            raise StripeApiError(400, f"PaymentIntent {intent_id} has no captured charge to dispute.")
        dispute = dispute_json(payment, new_id("dp_"), reason, tx.refunded_amount(payment.id), now_s())
        self._emit(tx, "charge.dispute.created", dispute)
        return dispute

    # events ----------------------------------------------------------------------------------

    def _emit(self, tx: StoreTx, event_type: str, obj: dict[str, Any]) -> None:
        event_id = new_id("evt_")
        url = self._webhook_url()
        tx.insert_event(
            EventRow(
                id=event_id,
                provider="stripe",
                type=event_type,
                payload=json.dumps(event_json(event_id, event_type, obj)),
                url=url,
                state="pending" if url else "no_endpoint",
                attempts=0,
                next_attempt_ms=now_ms() if url else None,
                created_ms=now_ms(),
            )
        )
        if url:
            tx.after_commit(self._on_event)
