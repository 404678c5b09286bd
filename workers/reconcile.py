"""`refunds reconcile`: the PSP's refunds, listed through its adapter, against the books."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from adapters.db import refunds
from adapters.db.engine import Database
from domain.reconciliation import Discrepancy, PspRefundRecord, reconcile
from domain.status import Provider
from workers.psps import build_registry
from workers.settings import Settings


def reconcile_provider(
    settings: Settings,
    provider: Provider,
    since: datetime,
    payments: Sequence[str] = (),
    on_progress: Callable[[int, int], None] = lambda done, total: None,
) -> list[Discrepancy]:
    """Differences between `provider` and the books since `since`, for the given payments or (none
    given) for every payment the books know plus whatever else the PSP can list. Raises PspError."""
    db = Database.connect(settings.database_url)
    try:
        adapter = build_registry(settings, db).get(provider)
        with db.transaction() as session:
            books = refunds.booked(session, provider, since, payments)
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
