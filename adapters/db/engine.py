"""Engine and session factory for SQLite (embedded default) and PostgreSQL (production)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from adapters.db import (
    migrate,
    models,  # noqa: F401  (registers the tables)
)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        _ensure_parent_dir(url)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, pool_pre_ping=True
        )
        _serialise_sqlite_writers(engine)
        return engine
    return create_engine(with_network_deadlines(url), pool_size=10, max_overflow=20, pool_pre_ping=True)


# A PostgreSQL host that stops answering (a dropped route, a firewall that discards) must cost a
# request an error, not a thread for ever: a connection attempt gives up after 10 s, and an idle or
# stuck connection is found dead by TCP keepalives within about a minute. What the URL sets wins.
NETWORK_DEADLINES = {
    "connect_timeout": "10",
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
}


def with_network_deadlines(url: str) -> str:
    parsed = make_url(url)
    missing = {key: value for key, value in NETWORK_DEADLINES.items() if key not in parsed.query}
    return parsed.update_query_dict(missing).render_as_string(hide_password=False)


def _ensure_parent_dir(url: str) -> None:
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def _serialise_sqlite_writers(engine: Engine) -> None:
    """SQLite has no row locks: take the write lock at BEGIN so check-then-insert is atomic."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def bound_statements(session: Session, milliseconds: int) -> None:
    """Have every statement of this transaction give up (an OperationalError) after `milliseconds`,
    waiting for a lock included: a read that must answer promptly (a metrics scrape) never hangs
    behind a migration's table lock. PostgreSQL only: SQLite's wait is the connection's timeout."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"SET LOCAL statement_timeout = {int(milliseconds)}"))


def create_schema(engine: Engine) -> None:
    """Bring the schema to the newest migration (every process does this at start; it is a no-op
    when the database is current, and concurrent starts are serialised by the migration's lock)."""
    migrate.upgrade(engine)


class NoDatabase(Exception):
    """A read found no database where it was pointed: it creates none."""


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names; None for another database (or SQLite in memory)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


class Database:
    """A session factory; `transaction()` commits on success and rolls back on error."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def connect(cls, url: str, *, create: bool = True) -> Database:
        database = cls(make_engine(url))
        if create:
            create_schema(database.engine)
        return database

    @classmethod
    def existing(cls, url: str) -> Database:
        """The database for a read: one that is there already (a SQLite file that is missing raises
        NoDatabase; SQLite would create an empty one where the command stands)."""
        path = sqlite_file(url)
        if path is not None and not path.exists():
            raise NoDatabase(url)
        return cls.connect(url)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
