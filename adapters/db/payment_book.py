"""The payment book: payments as PSP notifications describe them, for PSPs we cannot ask later."""

from __future__ import annotations

from sqlmodel import col, select

from adapters.db import reservations
from adapters.db.engine import Database
from adapters.db.models import PspPaymentRow, utcnow
from domain.contracts import PaymentRecord
from domain.status import PaymentState, Provider

# A notification never moves a payment backwards (a late AUTHORISATION after its CAPTURE).
_RANK = {PaymentState.AUTHORIZED: 1, PaymentState.CAPTURED: 2, PaymentState.CANCELED: 3}


class DatabasePaymentBook:
    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, provider: Provider, reference: str, account: str | None = None) -> PaymentRecord | None:
        """The payment as recorded; with `account`, only if it is that merchant account's."""
        with self._db.transaction() as session:
            row = session.get(PspPaymentRow, (provider.value, reference))
            if row is None:
                return None
            if account is not None and row.account is not None and row.account != account:
                return None  # another merchant account's payment
            payment = PaymentRecord(
                provider=provider,
                reference=reference,
                state=PaymentState(row.state),
                currency=row.currency,
                amount_authorized=row.amount_authorized,
                amount_captured=row.amount_captured,
                amount_refunded=row.amount_refunded,
            )
            # the notifications tell of captures, not of what is left: every refund of the payment
            # we know of (ours, a dashboard's, a warning's) is in the over-refund guard's record; what
            # they took for good, as a PSP's refunded figure would say (a refund on its way is
            # weighed by validation, which knows which refund is asking)
            refunded = min(
                max(row.amount_refunded, reservations.committed(session, payment)), row.amount_captured
            )
            return payment.model_copy(update={"amount_refunded": refunded})

    def record(self, payment: PaymentRecord, account: str | None = None) -> None:
        """Keep the furthest state seen and the largest amounts; duplicates change nothing."""
        with self._db.transaction() as session:
            key = (payment.provider.value, payment.reference)
            row = session.get(PspPaymentRow, key, with_for_update=True)
            if row is None:
                row = PspPaymentRow(
                    provider=payment.provider.value,
                    reference=payment.reference,
                    state=payment.state.value,
                    currency=payment.currency,
                    account=account,
                )
            elif account is not None and row.account is not None and row.account != account:
                return  # another merchant account's payment: its notifications are not ours to tell
            elif _RANK.get(payment.state, 0) < _RANK.get(PaymentState(row.state), 0):
                return
            row.state = payment.state.value
            row.currency = payment.currency or row.currency
            row.amount_authorized = max(row.amount_authorized, payment.amount_authorized)
            row.amount_captured = max(row.amount_captured, payment.amount_captured)
            row.amount_refunded = max(row.amount_refunded, payment.amount_refunded)
            row.updated_at = utcnow()
            session.add(row)


def adopt_unowned(db: Database, provider: Provider, account: str) -> int:
    """Payments recorded before the book kept accounts (one account then: the default merchant's)
    are that account's: left unowned, any other merchant's account could claim, hold or book them.
    Run at every start; how many were adopted."""
    with db.transaction() as session:
        rows = session.execute(
            select(PspPaymentRow)
            .where(col(PspPaymentRow.provider) == provider.value, col(PspPaymentRow.account).is_(None))
            .with_for_update()
        ).scalars()
        adopted = 0
        for row in rows:
            row.account = account
            adopted += 1
        return adopted
