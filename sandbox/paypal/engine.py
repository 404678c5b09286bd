"""The PayPal sandbox's state and rules: captures, authorisations, refunds, signed webhooks.

State lives in the shared sandbox SQLite file in `paypal_*` tables, written through the store's
transactions (`tx.conn`), so a restart on the same file loses nothing that was answered: refunds,
pending settlements, the webhook outbox, OAuth tokens and the signing key with its certificate.

Amounts are kept as integers in PayPal's own decimals for the currency (JPY 0, HUF 0, EUR 2): this
table is the sandbox's, on purpose not the adapter's, so the two check each other.
"""

from __future__ import annotations

import base64
import json
import secrets
import sqlite3
import string
import uuid
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Literal, get_args

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sandbox.paypal import certificates
from sandbox.paypal.errors import invalid_request, not_found, unprocessable
from sandbox.store import SandboxStore, StoreTx, now_ms
from sandbox.webhooks import Attempt, OutgoingEvent

PayPalRefundBehavior = Literal["completed", "pending_then_completed", "pending_then_failed", "pending"]
"""How a seeded capture's refunds behave: COMPLETED at once, or PENDING and settled later."""
PAYPAL_REFUND_BEHAVIORS: frozenset[str] = frozenset(get_args(PayPalRefundBehavior))

# PayPal's currency codes page: HUF, JPY and TWD take no decimals; everything else listed takes two.
_DECIMALS: dict[str, int] = {
    **dict.fromkeys(
        [
            *("AUD", "BRL", "CAD", "CHF", "CNY", "CZK", "DKK", "EUR", "GBP", "HKD", "ILS"),
            *("INR", "MXN", "MYR", "NOK", "NZD", "PHP", "PLN", "SEK", "SGD", "THB", "USD"),
        ],
        2,
    ),
    **dict.fromkeys(["HUF", "JPY", "TWD"], 0),
}
TOKEN_TTL_SECONDS = 32400  # what PayPal answers: nine hours
# A refund request's texts and their published lengths (payments v2, refund_request).
_REFUND_TEXT_LENGTHS = {"invoice_id": 127, "custom_id": 127, "note_to_payer": 255}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS paypal_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS paypal_tokens (
    token TEXT PRIMARY KEY, client_id TEXT NOT NULL, expires_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS paypal_authorizations (
    id TEXT PRIMARY KEY, order_id TEXT NOT NULL, amount INTEGER NOT NULL, currency TEXT NOT NULL,
    status TEXT NOT NULL, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS paypal_captures (
    id TEXT PRIMARY KEY, order_id TEXT NOT NULL, amount INTEGER NOT NULL, currency TEXT NOT NULL,
    status TEXT NOT NULL, refund_behavior TEXT NOT NULL, settle_after_ms INTEGER NOT NULL,
    invoice_id TEXT, custom_id TEXT, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,
    receivable_currency TEXT, capture_rate TEXT, refund_rate TEXT, returns_fees INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS paypal_refunds (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, capture_id TEXT NOT NULL,
    kind TEXT NOT NULL, amount INTEGER NOT NULL, currency TEXT NOT NULL, status TEXT NOT NULL,
    reason TEXT, invoice_id TEXT, custom_id TEXT, note_to_payer TEXT, request_id TEXT,
    settle_at_ms INTEGER, settle_to TEXT, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS paypal_refunds_capture ON paypal_refunds (capture_id, seq);
CREATE TABLE IF NOT EXISTS paypal_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, event_type TEXT NOT NULL,
    payload TEXT NOT NULL, url TEXT, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER, created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS paypal_deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, event_type TEXT NOT NULL,
    url TEXT NOT NULL, attempt INTEGER NOT NULL, http_status INTEGER, error TEXT, at_ms INTEGER NOT NULL
);
"""
_TABLES = (
    "paypal_tokens",
    "paypal_authorizations",
    "paypal_captures",
    "paypal_refunds",
    "paypal_outbox",
    "paypal_deliveries",
)


def new_id() -> str:
    """PayPal-looking ids: 17 upper-case letters and digits."""
    alphabet = string.ascii_uppercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(17))


def new_debug_id() -> str:
    return secrets.token_hex(7)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# amounts ---------------------------------------------------------------------------------------


def parse_amount(value: Any, currency: Any) -> tuple[int, str]:
    """PayPal's `{currency_code, value}` as (integer in PayPal's decimals, currency); PayPal's errors."""
    # the issues are those PayPal publishes for a refund's amount (captures.refund-400 and -422)
    if not isinstance(currency, str) or len(currency) != 3:
        raise invalid_request("INVALID_PARAMETER_SYNTAX", "currency_code must be a three-letter code.")
    currency = currency.upper()
    decimals = _DECIMALS.get(currency)
    if decimals is None:
        raise unprocessable("INVALID_CURRENCY_CODE", f"Currency code {currency} is not supported.")
    if not isinstance(value, str):
        raise invalid_request("INVALID_PARAMETER_SYNTAX", "value must be a decimal string.")
    if len(value) > 32:
        raise invalid_request("INVALID_STRING_LENGTH", "value is at most 32 characters.")
    try:
        amount = Decimal(value)
    except InvalidOperation as err:
        raise invalid_request("INVALID_PARAMETER_SYNTAX", f"Invalid amount value {value!r}.") from err
    if not amount.is_finite() or "e" in value.lower():
        raise invalid_request("INVALID_PARAMETER_SYNTAX", f"Invalid amount value {value!r}.")
    if amount <= 0:
        raise unprocessable("CANNOT_BE_ZERO_OR_NEGATIVE", f"Invalid amount value {value!r}.")
    units = amount.scaleb(decimals)
    if units != units.to_integral_value():
        raise unprocessable(
            "DECIMAL_PRECISION",
            f"{currency} takes {decimals} decimal places; {value} has more.",
        )
    return int(units), currency


def _fee_back(capture: Capture, refunded: int) -> int:
    """A refund's share of the capture's 3% fee, given back where the capture's terms say so."""
    return refunded * 3 // 100 if capture.returns_fees else 0


def _received_in(capture: Capture, rate: str | None, net: int, fee: int, key: str) -> dict[str, Any]:
    """`net` and `fee` (in the capture's currency) converted at `rate` into the capture's receivable
    currency, as PayPal's breakdowns give them: `key` (the net), the fee there, and the rate."""
    if not capture.receivable_currency or not rate:
        return {}
    target = capture.receivable_currency

    def converted(units: int) -> int:
        major = Decimal(units).scaleb(-_DECIMALS.get(capture.currency, 2)) * Decimal(rate)
        return int(major.scaleb(_DECIMALS.get(target, 2)).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))

    return {
        key: format_amount(converted(net), target),
        "paypal_fee_in_receivable_currency": format_amount(converted(fee), target),
        "exchange_rate": {"source_currency": capture.currency, "target_currency": target, "value": rate},
    }


def format_amount(units: int, currency: str) -> dict[str, str]:
    decimals = _DECIMALS.get(currency, 2)
    return {"currency_code": currency, "value": f"{Decimal(units).scaleb(-decimals):.{decimals}f}"}


# rows ------------------------------------------------------------------------------------------


@dataclass
class Capture:
    id: str
    order_id: str
    amount: int
    currency: str
    status: str
    refund_behavior: str
    settle_after_ms: int
    invoice_id: str | None
    custom_id: str | None
    created_ms: int
    updated_ms: int
    # a capture received in another currency than it was paid in (the seller's account holds
    # only that one): PayPal converts at `capture_rate`, and a refund of it at `refund_rate`
    receivable_currency: str | None = None
    capture_rate: str | None = None
    refund_rate: str | None = None
    # whether a refund gives back its share of the capture's fee (PayPal's terms differ by country)
    returns_fees: int = 0


@dataclass
class Authorization:
    id: str
    order_id: str
    amount: int
    currency: str
    status: str
    created_ms: int
    updated_ms: int


@dataclass
class Refund:
    id: str
    capture_id: str
    kind: str  # "refund" | "reversal"
    amount: int
    currency: str
    status: str
    reason: str | None
    invoice_id: str | None
    custom_id: str | None
    note_to_payer: str | None
    request_id: str | None
    settle_at_ms: int | None
    settle_to: str | None
    created_ms: int
    updated_ms: int
    seq: int = 0


def _row(cls: type[Any], row: sqlite3.Row | None) -> Any:
    return None if row is None else cls(**dict(row))


@dataclass(frozen=True)
class SigningMaterial:
    key: rsa.RSAPrivateKey
    cert_pem: bytes  # the signing certificate, then the sandbox CA's: the bundle PayPal serves


class PayPalEngine:
    """PayPal's payments rules over the sandbox store. Every method runs inside a transaction."""

    def __init__(
        self,
        store: SandboxStore,
        *,
        webhook_id: str,
        base_url: Callable[[], str],
        webhook_url: Callable[[], str | None],
        on_event: Callable[[], None],
        on_settlement_scheduled: Callable[[], None],
    ) -> None:
        self._store = store
        self.webhook_id = webhook_id
        self._base_url = base_url
        self._webhook_url = webhook_url
        self._on_event = on_event
        self._on_settlement_scheduled = on_settlement_scheduled
        with store.transaction() as tx:
            # Statement by statement: `executescript` would commit the store's open transaction.
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    tx.conn.execute(statement)
            kept = {row[1] for row in tx.conn.execute("PRAGMA table_info(paypal_captures)")}
            for column in ("receivable_currency", "capture_rate", "refund_rate"):  # a state file from before
                if column not in kept:
                    tx.conn.execute(f"ALTER TABLE paypal_captures ADD COLUMN {column} TEXT")
            if "returns_fees" not in kept:
                tx.conn.execute(
                    "ALTER TABLE paypal_captures ADD COLUMN returns_fees INTEGER NOT NULL DEFAULT 0"
                )
        self.signing = self._signing_material()
        # test certificates: variant -> (served name, issued, valid until); served name -> chain
        self._variants: dict[str, tuple[str, certificates.Issued, datetime]] = {}
        self._served: dict[str, bytes] = {}

    # signing -----------------------------------------------------------------------------------

    def _signing_material(self) -> SigningMaterial:
        """The RSA signing key and its certificate chain (issued by the sandbox CA, as PayPal's are by
        DigiCert), made once and kept in the state file. A state file from before the sandbox had a
        CA holds a self-signed certificate the product no longer trusts: it is issued again."""
        with self._store.transaction() as tx:
            rows = dict(tx.conn.execute("SELECT key, value FROM paypal_meta").fetchall())
            if "private_key" in rows and "cert_pem" in rows:
                chain = rows["cert_pem"].encode()
                if certificates.issued_by_the_sandbox_ca(chain):
                    issued = certificates.load(rows["private_key"].encode(), chain)
                    return SigningMaterial(issued.key, issued.chain_pem)
            issued = certificates.issue_signing_certificate()
            tx.conn.executemany(
                "INSERT OR REPLACE INTO paypal_meta (key, value) VALUES (?, ?)",
                [
                    ("private_key", certificates.key_pem(issued.key).decode()),
                    ("cert_pem", issued.chain_pem.decode()),
                ],
            )
            return SigningMaterial(issued.key, issued.chain_pem)

    @property
    def cert_url(self) -> str:
        return f"{self._base_url()}/_sandbox/paypal/cert.pem"

    def variant_chain(self, name: str) -> bytes | None:
        """A test certificate's chain, served at `certs/<name>.pem` (kept in memory: a test tool)."""
        return self._served.get(name)

    def _variant(self, variant: str) -> tuple[rsa.RSAPrivateKey, str]:
        """A test certificate's key and URL, issued once; a short-lived one again once it expired,
        under a URL of its own (PayPal's cert URLs name one certificate each)."""
        current = self._variants.get(variant)
        if current is None or (variant == "short_lived" and current[2] <= datetime.now(UTC)):
            issued = certificates.issue_variant(variant)
            name = variant if variant != "short_lived" else f"short_lived-{uuid.uuid4().hex[:12]}"
            leaf = x509.load_pem_x509_certificates(issued.chain_pem)[0]
            current = self._variants[variant] = (name, issued, leaf.not_valid_after_utc)
            self._served[name] = issued.chain_pem
        name, issued, _ = current
        return issued.key, f"{self._base_url()}/_sandbox/paypal/certs/{name}.pem"

    def sign(
        self,
        body: str,
        *,
        webhook_id: str | None = None,
        sent_at: str | None = None,
        certificate: str | None = None,
    ) -> dict[str, str]:
        """PayPal's transmission headers: RSA-SHA256 over `id|time|webhook_id|crc32(body)`, with the
        sandbox's signing certificate or, for tests, one of `certificates.VARIANTS`."""
        key, cert_url = self.signing.key, self.cert_url
        if certificate is not None:
            key, cert_url = self._variant(certificate)
        transmission_id = str(uuid.uuid4())
        transmission_time = sent_at or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        crc = zlib.crc32(body.encode())
        message = f"{transmission_id}|{transmission_time}|{webhook_id or self.webhook_id}|{crc}".encode()
        signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        return {
            "PAYPAL-TRANSMISSION-ID": transmission_id,
            "PAYPAL-TRANSMISSION-TIME": transmission_time,
            "PAYPAL-TRANSMISSION-SIG": base64.b64encode(signature).decode(),
            "PAYPAL-CERT-URL": cert_url,
            "PAYPAL-AUTH-ALGO": "SHA256withRSA",
        }

    # tokens ------------------------------------------------------------------------------------

    def issue_token(self, tx: StoreTx, client_id: str) -> dict[str, Any]:
        token = "A21AA" + secrets.token_urlsafe(48)
        tx.conn.execute(
            "INSERT INTO paypal_tokens (token, client_id, expires_ms) VALUES (?, ?, ?)",
            (token, client_id, now_ms() + TOKEN_TTL_SECONDS * 1000),
        )
        return {
            "scope": "https://uri.paypal.com/services/payments/refund",
            "access_token": token,
            "token_type": "Bearer",
            "app_id": "APP-SANDBOX",
            "expires_in": TOKEN_TTL_SECONDS,
            "nonce": f"{_iso(now_ms())}{secrets.token_hex(8)}",
        }

    def token_client(self, tx: StoreTx, token: str) -> str | None:
        row = tx.conn.execute(
            "SELECT client_id FROM paypal_tokens WHERE token = ? AND expires_ms > ?", (token, now_ms())
        ).fetchone()
        return None if row is None else str(row["client_id"])

    # seeding -----------------------------------------------------------------------------------

    def seed_capture(
        self,
        tx: StoreTx,
        *,
        value: Any,
        currency: Any,
        capture_id: str | None = None,
        refund_behavior: str = "completed",
        settle_after_ms: int = 1000,
        invoice_id: str | None = None,
        custom_id: str | None = None,
        receivable_currency: str | None = None,
        capture_rate: str | None = None,
        refund_rate: str | None = None,
        returns_fees: bool = False,
    ) -> dict[str, Any]:
        amount, currency = parse_amount(value, currency)
        now = now_ms()
        capture = Capture(
            id=capture_id or new_id(),
            order_id=new_id(),
            amount=amount,
            currency=currency,
            status="COMPLETED",
            refund_behavior=refund_behavior,
            settle_after_ms=settle_after_ms,
            invoice_id=invoice_id,
            custom_id=custom_id,
            created_ms=now,
            updated_ms=now,
            receivable_currency=receivable_currency,
            capture_rate=capture_rate,
            refund_rate=refund_rate or capture_rate,
            returns_fees=int(returns_fees),
        )
        tx.conn.execute(
            "INSERT INTO paypal_captures (id, order_id, amount, currency, status, refund_behavior,"
            " settle_after_ms, invoice_id, custom_id, created_ms, updated_ms, receivable_currency,"
            " capture_rate, refund_rate, returns_fees)"
            " VALUES (:id, :order_id, :amount, :currency, :status, :refund_behavior, :settle_after_ms,"
            " :invoice_id, :custom_id, :created_ms, :updated_ms, :receivable_currency, :capture_rate,"
            " :refund_rate, :returns_fees)",
            capture.__dict__,
        )
        return self.capture_json(tx, capture)

    def seed_authorization(
        self, tx: StoreTx, *, value: Any, currency: Any, authorization_id: str | None = None
    ) -> dict[str, Any]:
        amount, currency = parse_amount(value, currency)
        now = now_ms()
        authorization = Authorization(
            id=authorization_id or new_id(),
            order_id=new_id(),
            amount=amount,
            currency=currency,
            status="CREATED",
            created_ms=now,
            updated_ms=now,
        )
        tx.conn.execute(
            "INSERT INTO paypal_authorizations (id, order_id, amount, currency, status, created_ms,"
            " updated_ms) VALUES (:id, :order_id, :amount, :currency, :status, :created_ms, :updated_ms)",
            authorization.__dict__,
        )
        return self.authorization_json(authorization)

    # reads -------------------------------------------------------------------------------------

    def get_capture(self, tx: StoreTx, capture_id: str) -> Capture | None:
        row = tx.conn.execute("SELECT * FROM paypal_captures WHERE id = ?", (capture_id,)).fetchone()
        return _row(Capture, row)  # type: ignore[no-any-return]

    def get_authorization(self, tx: StoreTx, authorization_id: str) -> Authorization | None:
        row = tx.conn.execute(
            "SELECT * FROM paypal_authorizations WHERE id = ?", (authorization_id,)
        ).fetchone()
        return _row(Authorization, row)  # type: ignore[no-any-return]

    def get_refund(self, tx: StoreTx, refund_id: str) -> Refund | None:
        row = tx.conn.execute("SELECT * FROM paypal_refunds WHERE id = ?", (refund_id,)).fetchone()
        return _row(Refund, row)  # type: ignore[no-any-return]

    def refunds_of(self, tx: StoreTx, capture_id: str) -> list[Refund]:
        rows = tx.conn.execute(
            "SELECT * FROM paypal_refunds WHERE capture_id = ? ORDER BY seq", (capture_id,)
        ).fetchall()
        return [Refund(**dict(row)) for row in rows]

    def _held(self, tx: StoreTx, capture_id: str) -> int:
        """Money refunds hold: completed and pending ones; failed or cancelled ones gave it back."""
        row = tx.conn.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM paypal_refunds"
            " WHERE capture_id = ? AND status IN ('COMPLETED', 'PENDING')",
            (capture_id,),
        ).fetchone()
        return int(row[0])

    def search_refunds(
        self, tx: StoreTx, start_ms: int, end_ms: int, page: int, page_size: int
    ) -> dict[str, Any]:
        """Transaction Search's answer for merchant refunds (T1107) initiated in [start, end): a
        page of `transaction_details`, each a `transaction_info` with the refund's id, the capture it
        refunds as `paypal_reference_id`, its amount negative, its status code (S, P, D)."""
        rows = tx.conn.execute(
            "SELECT * FROM paypal_refunds WHERE kind = 'refund' AND created_ms >= ? AND created_ms < ?"
            " ORDER BY seq",
            (start_ms, end_ms),
        ).fetchall()
        refunds = [_row(Refund, row) for row in rows]
        chosen = refunds[(page - 1) * page_size : page * page_size]
        body: dict[str, Any] = {
            "account_number": "SANDBOXMERCHANT1",
            "start_date": _iso(start_ms),
            "end_date": _iso(end_ms),
            "last_refreshed_datetime": _iso(now_ms()),
            "page": page,
            "total_items": len(refunds),
            "total_pages": max(1, -(-len(refunds) // page_size)),
        }
        if chosen:  # PayPal's schema: a list of at least one, else none
            body["transaction_details"] = [{"transaction_info": self._refund_transaction(r)} for r in chosen]
        return body

    def _refund_transaction(self, refund: Refund) -> dict[str, Any]:
        status = {"COMPLETED": "S", "PENDING": "P"}.get(refund.status, "D")
        amount = format_amount(refund.amount, refund.currency)
        return {
            "transaction_id": refund.id,
            "paypal_reference_id": refund.capture_id,
            "paypal_reference_id_type": "TXN",
            "transaction_event_code": "T1107",
            "transaction_initiation_date": _iso(refund.created_ms),
            "transaction_updated_date": _iso(refund.updated_ms),
            "transaction_amount": {**amount, "value": "-" + amount["value"]},
            "transaction_status": status,
        }

    def _completed(self, tx: StoreTx, capture_id: str) -> int:
        row = tx.conn.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM paypal_refunds"
            " WHERE capture_id = ? AND status = 'COMPLETED'",
            (capture_id,),
        ).fetchone()
        return int(row[0])

    # JSON ----------------------------------------------------------------------------------------

    def _link(self, path: str, rel: str, method: str = "GET") -> dict[str, str]:
        return {"href": f"{self._base_url()}{path}", "rel": rel, "method": method}

    def capture_json(self, tx: StoreTx, capture: Capture) -> dict[str, Any]:
        fee = capture.amount * 3 // 100
        body: dict[str, Any] = {
            "id": capture.id,
            "status": capture.status,
            "amount": format_amount(capture.amount, capture.currency),
            "final_capture": True,
            "seller_protection": {"status": "ELIGIBLE"},
            "seller_receivable_breakdown": {
                "gross_amount": format_amount(capture.amount, capture.currency),
                "paypal_fee": format_amount(fee, capture.currency),
                "net_amount": format_amount(capture.amount - fee, capture.currency),
                **_received_in(capture, capture.capture_rate, capture.amount - fee, fee, "receivable_amount"),
            },
            "links": [
                self._link(f"/v2/payments/captures/{capture.id}", "self"),
                self._link(f"/v2/payments/captures/{capture.id}/refund", "refund", "POST"),
                self._link(f"/v2/checkout/orders/{capture.order_id}", "up"),
            ],
            "create_time": _iso(capture.created_ms),
            "update_time": _iso(capture.updated_ms),
            "supplementary_data": {"related_ids": {"order_id": capture.order_id}},
        }
        if capture.invoice_id:
            body["invoice_id"] = capture.invoice_id
        if capture.custom_id:
            body["custom_id"] = capture.custom_id
        return body

    def authorization_json(self, authorization: Authorization) -> dict[str, Any]:
        return {
            "id": authorization.id,
            "status": authorization.status,
            "amount": format_amount(authorization.amount, authorization.currency),
            "seller_protection": {"status": "ELIGIBLE"},
            "expiration_time": _iso(authorization.created_ms + 29 * 86_400_000),
            "links": [
                self._link(f"/v2/payments/authorizations/{authorization.id}", "self"),
                self._link(f"/v2/payments/authorizations/{authorization.id}/capture", "capture", "POST"),
                self._link(f"/v2/payments/authorizations/{authorization.id}/void", "void", "POST"),
                self._link(f"/v2/checkout/orders/{authorization.order_id}", "up"),
            ],
            "create_time": _iso(authorization.created_ms),
            "update_time": _iso(authorization.updated_ms),
            "supplementary_data": {"related_ids": {"order_id": authorization.order_id}},
        }

    def _paid_from(self, tx: StoreTx, refund: Refund) -> dict[str, Any]:
        """A refund of a capture received in another currency: what it cost there, net of the fee
        given back, and that fee there."""
        capture = self.get_capture(tx, refund.capture_id)
        if capture is None or not capture.receivable_currency or not capture.refund_rate:
            return {}
        fee = _fee_back(capture, refund.amount)
        paid = _received_in(
            capture, capture.refund_rate, refund.amount - fee, fee, "net_amount_in_receivable_currency"
        )
        breakdown = {
            "payable_amount": format_amount(refund.amount - fee, refund.currency),
            "converted_amount": paid["net_amount_in_receivable_currency"],
            "exchange_rate": paid["exchange_rate"],
        }
        return {**paid, "net_amount_breakdown": [breakdown]}

    def refund_json(self, tx: StoreTx, refund: Refund) -> dict[str, Any]:
        capture = self.get_capture(tx, refund.capture_id)
        fee_back = _fee_back(capture, refund.amount) if capture is not None else 0
        body: dict[str, Any] = {
            "id": refund.id,
            "amount": format_amount(refund.amount, refund.currency),
            "status": refund.status,
            "seller_payable_breakdown": {
                "gross_amount": format_amount(refund.amount, refund.currency),
                "paypal_fee": format_amount(fee_back, refund.currency),
                "net_amount": format_amount(refund.amount - fee_back, refund.currency),
                "total_refunded_amount": format_amount(
                    self._completed(tx, refund.capture_id), refund.currency
                ),
                **self._paid_from(tx, refund),
            },
            "links": [
                self._link(f"/v2/payments/refunds/{refund.id}", "self"),
                self._link(f"/v2/payments/captures/{refund.capture_id}", "up"),
            ],
            "create_time": _iso(refund.created_ms),
            "update_time": _iso(refund.updated_ms),
        }
        if refund.status == "PENDING" and refund.reason:
            # PayPal publishes one reason, and only for a pending refund (ECHECK): a failed or
            # cancelled refund says no more than its status
            body["status_details"] = {"reason": refund.reason}
        for name in ("invoice_id", "custom_id", "note_to_payer"):
            if getattr(refund, name):
                body[name] = getattr(refund, name)
        return body

    def order_json(self, tx: StoreTx, order_id: str) -> dict[str, Any] | None:
        row = tx.conn.execute("SELECT id FROM paypal_captures WHERE order_id = ?", (order_id,)).fetchone()
        if row is not None:
            capture = self.get_capture(tx, row["id"])
            assert capture is not None
            payments: dict[str, Any] = {
                "captures": [self.capture_json(tx, capture)],
                "refunds": [
                    self.refund_json(tx, refund)
                    for refund in self.refunds_of(tx, capture.id)
                    if refund.kind == "refund"
                ],
            }
            intent, amount = "CAPTURE", format_amount(capture.amount, capture.currency)
        else:
            auth_row = tx.conn.execute(
                "SELECT id FROM paypal_authorizations WHERE order_id = ?", (order_id,)
            ).fetchone()
            if auth_row is None:
                return None
            authorization = self.get_authorization(tx, auth_row["id"])
            assert authorization is not None
            payments = {"authorizations": [self.authorization_json(authorization)]}
            intent = "AUTHORIZE"
            amount = format_amount(authorization.amount, authorization.currency)
        return {
            "id": order_id,
            "intent": intent,
            "status": "COMPLETED",
            "purchase_units": [{"reference_id": "default", "amount": amount, "payments": payments}],
            "links": [self._link(f"/v2/checkout/orders/{order_id}", "self")],
        }

    # effects -------------------------------------------------------------------------------------

    def refund(self, tx: StoreTx, capture_id: str, body: Mapping[str, Any], request_id: str | None) -> Refund:
        capture = self.get_capture(tx, capture_id)
        if capture is None:
            raise not_found(f"capture {capture_id}")
        for name, longest in _REFUND_TEXT_LENGTHS.items():
            value = body.get(name)
            if value is not None and (not isinstance(value, str) or not 1 <= len(value) <= longest):
                raise invalid_request(
                    "INVALID_STRING_LENGTH", f"{name} is a string of 1 to {longest} characters."
                )
        if capture.status not in ("COMPLETED", "PARTIALLY_REFUNDED", "REFUNDED"):
            raise unprocessable(
                "REFUND_NOT_ALLOWED", f"A capture in status {capture.status} cannot be refunded."
            )
        held = self._held(tx, capture.id)
        remaining = capture.amount - held
        if remaining <= 0:
            raise unprocessable("CAPTURE_FULLY_REFUNDED", "The capture has already been fully refunded.")
        raw_amount = body.get("amount")
        if raw_amount is None:
            amount = remaining
        else:
            if not isinstance(raw_amount, Mapping):
                raise invalid_request("INVALID_PARAMETER_SYNTAX", "amount must be an object.")
            amount, currency = parse_amount(raw_amount.get("value"), raw_amount.get("currency_code"))
            if currency != capture.currency:
                raise unprocessable(
                    "CURRENCY_MISMATCH", "The refund currency must match the capture's currency."
                )
            if amount > remaining:
                raise unprocessable(
                    "REFUND_AMOUNT_EXCEEDED",
                    "The refund amount must be less than or equal to the capture amount that has not"
                    " yet been refunded.",
                )
        now = now_ms()
        pending = capture.refund_behavior != "completed"
        settle_to = {"pending_then_completed": "COMPLETED", "pending_then_failed": "FAILED"}.get(
            capture.refund_behavior
        )
        refund = Refund(
            id=new_id(),
            capture_id=capture.id,
            kind="refund",
            amount=amount,
            currency=capture.currency,
            status="PENDING" if pending else "COMPLETED",
            reason="ECHECK" if pending else None,
            invoice_id=body.get("invoice_id"),
            custom_id=body.get("custom_id"),
            note_to_payer=body.get("note_to_payer"),
            request_id=request_id,
            settle_at_ms=now + capture.settle_after_ms if settle_to else None,
            settle_to=settle_to,
            created_ms=now,
            updated_ms=now,
        )
        self._insert_refund(tx, refund)
        if pending:
            if settle_to:
                tx.after_commit(self._on_settlement_scheduled)
        else:
            self._refund_completed(tx, capture, refund)
        return refund

    def _insert_refund(self, tx: StoreTx, refund: Refund) -> None:
        fields = {k: v for k, v in refund.__dict__.items() if k != "seq"}
        cursor = tx.conn.execute(
            f"INSERT INTO paypal_refunds ({', '.join(fields)}) VALUES ({', '.join(':' + k for k in fields)})",
            fields,
        )
        refund.seq = int(cursor.lastrowid or 0)

    def _update_capture_status(self, tx: StoreTx, capture: Capture) -> None:
        completed = self._completed(tx, capture.id)
        status = (
            "REFUNDED" if completed >= capture.amount else "PARTIALLY_REFUNDED" if completed else "COMPLETED"
        )
        tx.conn.execute(
            "UPDATE paypal_captures SET status = ?, updated_ms = ? WHERE id = ?",
            (status, now_ms(), capture.id),
        )
        capture.status = status

    def _refund_completed(self, tx: StoreTx, capture: Capture, refund: Refund) -> None:
        self._update_capture_status(tx, capture)
        self.emit(tx, "PAYMENT.CAPTURE.REFUNDED", "refund", self.refund_json(tx, refund))

    def settle(self, tx: StoreTx, refund_id: str, status: str, reason: str | None = None) -> Refund:
        refund = self.get_refund(tx, refund_id)
        if refund is None:
            raise not_found(f"refund {refund_id}")
        if status not in ("COMPLETED", "FAILED", "CANCELLED"):
            raise invalid_request("INVALID_PARAMETER_VALUE", "status must be COMPLETED, FAILED or CANCELLED")
        if refund.status != "PENDING":
            raise unprocessable("REFUND_NOT_PENDING", f"refund {refund_id} is {refund.status}")
        refund.status, refund.updated_ms = status, now_ms()
        refund.reason = None if status == "COMPLETED" else (reason or "REFUND_FAILED_INSUFFICIENT_FUNDS")
        tx.conn.execute(
            "UPDATE paypal_refunds SET status = ?, reason = ?, settle_at_ms = NULL, settle_to = NULL,"
            " updated_ms = ? WHERE id = ?",
            (refund.status, refund.reason, refund.updated_ms, refund.id),
        )
        capture = self.get_capture(tx, refund.capture_id)
        assert capture is not None
        if status == "COMPLETED":
            self._refund_completed(tx, capture, refund)
        else:
            self.emit(tx, f"PAYMENT.REFUND.{status}", "refund", self.refund_json(tx, refund))
        return refund

    def settle_due(self) -> int | None:
        """Settle the pending refunds whose time has come; return when the next one is due."""
        try:
            with self._store.transaction() as tx:
                due = tx.conn.execute(
                    "SELECT id, settle_to FROM paypal_refunds WHERE settle_at_ms IS NOT NULL"
                    " AND settle_at_ms <= ? ORDER BY settle_at_ms, seq",
                    (now_ms(),),
                ).fetchall()
                for row in due:
                    self.settle(tx, row["id"], row["settle_to"])
                following = tx.conn.execute(
                    "SELECT MIN(settle_at_ms) FROM paypal_refunds WHERE settle_at_ms IS NOT NULL"
                ).fetchone()[0]
        except sqlite3.ProgrammingError:
            return None  # the server closed the store: it is shutting down
        return None if following is None else int(following)

    def void(self, tx: StoreTx, authorization_id: str) -> Authorization:
        authorization = self.get_authorization(tx, authorization_id)
        if authorization is None:
            raise not_found(f"authorization {authorization_id}")
        match authorization.status:
            case "CREATED":
                pass
            case "VOIDED":
                raise unprocessable("PREVIOUSLY_VOIDED", "The authorization has been previously voided.")
            case "CAPTURED" | "PARTIALLY_CAPTURED":
                raise unprocessable(
                    "PREVIOUSLY_CAPTURED", "A captured authorization cannot be voided; refund the capture."
                )
            case _:
                raise unprocessable(
                    "CANNOT_BE_VOIDED", f"An authorization in {authorization.status} cannot be voided."
                )
        authorization.status, authorization.updated_ms = "VOIDED", now_ms()
        tx.conn.execute(
            "UPDATE paypal_authorizations SET status = ?, updated_ms = ? WHERE id = ?",
            (authorization.status, authorization.updated_ms, authorization.id),
        )
        self.emit(tx, "PAYMENT.AUTHORIZATION.VOIDED", "authorization", self.authorization_json(authorization))
        return authorization

    def reverse(self, tx: StoreTx, capture_id: str, value: str | None = None) -> Refund:
        """PayPal takes the capture's money back (chargeback or fraud hold): PAYMENT.CAPTURE.REVERSED."""
        capture = self.get_capture(tx, capture_id)
        if capture is None:
            raise not_found(f"capture {capture_id}")
        remaining = capture.amount - self._held(tx, capture.id)
        amount = remaining if value is None else parse_amount(value, capture.currency)[0]
        if amount <= 0 or amount > remaining:
            raise unprocessable("REFUND_AMOUNT_EXCEEDED", "Nothing (or less) is left to reverse.")
        now = now_ms()
        reversal = Refund(
            id=new_id(),
            capture_id=capture.id,
            kind="reversal",
            amount=amount,
            currency=capture.currency,
            status="COMPLETED",
            reason=None,
            invoice_id=None,
            custom_id=None,
            note_to_payer=None,
            request_id=None,
            settle_at_ms=None,
            settle_to=None,
            created_ms=now,
            updated_ms=now,
        )
        self._insert_refund(tx, reversal)
        self._update_capture_status(tx, capture)
        self.emit(tx, "PAYMENT.CAPTURE.REVERSED", "refund", self.refund_json(tx, reversal))
        return reversal

    def dispute(
        self, tx: StoreTx, capture_id: str, reason: str = "MERCHANDISE_OR_SERVICE_NOT_RECEIVED"
    ) -> str:
        capture = self.get_capture(tx, capture_id)
        if capture is None:
            raise not_found(f"capture {capture_id}")
        dispute_id = "PP-D-" + secrets.token_hex(4).upper()
        now = _iso(now_ms())
        self.emit(
            tx,
            "CUSTOMER.DISPUTE.CREATED",
            "dispute",
            {
                "dispute_id": dispute_id,
                "create_time": now,
                "update_time": now,
                "disputed_transactions": [
                    {"seller_transaction_id": capture.id, "seller": {"merchant_id": "SANDBOXMERCHANT"}}
                ],
                "reason": reason,
                "status": "OPEN",
                "dispute_amount": format_amount(capture.amount, capture.currency),
                "dispute_life_cycle_stage": "INQUIRY",
                "dispute_channel": "INTERNAL",
            },
        )
        return dispute_id

    # webhooks ------------------------------------------------------------------------------------

    def emit(self, tx: StoreTx, event_type: str, resource_type: str, resource: dict[str, Any]) -> None:
        """Queue an event in the same transaction as the change it announces."""
        url = self._webhook_url()
        now = now_ms()
        event_id = "WH-" + "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(24))
        payload = {
            "id": event_id,
            "event_version": "1.0",
            "create_time": _iso(now),
            "resource_type": resource_type,
            "resource_version": "2.0",
            "event_type": event_type,
            "summary": f"{event_type} for {resource.get('id') or resource.get('dispute_id')}",
            "resource": resource,
            "links": [self._link(f"/v1/notifications/webhooks-events/{event_id}", "self")],
        }
        tx.conn.execute(
            "INSERT INTO paypal_outbox (id, event_type, payload, url, state, attempts, next_attempt_ms,"
            " created_ms) VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
            (
                event_id,
                event_type,
                json.dumps(payload),
                url,
                "pending" if url else "no_endpoint",
                now if url else None,
                now,
            ),
        )
        if url:
            tx.after_commit(self._on_event)

    def events(self, tx: StoreTx) -> dict[str, Any]:
        events = [
            {**dict(row), "payload": json.loads(row["payload"])}
            for row in tx.conn.execute("SELECT * FROM paypal_outbox ORDER BY seq").fetchall()
        ]
        deliveries = [
            dict(row) for row in tx.conn.execute("SELECT * FROM paypal_deliveries ORDER BY seq").fetchall()
        ]
        return {"events": events, "deliveries": deliveries}

    def reset(self, tx: StoreTx) -> None:
        for table in _TABLES:
            tx.conn.execute(f"DELETE FROM {table}")


class PayPalOutbox:
    """`paypal_outbox` for the shared `WebhookSender`: signed afresh at each attempt, each attempt kept
    in `paypal_deliveries`."""

    label = "paypal webhook"

    def __init__(self, engine: PayPalEngine) -> None:
        self._engine = engine

    def next_due(self, tx: StoreTx, now: int) -> OutgoingEvent | None:
        row = tx.conn.execute(
            "SELECT * FROM paypal_outbox WHERE state = 'pending' AND next_attempt_ms <= ?"
            " ORDER BY next_attempt_ms, seq LIMIT 1",
            (now,),
        ).fetchone()
        if row is None:
            return None
        return OutgoingEvent(
            row["id"], "paypal", row["event_type"], row["url"], row["payload"], int(row["attempts"])
        )

    def next_due_ms(self, tx: StoreTx) -> int | None:
        following = tx.conn.execute(
            "SELECT MIN(next_attempt_ms) FROM paypal_outbox WHERE state = 'pending'"
        ).fetchone()[0]
        return None if following is None else int(following)

    def headers(self, event: OutgoingEvent) -> dict[str, str]:
        return {"Content-Type": "application/json"} | self._engine.sign(event.payload)

    def record(self, tx: StoreTx, event: OutgoingEvent, attempt: Attempt) -> None:
        tx.conn.execute(
            "UPDATE paypal_outbox SET state = ?, attempts = ?, next_attempt_ms = ? WHERE id = ?",
            (attempt.state, attempt.number, attempt.next_attempt_ms, event.id),
        )
        tx.conn.execute(
            "INSERT INTO paypal_deliveries (event_id, event_type, url, attempt, http_status, error,"
            " at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                event.id,
                event.type,
                event.url,
                attempt.number,
                attempt.http_status,
                attempt.error,
                attempt.at_ms,
            ),
        )
