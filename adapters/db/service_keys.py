"""The service's public signing keys, published at its start: a worker holds no signing secret, so it
learns from the database which keys prove what a workflow's input says the service signed. Writing
here needs the database, which already holds the books: Temporal access alone cannot add a key."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from adapters.db.dialect import insert_ignoring_conflicts
from adapters.db.models import ServiceKeyRow


def publish(session: Session, public_keys: tuple[str, ...]) -> None:
    rows = [{"public_key": key} for key in public_keys]
    if rows:
        insert_ignoring_conflicts(session, ServiceKeyRow, rows)


def known(session: Session) -> tuple[str, ...]:
    return tuple(session.execute(select(col(ServiceKeyRow.public_key))).scalars())
