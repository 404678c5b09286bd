"""Where SQLite and PostgreSQL differ, in one place: each helper reads the dialect off the session's
bind, so data functions take a session and nothing else to know which database they talk to.

The engine's own differences (SQLite's write lock taken at BEGIN, its pragmas; PostgreSQL's pool)
are set up in `adapters/db/engine.py`, and the migration lock in `adapters/db/migrate.py`.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlmodel import SQLModel

_Selected = TypeVar("_Selected", bound=Select[*tuple[Any, ...]])


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def insert_new(session: Session, model: type[SQLModel], rows: list[dict[str, Any]]) -> list[Any]:
    """Insert rows, skipping any that conflict with a unique key; the primary keys inserted."""
    if not rows:
        return []
    table = model.__table__  # type: ignore[attr-defined]
    dialect = postgresql if _is_postgres(session) else sqlite
    # RETURNING tells what was really inserted (rowcount is unreliable for ON CONFLICT); rows go as
    # parameters, not in the statement, so its compiled form is cached across calls.
    key = next(iter(table.primary_key.columns))
    statement = dialect.insert(table).on_conflict_do_nothing().returning(key)
    return [row[0] for row in session.execute(statement, rows).all()]


def insert_ignoring_conflicts(session: Session, model: type[SQLModel], rows: list[dict[str, Any]]) -> int:
    """Insert rows, skipping any whose unique key exists; returns how many were inserted."""
    return len(insert_new(session, model, rows))


def claim_unlocked(query: _Selected, of: type[SQLModel]) -> _Selected:
    """Lock the rows `query` selects, passing over rows another transaction holds (PostgreSQL's
    SKIP LOCKED). SQLite has no row locks: its one writer at a time (BEGIN IMMEDIATE) claims all."""
    return query.with_for_update(skip_locked=True, of=of)
