"""Alembic's environment: the product's SQLModel metadata, on the connection `migrate.py` passes in."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

import adapters.db.models  # noqa: F401  (registers the tables on SQLModel.metadata)


def _render_item(kind: str, item: Any, autogen_context: Any) -> str | Literal[False]:
    """Plain `sa.String` in migrations, so they do not depend on SQLModel's internals."""
    if kind == "type" and isinstance(item, AutoString):
        return f"sa.String(length={item.length})" if item.length else "sa.String()"
    return False


connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=True,  # SQLite alters tables by copying them
    compare_type=True,
    render_item=_render_item,
)
with context.begin_transaction():
    context.run_migrations()
