"""The interface every PSP adapter implements, and the one error shape at its boundary."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from domain.contracts import PaymentRecord, PspRefundCall, PspRefundUpdate, RefundResult
from domain.fraud_warnings import FraudWarning
from domain.reconciliation import PspRefundRecord
from domain.status import ErrorCode, Provider, PspRefundStatus


class PspError(Exception):
    """A PSP call that produced no result: transport, auth, rate limit, or a bug on our side.

    `retryable` says whether the same call with the same idempotency key may succeed later.
    `key_poisoned` says the PSP replays a stored failure for this key: retrying it is useless, the
    caller must search for the refund and move to the next key generation.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        retryable: bool,
        http_status: int | None = None,
        psp_request_id: str | None = None,
        retry_after_seconds: float | None = None,
        key_poisoned: bool = False,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.http_status = http_status
        self.psp_request_id = psp_request_id
        self.retry_after_seconds = retry_after_seconds
        self.key_poisoned = key_poisoned


class WebhookRejected(Exception):
    """A PSP webhook that failed verification or could not be parsed; nothing may change."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class PaymentLookup:
    payment: PaymentRecord
    psp_request_id: str | None = None
    psp_response_ms: int | None = None


EventKind = Literal["refund_update", "payment_update", "dispute_opened", "fraud_warning", "ignored"]


@dataclass(frozen=True)
class PspEvent:
    """A verified PSP event, classified. `request_id` is ours, read from the PSP's metadata.

    refund_update: `update` for the refund of `request_id` (None: a refund we never asked for).
    payment_update: `payment` is what the PSP now says of a payment (Adyen tells us only this way).
    dispute_opened: a dispute or chargeback on `payment_reference`.
    fraud_warning: an early fraud warning (`warning`) on `payment_reference`.
    """

    event_id: str
    kind: EventKind
    request_id: str | None = None
    update: PspRefundUpdate | None = None
    payment: PaymentRecord | None = None
    payment_reference: str | None = None
    raw_type: str = ""
    detail: Mapping[str, str] = field(default_factory=dict)
    account: str | None = None  # the PSP merchant account, where one PSP login serves several
    warning: FraudWarning | None = None


class PaymentBook(Protocol):
    """What we recorded of payments from PSP notifications, for PSPs that cannot be asked."""

    def get(self, provider: Provider, reference: str, account: str | None = None) -> PaymentRecord | None: ...


class ReferenceBook(Protocol):
    """Aliases of request ids, for PSPs whose reference field is shorter than our ids."""

    def remember(self, alias: str, request_id: str) -> None: ...

    def resolve(self, alias: str) -> str | None: ...


class PspAdapter(Protocol):
    """What the core needs from a PSP. Methods are synchronous; activities run them in threads."""

    provider: Provider
    # whether `get_refund` gives the PSP's final word, so an outcome an event reported can be read
    # back before it moves the books (where it cannot, the verified event is the only word)
    reads_refunds_back: bool

    def lookup_payment(self, reference: str) -> PaymentLookup:
        """The PSP's record of the payment; state NOT_FOUND when the PSP does not know it."""
        ...

    def refund(self, call: PspRefundCall) -> RefundResult:
        """Refund (or void, per `call.method`) with the idempotency key of `call.key_generation`."""
        ...

    def find_refund(self, call: PspRefundCall) -> RefundResult | None:
        """Search the PSP for a refund or void made for `call.request_id` under any key."""
        ...

    def get_refund(self, psp_refund_id: str, request_id: str) -> RefundResult:
        """The refund's current state at the PSP (confirmation polling)."""
        ...

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> list[PspEvent]:
        """Verify the delivery the PSP's way and classify its events; raise WebhookRejected."""
        ...

    def list_refunds(
        self, since: datetime, payment_references: Sequence[str], everything: bool
    ) -> list[PspRefundRecord]:
        """Refunds the PSP made since `since` on these payments, or (`everything`, where the PSP can
        list them) on any payment; PspError NOT_SUPPORTED where the PSP cannot list refunds."""
        ...

    def refunds_in_report(self, report: str) -> list[PspRefundRecord]:
        """This account's refunds as a report the PSP publishes lists them (where its API lists none);
        PspError NOT_SUPPORTED for a PSP whose API lists them, INVALID_REQUEST for an unreadable one."""
        ...

    def webhook_acknowledgement(self) -> tuple[str, str]:
        """The body and media type the PSP expects when a delivery was accepted."""
        ...


def refused(
    call: PspRefundCall,
    code: ErrorCode,
    message: str,
    *,
    psp_request_id: str | None = None,
    psp_response_ms: int | None = None,
) -> RefundResult:
    """The PSP (or our check of what it accepts) said no: a FAILED result, never an exception."""
    return RefundResult(
        psp_refund_id=None,
        status=PspRefundStatus.FAILED,
        amount=call.amount,
        method=call.method,
        failure_code=code,
        failure_message=message,
        psp_request_id=psp_request_id,
        psp_response_ms=psp_response_ms,
    )


def ensure_refund_of(
    provider: Provider, psp_refund_id: str, owner: str | None, request_id: str, psp_request_id: str | None
) -> None:
    """A refund read back by id must be this request's (its metadata names the owner, when any)."""
    if owner is not None and owner != request_id:
        raise PspError(
            ErrorCode.INVALID_STATE,
            f"{provider.value} refund {psp_refund_id} belongs to request {owner}, not {request_id}",
            retryable=False,
            psp_request_id=psp_request_id,
        )


class PspRegistry:
    """The adapters this process is configured for, by provider."""

    def __init__(self, adapters: list[PspAdapter]) -> None:
        self._adapters = {adapter.provider: adapter for adapter in adapters}

    def providers(self) -> list[Provider]:
        return list(self._adapters)

    def get(self, provider: Provider) -> PspAdapter:
        adapter = self._adapters.get(provider)
        if adapter is None:
            raise PspError(
                ErrorCode.PROVIDER_NOT_CONFIGURED,
                f"provider {provider.value} is not configured",
                retryable=False,
            )
        return adapter


class PspDirectory:
    """Each merchant's PSP accounts. A merchant's calls only ever use its own credentials: a PSP
    the merchant has not configured is refused, never lent by another merchant."""

    def __init__(self, registries: dict[str, PspRegistry], default_merchant: str) -> None:
        self._registries = registries
        self.default_merchant = default_merchant

    def registry(self, merchant_id: str | None) -> PspRegistry:
        registry = self._registries.get(merchant_id or self.default_merchant)
        if registry is None:
            raise PspError(
                ErrorCode.PROVIDER_NOT_CONFIGURED,
                f"merchant {merchant_id} is not configured",
                retryable=False,
            )
        return registry

    def get(self, merchant_id: str | None, provider: Provider) -> PspAdapter:
        return self.registry(merchant_id).get(provider)
