"""A PostgreSQL host that stops answering costs a request an error, not a thread for ever."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.exc import OperationalError

from adapters.db import engine
from adapters.db.engine import Database, make_engine, with_network_deadlines


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port whose kernel completes every TCP handshake and whose server never says a word: what a
    database behind a stalled proxy, or a host that stopped mid-handshake, looks like."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # never accepted, never answered
        yield int(listener.getsockname()[1])


def test_a_connection_to_a_silent_database_gives_up(
    silent_server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(engine.NETWORK_DEADLINES, "connect_timeout", "1")  # the default's 10 s, shortened
    database = Database(make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{silent_server}/refunds"))

    def read() -> object:
        with database.transaction() as session:
            return session.execute(text("SELECT 1")).scalar_one()

    try:
        with ThreadPoolExecutor(1) as pool:
            attempt = pool.submit(read)
            with pytest.raises(OperationalError):
                attempt.result(timeout=60)  # without a deadline the read never returns
    finally:
        database.dispose()


def test_what_the_url_says_wins_and_everything_else_is_kept() -> None:
    url = make_url(
        with_network_deadlines("postgresql+psycopg://app:s3cr%40t@db:5432/refunds?connect_timeout=3")
    )
    assert url.password == "s3cr@t" and (url.host, url.port, url.database) == ("db", 5432, "refunds")
    assert url.query["connect_timeout"] == "3"
    assert url.query["keepalives"] == "1" and url.query["keepalives_idle"] == "30"
