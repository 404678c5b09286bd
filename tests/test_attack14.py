"""Adversarial checks: what `refunds dev` tells hand-run commands, what the CLI prints to an
operator's terminal, how long the CLI waits for an unanswered query, and what a review answers
once it has been decided."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import OperationalError
from temporalio.service import RPCError, RPCStatusCode
from typer.testing import CliRunner

from adapters.db import outbox
from adapters.db.engine import Database
from domain.contracts import RefundState
from domain.status import RefundStatus
from tests.conftest import repo_root
from tests.documents import DOCUMENTS, examples
from tests.helpers import book_refund
from workers import cli, cli_kit, ops
from workers.dev import write_dev_env
from workers.settings import DEV_ENV_FILE, Settings, local_settings

ESC = "\x1b"


@pytest.fixture
def hand_shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A shell beside a `refunds dev` on `tmp_path/.refunds`: nothing exported, no `.env`."""
    for name in list(os.environ):
        if name.upper().startswith("REFUNDS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    data = tmp_path / ".refunds"
    data.mkdir()
    return data


# --- dev.env ----------------------------------------------------------------------------------


HOSTILE = {
    "REFUNDS_INBOUND_WEBHOOK_SECRET": "s3cr${HOME}t",
    "REFUNDS_OPERATOR": "o'brien ${REFUNDS_INBOUND_WEBHOOK_SECRET} café",
    "REFUNDS_REVIEWER_TOKEN": 'tok"en\\n\\\\ $(id) `id`',
    "REFUNDS_OTEL_SERVICE_NAME": "line\r\nnext\ttab\x0bvt",
    "REFUNDS_SERVICE_URL": "http://127.0.0.1:8123",
}


def test_dev_env_hands_every_value_over_as_written(hand_shell: Path) -> None:
    told = write_dev_env(hand_shell / DEV_ENV_FILE, {**HOSTILE, "HOME": "/elsewhere"})
    try:
        settings = local_settings()
    finally:
        told.close()
    assert settings.inbound_webhook_secret == HOSTILE["REFUNDS_INBOUND_WEBHOOK_SECRET"]
    assert settings.operator == HOSTILE["REFUNDS_OPERATOR"]
    assert settings.reviewer_token == HOSTILE["REFUNDS_REVIEWER_TOKEN"]
    assert settings.otel_service_name == HOSTILE["REFUNDS_OTEL_SERVICE_NAME"]
    assert settings.service_base == "http://127.0.0.1:8123"


def test_a_dev_env_no_running_dev_holds_is_not_read(hand_shell: Path) -> None:
    """After a hard kill the file stays behind: whatever listens on its ports now is not dev's."""
    told = write_dev_env(hand_shell / DEV_ENV_FILE, {"REFUNDS_SERVICE_URL": "http://127.0.0.1:8123"})
    assert local_settings().service_base == "http://127.0.0.1:8123"
    os.close(told.descriptor)  # dev died without its `finally`
    assert (hand_shell / DEV_ENV_FILE).exists()
    assert local_settings().service_base == "http://127.0.0.1:8000"


def test_a_dev_env_anyone_could_have_written_is_not_read(hand_shell: Path, tmp_path: Path) -> None:
    told = write_dev_env(hand_shell / DEV_ENV_FILE, {"REFUNDS_SERVICE_URL": "http://127.0.0.1:8123"})
    try:
        (hand_shell / DEV_ENV_FILE).chmod(0o666)  # a shared data directory: anyone could change it
        assert local_settings().service_base == "http://127.0.0.1:8000"
        (hand_shell / DEV_ENV_FILE).chmod(0o600)
        planted = tmp_path / "planted.env"
        planted.write_text('{"REFUNDS_SERVICE_URL": "http://attacker.example"}')
        planted.chmod(0o600)
        moved = hand_shell / "real.env"
        (hand_shell / DEV_ENV_FILE).rename(moved)
        (hand_shell / DEV_ENV_FILE).symlink_to(planted)
        assert local_settings().service_base == "http://127.0.0.1:8000"
    finally:
        told.close()


def test_dev_env_beside_a_env_copied_from_the_example(hand_shell: Path, tmp_path: Path) -> None:
    """`.env.example` says: copy to .env. Its empty values mean "the default": dev's own."""
    shutil.copy(repo_root() / ".env.example", tmp_path / ".env")
    assert Settings().environment == "dev"  # the example itself loads
    sandbox = {
        "REFUNDS_STRIPE_API_BASE": "http://127.0.0.1:12999",
        "REFUNDS_STRIPE_API_KEY": "sk_test_sandbox",
        "REFUNDS_SERVICE_URL": "http://127.0.0.1:8123",
    }
    told = write_dev_env(hand_shell / DEV_ENV_FILE, sandbox)
    try:
        settings = local_settings()
    finally:
        told.close()
    assert settings.stripe_base == "http://127.0.0.1:12999"
    assert settings.stripe_api_key == "sk_test_sandbox"
    assert settings.service_base == "http://127.0.0.1:8123"


def test_dev_env_is_never_read_outside_dev(
    hand_shell: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    told = write_dev_env(
        hand_shell / DEV_ENV_FILE, {"REFUNDS_ENVIRONMENT": "dev", "REFUNDS_SERVICE_URL": "http://dev"}
    )
    try:
        (tmp_path / ".env").write_text("REFUNDS_ENVIRONMENT=production\nREFUNDS_INBOUND_WEBHOOK_SECRET=s\n")
        assert local_settings().service_base == "http://127.0.0.1:8000"
        (tmp_path / ".env").unlink()
        for environment in ("production", "test"):
            monkeypatch.setenv("REFUNDS_ENVIRONMENT", environment)
            monkeypatch.setenv("REFUNDS_INBOUND_WEBHOOK_SECRET", "s")
            assert local_settings().service_base == "http://127.0.0.1:8000", environment
        for unknown in ("Production", ""):  # no environment at all: refused, never taken for dev
            monkeypatch.setenv("REFUNDS_ENVIRONMENT", unknown)
            with pytest.raises(ValidationError):
                local_settings()
        monkeypatch.setenv("REFUNDS_ENVIRONMENT", "dev")
        assert local_settings().service_base == "http://dev"
    finally:
        told.close()


# --- what reaches an operator's terminal ------------------------------------------------------


def plain_console() -> Console:
    """A console that is not a terminal: Rich adds no escape sequences of its own."""
    return Console(file=io.StringIO(), force_terminal=False, color_system=None, width=200)


HOSTILE_TEXT = (
    f"pi_1{ESC}]52;c;cm0gLXJmIH4={ESC}\\{ESC}[2J{ESC}]8;;http://evil{ESC}\\x\u202e[link=http://evil]y[/link]"
)


def test_text_from_merchants_psps_and_reviewers_reaches_the_terminal_inert(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    console = plain_console()
    monkeypatch.setattr(cli_kit, "console", console)
    view = {
        "request_id": "r-1",
        "status": "needs_attention",
        "method": "refund",
        "provider": "stripe",
        "payment_reference": HOSTILE_TEXT,
        "order_id": HOSTILE_TEXT,
        "amount": {"value": 100, "currency": "EUR"},
        "failure_code": "psp_error",
        "failure_message": HOSTILE_TEXT,
        "review": {"approved": True, "reviewer": HOSTILE_TEXT, "reason": HOSTILE_TEXT},
        "allocation": {
            "currency": "[blink]EUR",
            "lines": [{"sku": HOSTILE_TEXT, "quantity": 1, "goods": 100, "tax": 0}],
            "shipping": 0,
            "unallocated": 0,
        },
        "audit": [
            {
                "at": "2026-11-29T10:00:00.000000+00:00",
                "step": "validated",
                "actor": HOSTILE_TEXT,
                "reason_code": HOSTILE_TEXT,
                "status_before": None,
                "status_after": "validated",
                "psp_request_id": None,
            }
        ],
    }
    ops.render_refund(console, view)
    cli_kit.say(f"hold on stripe {HOSTILE_TEXT} released by {HOSTILE_TEXT}")
    cli_kit.print_table(Table("request id", "state", "why"), [("r-1", "needs_attention", HOSTILE_TEXT)], "")
    with pytest.raises(Exception):  # noqa: B017 (typer.Exit)
        cli_kit.fail("psp_error", HOSTILE_TEXT)
    printed = console.file.getvalue()  # type: ignore[attr-defined]
    assert ESC not in printed and "\u202e" not in printed
    assert "[link=http://evil]y[/link]" in printed  # brackets as written, still
    assert "[blink]EUR" in printed


# --- the CLI never waits on an unanswered query longer than it says ---------------------------


class SilentHandle:
    """A refund in flight whose worker is gone: a query waits for the server's own 30 s."""

    def __init__(self, asked: list[timedelta | None]) -> None:
        self.asked = asked

    async def query(self, *_args: Any, rpc_timeout: timedelta | None = None, **_kw: Any) -> Any:
        self.asked.append(rpc_timeout)
        await asyncio.sleep(rpc_timeout.total_seconds() if rpc_timeout else 30)
        raise RPCError("Timeout expired", RPCStatusCode.CANCELLED, b"")


class SilentClient:
    def __init__(self, running: int = 0) -> None:
        self.asked: list[timedelta | None] = []
        self.running = running

    def get_workflow_handle(self, _wf_id: str) -> SilentHandle:
        return SilentHandle(self.asked)

    async def list_workflows(self, _query: str) -> AsyncIterator[Any]:
        for n in range(self.running):
            yield SimpleNamespace(id=f"refund-r{n}", typed_search_attributes={}, start_time=datetime.now(UTC))


@pytest.fixture
def silent(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[SilentClient, Settings]]:
    client = SilentClient(running=3)

    async def connect(_settings: Settings) -> SilentClient:
        return client

    monkeypatch.setattr(ops, "connect", connect)
    monkeypatch.setattr(ops, "QUERY_SECONDS", 0.2, raising=False)
    url = f"sqlite:///{tmp_path / 'r.db'}"
    Database.connect(url).dispose()  # a database that is there: ops reads never create one
    yield client, Settings(data_dir=tmp_path, database_url=url)


async def test_status_wait_gives_up_at_its_timeout_when_no_worker_answers(
    silent: tuple[SilentClient, Settings],
) -> None:
    client, settings = silent
    started = asyncio.get_running_loop().time()
    with pytest.raises(RPCError):
        await asyncio.wait_for(ops.wait_for_status(settings, "r0", RefundStatus.SUCCEEDED, 0.5), 10)
    assert asyncio.get_running_loop().time() - started < 5
    assert None not in client.asked


async def test_the_queue_lists_without_waiting_on_each_silent_refund(
    silent: tuple[SilentClient, Settings],
) -> None:
    client, settings = silent
    rows = await asyncio.wait_for(ops.pending_reviews(settings), 10)
    assert [row[0] for row in rows] == ["r0", "r1", "r2"] or sorted(r[0] for r in rows) == ["r0", "r1", "r2"]
    assert client.asked and None not in client.asked


# --- a decision taken is answered as taken ----------------------------------------------------


async def test_a_decision_taken_is_answered_even_when_reading_it_back_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from temporalio.client import WorkflowQueryFailedError

    from workers.service import refunds as service_refunds

    decided = RefundState.model_construct(request_id="r-1", status=RefundStatus.AWAITING_REVIEW)
    for failure in (
        OperationalError("SELECT", {}, Exception("database is locked")),
        WorkflowQueryFailedError("query handler failed"),
    ):

        async def current_state(*_args: Any, failure: Exception = failure) -> RefundState:
            raise failure

        monkeypatch.setattr(service_refunds, "current_state", current_state)
        assert await service_refunds._after(SimpleNamespace(), "r-1", decided) is decided


async def test_cli_retry_answers_once_the_update_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    from temporalio.client import WorkflowQueryFailedError

    done = RefundState.model_construct(request_id="r-1", status=RefundStatus.REFUNDING)

    class Handle:
        async def execute_update(self, *_args: Any, **_kw: Any) -> RefundState:
            return done

        async def query(self, *_args: Any, **_kw: Any) -> RefundState:
            raise WorkflowQueryFailedError("query handler failed")

    class Client:
        def get_workflow_handle(self, _wf_id: str) -> Handle:
            return Handle()

    async def connect(_settings: Settings) -> Client:
        return Client()

    monkeypatch.setattr(ops, "connect", connect)
    from domain.contracts import RetryInput

    state = await ops.steer(Settings(), "refund-r-1", "retry", RetryInput(operator="ann"), RefundState)
    assert state is done


# --- export ---------------------------------------------------------------------------------


def test_export_to_a_path_it_cannot_write_says_so_and_marks_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'refunds.db'}"
    db = Database.connect(url)
    try:
        book_refund(db, goods=1_000, tax=0)
    finally:
        db.dispose()
    env = {"REFUNDS_DATA_DIR": str(tmp_path), "REFUNDS_DATABASE_URL": url, "REFUNDS_ENVIRONMENT": "dev"}
    for target in (tmp_path, tmp_path / "missing" / "ledger.csv"):
        result = CliRunner().invoke(cli.app, ["export", "--out", str(target)], env=env)
        assert result.exit_code == 1, result.output
        assert result.output.startswith("cannot_write: "), result.output
        assert "Traceback" not in result.output
    db = Database.connect(url)
    try:
        assert outbox.peek(db) != [] and outbox.last_batch(db) is None
    finally:
        db.dispose()


# --- the documents ------------------------------------------------------------------------------


def test_every_runnable_document_example_checks_what_it_says() -> None:
    """A block without an expectation passes whatever its curl got back (curl -s exits 0 on a 401)."""
    unchecked = [
        example.where for document in DOCUMENTS for example in examples(document) if not example.expected
    ]
    assert unchecked == []
    for document in DOCUMENTS:  # an expectation a blank line parts from its block is never checked
        text = (repo_root() / document).read_text()
        attached = sum(len(example.expected) > 0 for example in examples(document))
        assert text.count("<!-- expect:") == attached, document
