"""One merchant's PSP account moves only its own money: what its verified events name of another
merchant's payments and refunds changes nothing there."""

from __future__ import annotations

from adapters.db.payment_book import DatabasePaymentBook
from domain.contracts import PaymentRecord
from domain.status import PaymentState, Provider
from tests.conftest import Stack
from tests.helpers import unique


def test_an_adyen_notification_from_another_account_leaves_the_payment_as_its_own_account_told(
    stack: Stack,
) -> None:
    """Globex signs (with its own HMAC key) a CAPTURE naming the default merchant's payment, with a
    larger amount: the payment book keeps what the payment's own account said."""
    book = DatabasePaymentBook(stack.database)
    reference = unique("PSP").upper()
    ours = PaymentRecord(
        provider=Provider.ADYEN,
        reference=reference,
        state=PaymentState.CAPTURED,
        currency="EUR",
        amount_authorized=5_000,
        amount_captured=5_000,
    )
    book.record(ours, "DefaultAccount")
    book.record(ours.model_copy(update={"amount_captured": 90_000, "amount_authorized": 90_000}), "Globex")
    kept = book.get(Provider.ADYEN, reference, "DefaultAccount")
    assert kept is not None and kept.amount_captured == 5_000
    assert book.get(Provider.ADYEN, reference, "Globex") is None
