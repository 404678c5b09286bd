"""The interface every PSP adapter implements, and the one error shape at its boundary."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from domain.contracts import PaymentRecord, PspRefundCall, PspRefundUpdate, RefundResult
from domain.status import ErrorCode, Provider


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


@dataclass(frozen=True)
class PspEvent:
    """A verified PSP event, classified. `request_id` is ours, read from the PSP's metadata."""

    event_id: str
    kind: str  # "refund_update" | "ignored"
    request_id: str | None = None
    update: PspRefundUpdate | None = None
    raw_type: str = ""
    detail: Mapping[str, str] = field(default_factory=dict)


class PspAdapter(Protocol):
    """What the core needs from a PSP. Methods are synchronous; activities run them in threads."""

    provider: Provider

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


class PspRegistry:
    """The adapters this process is configured for, by provider."""

    def __init__(self, adapters: list[PspAdapter]) -> None:
        self._adapters = {adapter.provider: adapter for adapter in adapters}

    def get(self, provider: Provider) -> PspAdapter:
        adapter = self._adapters.get(provider)
        if adapter is None:
            raise PspError(
                ErrorCode.PROVIDER_NOT_CONFIGURED,
                f"provider {provider.value} is not configured",
                retryable=False,
            )
        return adapter
