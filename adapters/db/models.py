"""Tables. Amounts are integers in minor units; timestamps are timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, CheckConstraint, Column, DateTime, Index, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts() -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=False, default=utcnow)


def _maybe_ts() -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=True)


class PaymentRow(SQLModel, table=True):
    """A PSP payment we refund against; its row is the lock that serialises reservations."""

    __tablename__ = "payments"
    payment_key: str = Field(primary_key=True, max_length=200)
    provider: str = Field(max_length=16)
    reference: str = Field(max_length=128)
    currency: str = Field(max_length=3)
    refundable_cap: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class ReservationRow(SQLModel, table=True):
    """Money set aside for one refund: held before the PSP call, committed or released after."""

    __tablename__ = "reservations"
    request_id: str = Field(primary_key=True, max_length=128)
    payment_key: str = Field(foreign_key="payments.payment_key", index=True, max_length=200)
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(max_length=3)
    state: str = Field(max_length=16)  # held | committed | released
    holds: int = Field(default=1, sa_column=Column(Integer, nullable=False, server_default="1"))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class LedgerTransferRow(SQLModel, table=True):
    """One double-entry transfer: `amount` moves from `credit_account` to `debit_account`.

    Every row debits and credits the same amount in one currency, so the ledger balances by
    construction; the checks make an unbalanced or one-sided row impossible. Two-phase: a `pending`
    row (the reservation) is later resolved once by a `post_pending` or `void_pending` row naming it;
    a `single` row posts at once. Rows are never updated.
    """

    __tablename__ = "ledger_transfers"
    __table_args__ = (
        CheckConstraint("amount > 0", name="ck_ledger_transfers_amount_positive"),
        CheckConstraint("debit_account <> credit_account", name="ck_ledger_transfers_two_accounts"),
        CheckConstraint(
            "phase IN ('single', 'pending', 'post_pending', 'void_pending')", name="ck_ledger_transfers_phase"
        ),
        CheckConstraint(
            "(pending_id IS NULL) = (phase IN ('single', 'pending'))", name="ck_ledger_transfers_resolves"
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    transfer_key: str = Field(unique=True, max_length=200)
    request_id: str = Field(index=True, max_length=128)
    merchant: str = Field(max_length=64)
    currency: str = Field(max_length=3)
    debit_account: str = Field(max_length=120)
    credit_account: str = Field(max_length=120)
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    phase: str = Field(max_length=16)
    # unique: a pending transfer is posted or voided once
    pending_id: int | None = Field(default=None, foreign_key="ledger_transfers.id", unique=True)
    description: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class LedgerOutboxRow(SQLModel, table=True):
    """A posted transfer waiting for the ERP export, written in the transfer's own transaction."""

    __tablename__ = "ledger_outbox"
    id: int | None = Field(default=None, primary_key=True)
    transfer_id: int = Field(foreign_key="ledger_transfers.id", unique=True)
    exported_batch: str | None = Field(default=None, index=True, max_length=64)
    exported_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class AuditRow(SQLModel, table=True):
    __tablename__ = "audit_events"
    __table_args__ = (UniqueConstraint("request_id", "event_key"),)
    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(index=True, max_length=128)
    event_key: str = Field(max_length=120)
    step: str = Field(max_length=64)
    actor: str = Field(max_length=160)
    original_reference: str = Field(default="", max_length=128)
    reason_code: str | None = Field(default=None, max_length=64)
    status_before: str | None = Field(default=None, max_length=32)
    status_after: str | None = Field(default=None, max_length=32)
    psp_request_id: str | None = Field(default=None, max_length=128)
    psp_response_ms: int | None = None
    detail: str = Field(default="{}")
    at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class RefundRow(SQLModel, table=True):
    """The settled outcome of a refund, for reconciliation and for reads without a worker."""

    __tablename__ = "refunds"
    request_id: str = Field(primary_key=True, max_length=128)
    provider: str = Field(max_length=16)
    payment_reference: str = Field(max_length=128)
    order_id: str = Field(max_length=128)
    # whose refund it is; NULL: the installation's default merchant
    merchant: str | None = Field(default=None, max_length=64)
    status: str = Field(max_length=32)
    method: str = Field(max_length=16)
    amount: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    currency: str | None = Field(default=None, max_length=3)
    psp_refund_id: str | None = Field(default=None, max_length=128)
    failure_code: str | None = Field(default=None, max_length=64)
    allocation: str | None = Field(default=None)  # JSON: domain.allocation.Allocation
    request_digest: str | None = Field(default=None, max_length=160)  # the request it settled
    requested_by: str | None = Field(default=None, max_length=200)  # who asked, beside the merchant
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class PspPaymentRow(SQLModel, table=True):
    """What a PSP told us of a payment by notification (Adyen cannot be asked afterwards)."""

    __tablename__ = "psp_payments"
    provider: str = Field(primary_key=True, max_length=16)
    reference: str = Field(primary_key=True, max_length=128)
    # the PSP merchant account it belongs to, where one PSP login serves several; NULL: recorded
    # before accounts were kept (one account then)
    account: str | None = Field(default=None, max_length=128)
    state: str = Field(max_length=16)
    currency: str = Field(max_length=3)
    amount_authorized: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    amount_captured: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    amount_refunded: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class PaymentHoldRow(SQLModel, table=True):
    """A dispute or chargeback on a payment: no new refund of it until ops release the hold."""

    __tablename__ = "payment_holds"
    provider: str = Field(primary_key=True, max_length=16)
    reference: str = Field(primary_key=True, max_length=128)
    reason: str = Field(max_length=200)
    opened_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    released_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    released_by: str | None = Field(default=None, max_length=128)


class ReferenceAliasRow(SQLModel, table=True):
    """A short alias of a request id, for PSPs whose reference field is shorter than our ids."""

    __tablename__ = "reference_aliases"
    alias: str = Field(primary_key=True, max_length=80)
    request_id: str = Field(max_length=128)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class StockRow(SQLModel, table=True):
    """Sellable units on hand per merchant and SKU, as returns add them."""

    __tablename__ = "inventory_stock"
    merchant: str = Field(primary_key=True, max_length=64)
    sku: str = Field(primary_key=True, max_length=128)
    on_hand: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class RestockRow(SQLModel, table=True):
    """One receipt's restock of one SKU: the key that makes a restock happen once."""

    __tablename__ = "inventory_restocks"
    __table_args__ = (CheckConstraint("units > 0", name="ck_inventory_restocks_units_positive"),)
    request_id: str = Field(primary_key=True, max_length=128)
    receipt_id: str = Field(primary_key=True, max_length=128)
    sku: str = Field(primary_key=True, max_length=128)
    units: int = Field(sa_column=Column(BigInteger, nullable=False))
    restocked_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class RefundRequestRow(SQLModel, table=True):
    """Every refund request that passed validation: the history risk velocity is measured on."""

    __tablename__ = "refund_requests"
    request_id: str = Field(primary_key=True, max_length=128)
    provider: str = Field(max_length=16)
    payment_reference: str = Field(index=True, max_length=128)
    customer_id: str | None = Field(default=None, index=True, max_length=128)
    order_id: str = Field(max_length=128)
    card_fingerprint: str | None = Field(default=None, index=True, max_length=128)
    requested_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class PspEventRow(SQLModel, table=True):
    """A PSP event already signalled to its workflow: a replay of it is acknowledged, not signalled."""

    __tablename__ = "psp_events"
    provider: str = Field(primary_key=True, max_length=16)
    account: str = Field(primary_key=True, max_length=64)  # our merchant whose PSP account sent it
    event_key: str = Field(primary_key=True, max_length=200)
    received_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class PspTransmissionRow(SQLModel, table=True):
    """A PSP transmission taken, with a digest of its body: PayPal signs crc32(body), not the body, so
    its transmission id is taken with one body only (adapters/psp/paypal.py `TransmissionBook`). Rows
    outlive the signature's tolerance (15 minutes) by far and are pruned after a day."""

    __tablename__ = "psp_transmissions"
    __table_args__ = (Index("ix_psp_transmissions_received_at", "received_at"),)
    provider: str = Field(primary_key=True, max_length=16)
    account: str = Field(primary_key=True, max_length=200)  # the PayPal webhook it was signed for
    transmission_key: str = Field(primary_key=True, max_length=200)
    body_sha256: str = Field(max_length=64)
    received_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class ServiceKeyRow(SQLModel, table=True):
    """A public key the service signs with (review decisions, PSP outcomes): how a worker, which
    holds no signing secret, verifies what a workflow's input claims the service said."""

    __tablename__ = "service_keys"
    public_key: str = Field(primary_key=True, max_length=64)
    published_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class ApiClientRow(SQLModel, table=True):
    """Software that asks for refunds on a merchant's behalf (`domain/clients.py`): its key hashed."""

    __tablename__ = "api_clients"
    name: str = Field(primary_key=True, max_length=64)
    merchant: str = Field(max_length=64)  # the merchant id it acts for (the default one named too)
    key_digest: str = Field(max_length=64, unique=True)  # sha256 of the key, never the key
    # a rotated key: the previous one works until `previous_key_until` (adapters/db/clients.py rotate)
    previous_key_digest: str | None = Field(default=None, max_length=64, unique=True, index=True)
    previous_key_until: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    reasons: str = Field(max_length=1000)  # comma-separated reason codes it may ask for
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    revoked_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class ApiClientBudgetRow(SQLModel, table=True):
    """A client's limits in one currency: its budget over the rolling day and its maximum per
    refund, both in minor units; its row is the lock that serialises the client's reservations in
    that currency."""

    __tablename__ = "api_client_budgets"
    __table_args__ = (
        CheckConstraint("daily_limit > 0", name="ck_api_client_budgets_limit_positive"),
        CheckConstraint("max_per_refund > 0", name="ck_api_client_budgets_max_positive"),
    )
    client: str = Field(primary_key=True, foreign_key="api_clients.name", max_length=64)
    currency: str = Field(primary_key=True, max_length=3)
    daily_limit: int = Field(sa_column=Column(BigInteger, nullable=False))
    max_per_refund: int = Field(sa_column=Column(BigInteger, nullable=False))


class ClientReservationRow(SQLModel, table=True):
    """Budget a client's refund took without a human (one per refund): `reserved` counts against the
    window, `released` (the refund failed or was rejected, or never started) gives it back."""

    __tablename__ = "client_budget_reservations"
    __table_args__ = (
        CheckConstraint("amount > 0", name="ck_client_budget_reservations_amount_positive"),
        Index("ix_client_budget_reservations_window", "client", "currency", "reserved_at"),
    )
    request_id: str = Field(primary_key=True, max_length=128)
    client: str = Field(foreign_key="api_clients.name", max_length=64)
    currency: str = Field(max_length=3)
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))
    state: str = Field(max_length=16)  # reserved | released
    reserved_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    released_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class EventEndpointRow(SQLModel, table=True):
    """A merchant's URL that hears its refunds' events (domain/outbound_events.py), signed with the
    endpoint's own secret per Standard Webhooks; a rotated secret still signs until it lapses."""

    __tablename__ = "event_endpoints"
    endpoint_id: str = Field(primary_key=True, max_length=40)
    merchant: str | None = Field(default=None, index=True, max_length=64)  # NULL: the default merchant
    url: str = Field(max_length=2000)
    event_types: str = Field(max_length=1000)  # comma-separated
    secret: str = Field(max_length=100)
    previous_secret: str | None = Field(default=None, max_length=100)
    previous_secret_until: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    enabled: bool = Field(default=True)
    disabled_reason: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    # the relay serving it and until when: one relay at a time keeps a refund's events in order
    relay_by: str | None = Field(default=None, max_length=40)
    relay_until: datetime | None = Field(default=None, sa_column=_maybe_ts())


class OutboundEventRow(SQLModel, table=True):
    """One event, written with the audit row that announces it; `seq` orders a refund's events."""

    __tablename__ = "outbound_events"
    seq: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(unique=True, max_length=40)
    merchant: str | None = Field(default=None, index=True, max_length=64)
    refund: str = Field(index=True, max_length=128)
    event_type: str = Field(max_length=40)
    payload: str  # the JSON body sent, exactly as signed
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class EventDeliveryRow(SQLModel, table=True):
    """One event owed to one endpoint: pending until the endpoint answers 2xx. A worker leases a
    delivery while it sends it, so two workers never send it at once."""

    __tablename__ = "event_deliveries"
    __table_args__ = (
        Index("ix_event_deliveries_due", "state", "next_attempt_at"),
        Index("ix_event_deliveries_refund_chain", "endpoint_id", "refund", "state", "event_seq"),
        UniqueConstraint("event_seq", "endpoint_id", name="uq_event_deliveries_event_endpoint"),
    )
    id: int | None = Field(default=None, primary_key=True)
    event_seq: int = Field(foreign_key="outbound_events.seq", index=True)
    endpoint_id: str = Field(foreign_key="event_endpoints.endpoint_id", index=True, max_length=40)
    refund: str = Field(max_length=128)
    state: str = Field(max_length=16)  # pending | delivered
    attempts: int = Field(default=0)
    first_failure_at: datetime | None = Field(default=None, sa_column=_maybe_ts())
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    delivered_at: datetime | None = Field(default=None, sa_column=_maybe_ts())


class DeliveryAttemptRow(SQLModel, table=True):
    """Every attempt to deliver an event: when, what the endpoint answered, how long it took."""

    __tablename__ = "event_delivery_attempts"
    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(foreign_key="event_deliveries.id", index=True)
    attempted_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    status_code: int | None = None  # None: no answer (refused, timed out, not allowed)
    latency_ms: int = Field(default=0)
    answer: str = Field(default="", max_length=500)  # the start of the answer, or why there was none
