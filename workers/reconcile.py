"""`refunds reconcile`: the PSP's refunds, listed through its adapter, against the books."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from adapters.db import refunds
from adapters.db.engine import Database
from domain.reconciliation import Discrepancy, PspRefundRecord, reconcile
from domain.status import Provider
from workers.psps import build_directory
from workers.settings import Settings


def reconcile_provider(
    settings: Settings,
    provider: Provider,
    since: datetime,
    payments: Sequence[str] = (),
    on_progress: Callable[[int, int], None] = lambda done, total: None,
    merchant_id: str | None = None,
    report: str | None = None,
    until: datetime | None = None,
) -> list[Discrepancy]:
    """Differences between one merchant's account at `provider` (None: the default merchant's) and
    its books since `since`, for the given payments or (none given) for every payment the books know
    plus whatever else the PSP can list. Raises PspError."""
    db = Database.existing(settings.database_url)  # a read: raises NoDatabase where there is none
    try:
        mine = None if merchant_id in (None, settings.merchant_id) else merchant_id
        adapter = build_directory(settings, db).get(mine, provider)
        with db.transaction() as session:
            books = refunds.booked(session, provider, since, payments, mine, until)
        if report is not None:  # the PSP's own statement of the window (where its API lists none)
            listed = adapter.refunds_in_report(report)
            if payments:
                listed = [record for record in listed if record.payment_reference in payments]
            on_progress(1, 1)
            return reconcile(listed, books)
        references = list(payments) or sorted({refund.payment_reference for refund in books})
        found: dict[str, PspRefundRecord] = {}
        steps = len(references) + (0 if payments else 1)
        if not payments:  # refunds on payments the books never saw (a dashboard, another system)
            found |= {r.psp_refund_id: r for r in adapter.list_refunds(since, [], everything=True)}
            on_progress(1, steps)
        for done, reference in enumerate(references, start=steps - len(references) + 1):
            found |= {r.psp_refund_id: r for r in adapter.list_refunds(since, [reference], everything=False)}
            on_progress(done, steps)
        return reconcile(found.values(), books)
    finally:
        db.dispose()
