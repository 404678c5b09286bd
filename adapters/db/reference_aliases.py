"""Aliases of request ids too long for a PSP's reference field, resolved when its webhook names one."""

from __future__ import annotations

from adapters.db.dialect import insert_ignoring_conflicts
from adapters.db.engine import Database
from adapters.db.models import ReferenceAliasRow


class DatabaseReferenceBook:
    def __init__(self, db: Database) -> None:
        self._db = db

    def remember(self, alias: str, request_id: str) -> None:
        """Idempotent: every attempt of a refund remembers the same alias."""
        with self._db.transaction() as session:
            insert_ignoring_conflicts(
                session, ReferenceAliasRow, [{"alias": alias, "request_id": request_id}]
            )

    def resolve(self, alias: str) -> str | None:
        with self._db.transaction() as session:
            row = session.get(ReferenceAliasRow, alias)
            return row.request_id if row is not None else None
