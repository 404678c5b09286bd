"""The merchants file's event endpoints (`[[merchants.M.events]]`), kept in the database at each
worker start, where the relay reads them: the file is the truth for the endpoints it declares."""

from __future__ import annotations

from datetime import timedelta

from adapters.db import event_endpoints
from adapters.db.engine import Database
from domain.outbound_events import parse_types
from workers.settings import Settings

SECRET_GRACE = timedelta(hours=24)  # a secret changed in the file still signs beside the new one


def keep_declared_endpoints(settings: Settings, db: Database) -> list[str]:
    """What changed, one line each (printed by the worker at its start)."""
    changes = []
    with db.transaction() as session:
        for merchant_id, profile in settings.merchant_profiles().items():
            if merchant_id == settings.merchant_id:
                continue  # the default merchant's endpoints are made with `refunds events endpoint add`
            declared = [(e.url, parse_types(e.types), e.secret) for e in profile.events]
            changes += event_endpoints.keep_declared(session, merchant_id, declared, SECRET_GRACE)
    return changes
