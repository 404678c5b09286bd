"""Schema migrations: `upgrade` brings any database to the newest revision; services run it at start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

_SCRIPTS = Path(__file__).with_name("migrations")
_LOCK_ID = 0x72656675  # any constant shared by every process of the product


class UnversionedDatabase(RuntimeError):
    """Tables exist but no migration revision: a database made before migrations, or by hand."""


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    return config


def _run(engine: Engine, action: str, revision: str) -> None:
    config = _config()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Processes starting together migrate one at a time; SQLite's BEGIN IMMEDIATE does this.
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_ID})")
        unversioned = MigrationContext.configure(connection).get_current_revision() is None
        if action == "upgrade" and unversioned and inspect(connection).has_table("payments"):
            raise UnversionedDatabase(
                f"{engine.url.render_as_string(hide_password=True)} has tables but no migration "
                "revision; it predates migrations: move it aside (or drop its tables) and start again"
            )
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Migrate to `revision`; returns the revision the database is at afterwards."""
    _run(engine, "upgrade", revision)
    return current_revision(engine)


def downgrade(engine: Engine, revision: str) -> str | None:
    _run(engine, "downgrade", revision)
    return current_revision(engine)
