"""Alembic migrations: they build exactly the models' schema, run concurrently, go down and up again."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlalchemy.orm import Session
from sqlmodel import SQLModel

from adapters.db import clients, ledger, migrate
from adapters.db.engine import make_engine
from domain.clients import Client, new_key
from domain.currencies import MAX_MINOR_UNITS
from domain.money import Money
from domain.postings import Transfer
from tests.conftest import PG_ADMIN_URL, postgres_available


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database of each kind, made for the test alone."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'migrations.db'}")
        yield engine
        engine.dispose()
        return
    if not postgres_available():
        pytest.skip("PostgreSQL is not running here")
    name = f"refunds_migrations_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
    yield engine
    engine.dispose()
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def differences(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, SQLModel.metadata))


def test_migrations_build_exactly_the_models_schema(empty_engine: Engine) -> None:
    """A model changed without a migration fails here."""
    assert migrate.upgrade(empty_engine) == migrate.head_revision()
    assert differences(empty_engine) == []
    assert migrate.upgrade(empty_engine) == migrate.head_revision()  # a current database: no-op


def test_every_migration_goes_down_and_up_again(empty_engine: Engine) -> None:
    migrate.upgrade(empty_engine)
    assert migrate.downgrade(empty_engine, "base") is None
    assert [t for t in inspect(empty_engine).get_table_names() if t != "alembic_version"] == []
    assert migrate.upgrade(empty_engine) == migrate.head_revision()
    assert differences(empty_engine) == []


def test_processes_starting_together_migrate_once(empty_engine: Engine) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        revisions = list(pool.map(lambda _: migrate.upgrade(empty_engine), range(4)))
    assert revisions == [migrate.head_revision()] * 4
    assert differences(empty_engine) == []


def test_a_database_without_a_revision_is_refused_with_a_clear_message(empty_engine: Engine) -> None:
    with empty_engine.begin() as connection:
        connection.execute(text("CREATE TABLE payments (payment_key VARCHAR(200) PRIMARY KEY)"))
    with pytest.raises(migrate.UnversionedDatabase, match="predates migrations"):
        migrate.upgrade(empty_engine)


def test_postings_made_before_transfers_become_transfers(empty_engine: Engine) -> None:
    migrate.upgrade(empty_engine, "0001")
    with empty_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO ledger_postings (posting_key, request_id, currency, description, posted_at)"
                " VALUES ('r1:refund', 'r1', 'EUR', 'refund re_1', CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO ledger_lines (posting_key, account, debit, credit, currency) VALUES"
                " ('r1:refund', 'm1:refunds_contra_revenue:EUR', 1234, 0, 'EUR'),"
                " ('r1:refund', 'm1:psp_clearing:stripe:EUR', 0, 1234, 'EUR')"
            )
        )
    migrate.upgrade(empty_engine)
    with Session(empty_engine) as session:
        assert ledger.transfers(session, "r1") == [
            Transfer(
                "r1:refund",
                "m1:refunds_contra_revenue:EUR",
                "m1:psp_clearing:stripe:EUR",
                1234,
                "EUR",
                "single",
                "m1",
            )
        ]
        assert ledger.balances(session, "r1") == {
            ("m1:refunds_contra_revenue:EUR", "EUR"): 1234,
            ("m1:psp_clearing:stripe:EUR", "EUR"): -1234,
        }
        merchant = session.execute(text("SELECT merchant FROM ledger_transfers")).scalar_one()
        queued = session.execute(text("SELECT count(*) FROM ledger_outbox")).scalar_one()
    assert (merchant, queued) == ("m1", 1)

    migrate.downgrade(empty_engine, "0001")
    with empty_engine.connect() as connection:
        lines = connection.execute(
            text("SELECT account, debit, credit FROM ledger_lines ORDER BY debit DESC")
        ).all()
    assert [tuple(line) for line in lines] == [
        ("m1:refunds_contra_revenue:EUR", 1234, 0),
        ("m1:psp_clearing:stripe:EUR", 0, 1234),
    ]


def test_a_clients_one_maximum_becomes_that_amount_in_each_of_its_currencies(empty_engine: Engine) -> None:
    migrate.upgrade(empty_engine, "0009")
    with empty_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO api_clients (name, merchant, key_digest, reasons, max_per_refund, created_at)"
                " VALUES ('helpdesk', 'default', 'd1', 'damaged', '50.5', CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO api_client_budgets (client, currency, daily_limit) VALUES"
                " ('helpdesk', 'EUR', 20000), ('helpdesk', 'JPY', 30000)"
            )
        )
    migrate.upgrade(empty_engine)
    with Session(empty_engine) as session:
        [entry] = clients.listing(session)
    client = entry.client
    # 50.50 euros; 50 yen, never rounded up past what the operator allowed
    assert client.maxima == (Money(value=5_050, currency="EUR"), Money(value=50, currency="JPY"))


def test_a_maximum_as_large_as_was_allowed_fits_in_a_currency_of_four_decimals(empty_engine: Engine) -> None:
    migrate.upgrade(empty_engine, "0009")
    with empty_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO api_clients (name, merchant, key_digest, reasons, max_per_refund, created_at)"
                " VALUES ('treasury', 'default', 'd1', 'damaged', '1000000000000000', CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO api_client_budgets (client, currency, daily_limit) VALUES"
                " ('treasury', 'CLF', 10), ('treasury', 'EUR', 10)"
            )
        )
    assert migrate.upgrade(empty_engine) == migrate.head_revision()  # 10^19 CLF minor units: no BIGINT
    with Session(empty_engine) as session:
        [entry] = clients.listing(session)
    assert entry.client.maxima == (
        Money(value=MAX_MINOR_UNITS, currency="CLF"),
        Money(value=MAX_MINOR_UNITS, currency="EUR"),
    )


def test_a_downgrade_keeps_each_clients_maxima_as_its_smallest_one_decimal(empty_engine: Engine) -> None:
    migrate.upgrade(empty_engine)
    budgets = (Money(value=20_000, currency="EUR"), Money(value=30_000, currency="JPY"))
    with Session(empty_engine) as session, session.begin():
        for name, maxima in (
            ("euros", (Money(value=5_050, currency="EUR"),)),
            ("both", (Money(value=5_050, currency="EUR"), Money(value=40, currency="JPY"))),
        ):
            client = Client(
                name=name,
                merchant_id="default",
                reasons=("damaged",),
                maxima=maxima,
                budgets=budgets[: len(maxima)],
            )
            assert clients.create(session, client, new_key())
    migrate.downgrade(empty_engine, "0009")
    with empty_engine.connect() as connection:
        kept = connection.execute(text("SELECT name, max_per_refund FROM api_clients ORDER BY name")).all()
    assert [tuple(row) for row in kept] == [("both", "40"), ("euros", "50.50")]
    migrate.upgrade(empty_engine)  # and up again: no maximum of an operator's lost to 1 minor unit
    with Session(empty_engine) as session:
        again = {entry.client.name: entry.client.maxima for entry in clients.listing(session)}
    assert again == {
        "both": (Money(value=4_000, currency="EUR"), Money(value=40, currency="JPY")),
        "euros": (Money(value=5_050, currency="EUR"),),
    }
