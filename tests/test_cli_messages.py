"""What the CLI says: text that holds brackets is printed as written, and every command that acts
takes its operator from the same place (the option, else REFUNDS_OPERATOR)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from adapters.db import holds
from adapters.db.engine import Database
from domain.status import Provider
from workers.cli import app


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A CLI of its own: a fresh data directory and database, dev settings."""
    return {
        "REFUNDS_DATA_DIR": str(tmp_path),
        "REFUNDS_DATABASE_URL": f"sqlite:///{tmp_path / 'refunds.db'}",
        "REFUNDS_ENVIRONMENT": "dev",
        "COLUMNS": "200",
    }


def run(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.output


def test_brackets_in_a_message_are_printed_as_written(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)  # scikit-learn not installed
    assert run(env, "risk", "train") == (
        1,
        "not_installed: scikit-learn is not installed: pip install -e '.[ml]'\n",
    )
    code, output = run(env, "export", "--format", "[csv]", "--out", "x")
    assert (code, output) == (2, "invalid_format: '[csv]' is not csv or jsonl\n")


def test_release_hold_takes_the_operator_from_the_environment(env: dict[str, str]) -> None:
    db = Database.connect(env["REFUNDS_DATABASE_URL"])
    try:
        holds.open_hold(db, Provider.STRIPE, "pi_disputed", "dispute dp_1")
    finally:
        db.dispose()
    anonymous = run(env, "release-hold", "stripe", "pi_disputed")
    released = run({**env, "REFUNDS_OPERATOR": "ops-[ann]"}, "release-hold", "stripe", "pi_disputed")
    again = run({**env, "REFUNDS_OPERATOR": "ops-ann"}, "release-hold", "stripe", "pi_disputed")
    assert anonymous[0] == 2 and "REFUNDS_OPERATOR" in anonymous[1]
    assert released == (0, "hold on stripe pi_disputed released by ops-[ann]\n")
    assert again == (1, "not_found: no open hold on stripe pi_disputed\n")


def test_every_command_shows_an_example_in_its_help(env: dict[str, str]) -> None:
    root: Any = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(group: Any, path: list[str]) -> None:
        for name, command in group.commands.items():
            if getattr(command, "commands", None):
                walk(command, [*path, name])
            else:
                paths.append([*path, name])

    walk(root, [])
    assert len(paths) > 20
    helps = {" ".join(path): run(env, *path, "--help")[1] for path in paths}
    assert [path for path, help_text in helps.items() if "Example: " not in help_text] == []
    # a flag takes no value: `--json <bool>` reads as if it wanted `--json true`
    assert [path for path, help_text in helps.items() if "<bool>" in help_text] == []


def test_refunds_dev_refuses_to_run_outside_dev(env: dict[str, str]) -> None:
    """Its children run as dev (dev secrets, the sandbox) against whatever database it is given."""
    production = {
        **env,
        "REFUNDS_ENVIRONMENT": "production",
        "REFUNDS_INBOUND_WEBHOOK_SECRET": "a-real-inbound-secret",
        "REFUNDS_REVIEW_SIGNING_KEY": "a-review-signing-secret-of-32-chars-or-more",
    }
    code, output = run(production, "dev")
    assert code == 2 and output.startswith("unsafe_settings: refunds dev runs on a development machine only")


def test_refunds_sandbox_where_the_sandbox_is_not_installed_says_so(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The image leaves the PSP sandbox out (a dev and test tool): one line, no traceback."""
    for name in [name for name in sys.modules if name.startswith(("sandbox.", "workers.sandbox"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "sandbox", None)
    code, output = run(env, "sandbox")
    assert code == 2 and output.startswith("not_installed: the PSP sandbox is a development tool"), output


@pytest.mark.parametrize(
    "args",
    [
        ("audit", "demo-1"),
        ("export", "--peek"),
        ("client", "list"),
        ("status", "demo-1"),
        ("fraud-warnings",),
        ("reconcile", "--provider", "stripe", "--since", "2026-12-01"),
        ("db", "current"),
    ],
)
def test_a_read_from_another_directory_creates_no_database_and_says_what_it_used(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    """Run where no `refunds dev` ran: it finds no database, says which settings and Temporal it used,
    and leaves nothing behind (before, `audit`, `export --peek` and `client list` created
    `./.refunds/refunds.db`, and `status` asked whatever answered on the default port)."""
    import os
    import subprocess

    from tests.conftest import free_port, repo_root

    env = {k: v for k, v in os.environ.items() if not k.startswith("REFUNDS_")}
    env |= {
        "PYTHONPATH": str(repo_root()),
        "COLUMNS": "200",
        "REFUNDS_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "workers.cli", *args], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    said = done.stdout + done.stderr
    assert done.returncode == 1 and said.startswith("no_database: no database at sqlite:///"), said
    assert f"REFUNDS_DATA_DIR=.refunds (from {tmp_path})" in said, said
    assert ("Temporal at 127.0.0.1:" in said) is (args[0] != "db"), said  # only where it asks Temporal
    assert "Traceback" not in said
    assert list(tmp_path.iterdir()) == []


def test_a_missing_operator_names_the_option_the_command_has(env: dict[str, str]) -> None:
    code, said = run(env, "retry", "demo-1")
    assert code == 2 and "--operator" in said and "--reviewer" not in said, said


async def test_pending_for_a_merchant_nobody_configured_says_so(stack: Any) -> None:
    """Before: "no refunds awaiting review", as if the merchant had none."""
    from tests.flows import cli

    done = await cli(stack, "pending", "--merchant", "nosuch")
    assert (done.returncode, done.stderr) == (
        2,
        "not_found: no merchant 'nosuch' is configured here (REFUNDS_MERCHANTS_FILE)\n",
    )


async def test_retrying_a_refund_whose_payment_is_still_held_says_the_hold_blocks_it(
    stack: Any, sandbox: Any
) -> None:
    """Before: exit 0 and `needs_attention`, without a word of the hold still in its way."""
    from tests.flows import cli, submit, wait_for_status
    from tests.helpers import refund_body, unique

    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    holds.open_hold(stack.database, Provider.STRIPE, payment, "dispute dp_cli")
    request_id = unique("held")
    assert (await submit(stack, refund_body(request_id, payment, amount=1_000))).status_code == 202
    waiting = await wait_for_status(stack, request_id, {"needs_attention"})
    assert waiting["failure_code"] == "payment_disputed"
    again = await cli(stack, "retry", request_id, "--operator", "ops-ann")
    said = again.stdout + again.stderr
    assert again.returncode == 1 and said.startswith(f"still_needs_attention: {request_id}"), said
    assert f"refunds release-hold stripe {payment}" in said, said
    assert (await cli(stack, "release-hold", "stripe", payment, "--operator", "ops-ann")).returncode == 0
    assert (await cli(stack, "retry", request_id, "--operator", "ops-ann")).returncode == 0
    assert (await wait_for_status(stack, request_id, {"succeeded"}))["status"] == "succeeded"


async def test_waiting_for_a_refund_nobody_asked_for_ends_at_once(stack: Any) -> None:
    """`status --wait` of an unknown id answers not_found without waiting out its timeout (an hour
    here; the test's own deadline would stop a wait long before)."""
    from tests.flows import cli

    done = await cli(stack, "status", "nobody-asked", "--wait", "succeeded", "--timeout", "3600")
    assert done.returncode == 1 and done.stderr.startswith("not_found: no refund nobody-asked"), done.stderr
    assert done.stdout == ""  # errors on stderr: a script's output holds none


def test_dev_names_the_reviewers_it_was_given_and_no_token_of_theirs() -> None:
    """Before: with `REFUNDS_REVIEWER_TOKENS=alice:…,bob:…` the banner printed `a-token,bob:b-token`
    as "the reviewer token"."""
    from workers.dev import DEV_REVIEWER_TOKENS, reviewer_line
    from workers.settings import DEV_REVIEWER_TOKEN

    assert reviewer_line(DEV_REVIEWER_TOKENS).startswith(f"  reviewer token {DEV_REVIEWER_TOKEN}  (ops")
    given = reviewer_line("alice:a-token,bob:sha256:" + "0" * 64)
    assert given.startswith("  reviewers      alice, bob  (") and "a-token" not in given, given


async def test_a_token_no_reviewer_has_says_to_pass_ones_own(stack: Any) -> None:
    import asyncio

    from workers.review_client import ReviewError, decide

    settings = stack.settings.model_copy(update={"service_url": stack.base_url})
    with pytest.raises(ReviewError) as refused:
        await asyncio.to_thread(decide, settings, "anything", "approve", "", "not-anyones-token")
    assert refused.value.code == "unauthorized" and "--token" in str(refused.value), refused.value


ROWS = [
    (
        "chaos-20261207-review_threshold_and_more",
        "review_threshold, client_budget",
        "2026-12-07T20:12:33+00:00",
    )
]


def test_a_table_piped_keeps_every_column_whole(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before, a pipe got an 80-column table with cells cut (`review_t…`, `2026-12-…`)."""
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    from workers import cli_kit

    monkeypatch.setattr(cli_kit, "console", Console(file=StringIO(), force_terminal=False, width=80))
    cli_kit.print_table(Table("request id", "reasons", "waiting since"), ROWS, "none")
    assert capsys.readouterr().out.splitlines() == [
        "request id\treasons\twaiting since",
        "\t".join(ROWS[0]),
    ]


def test_a_table_on_a_narrow_terminal_folds_cells_and_cuts_none(monkeypatch: pytest.MonkeyPatch) -> None:
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    from workers import cli_kit

    screen = StringIO()
    monkeypatch.setattr(cli_kit, "console", Console(file=screen, force_terminal=True, width=60))
    cli_kit.print_table(Table("request id", "reasons", "waiting since"), ROWS, "none")
    shown = screen.getvalue()
    assert "…" not in shown
    body = [line.split("│")[1:-1] for line in shown.splitlines() if line.startswith("│")]
    columns = ["".join(cell.strip() for cell in column) for column in zip(*body, strict=True)]
    assert columns[0] == ROWS[0][0] and columns[2] == ROWS[0][2], shown


QUEUE = ("request id", "amount", "risk", "reasons", "approvals", "waiting since", "escalated")
QUEUED = (
    "globex~order-123-refund",
    "12345.67 EUR",
    "85",
    "at or above the amount that policy sends to human review; paid 1 minute ago",
    "1 of 2",
    "2026-12-07 22:59:25+00:00",
    "yes",
)


@pytest.mark.parametrize("width", [60, 70, 80, 100])
def test_an_amount_is_never_folded_mid_word_while_the_prose_can_give_way(
    monkeypatch: pytest.MonkeyPatch, width: int
) -> None:
    """Before: at 70 columns the review queue showed `12345.6` over `7 EUR`; at 100 a wider table
    lost its right edge when short columns were kept whole."""
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    from workers import cli_kit

    screen = StringIO()
    monkeypatch.setattr(cli_kit, "console", Console(file=screen, force_terminal=True, width=width))
    cli_kit.print_table(Table(*QUEUE), [QUEUED], "none")
    lines = screen.getvalue().splitlines()
    assert any("12345.67 EUR" in line for line in lines), screen.getvalue()
    assert all(line.endswith(("┓", "┃", "┩", "│", "┘")) for line in lines), screen.getvalue()
    body = [line.split("│")[1:-1] for line in lines if line.startswith("│")]
    columns = ["".join(cell.strip() for cell in column) for column in zip(*body, strict=True)]
    assert [column.replace(" ", "") for column in columns] == [cell.replace(" ", "") for cell in QUEUED]
    if width >= 100:  # room enough: short columns' headers read whole too (before: `ri` over `sk`)
        assert all(word in screen.getvalue() for word in ("risk", "approvals", "escalated"))


@pytest.mark.parametrize("command", [("serve",), ("mcp", "--http")])
def test_a_server_on_a_taken_port_says_so_and_never_that_it_listens(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    """Before: "listening on …", then a traceback."""
    import os
    import socket
    import subprocess

    from tests.conftest import repo_root

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = str(holder.getsockname()[1])
        env = {k: v for k, v in os.environ.items() if not k.startswith("REFUNDS_")}
        env |= {
            "PYTHONPATH": str(repo_root()),
            "REFUNDS_DATA_DIR": str(tmp_path),
            "REFUNDS_ENVIRONMENT": "dev",
            "REFUNDS_HTTP_PORT": port,
            "REFUNDS_MCP_PORT": port,
        }
        done = subprocess.run(
            [sys.executable, "-m", "workers.cli", *command], env=env, capture_output=True, text=True
        )
    said = done.stdout + done.stderr
    assert done.returncode == 2 and "listening" not in said and "Traceback" not in said, said
    assert f"port_in_use: 127.0.0.1:{port} cannot be listened on" in said, said


def test_signing_a_body_from_a_missing_file_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    code, said = run(env, "sign", "--body", str(tmp_path / "nothing.json"))
    assert (code, said) == (2, f"cannot_read: {tmp_path / 'nothing.json'}: No such file or directory\n")


def test_the_sandbox_takes_its_port_from_the_setting_dev_documents() -> None:
    import typer.main

    from workers.cli import sandbox

    [port] = [p for p in typer.main.get_command(app).commands["sandbox"].params if p.name == "port"]
    assert port.envvar == "REFUNDS_SANDBOX_PORT"
    assert "PayPal" in (sandbox.__doc__ or "")


def test_the_client_list_is_json_for_scripts(env: dict[str, str]) -> None:
    from adapters.db import clients
    from domain.clients import Client, new_key, parse_budget

    db = Database.connect(env["REFUNDS_DATABASE_URL"])
    try:
        with db.transaction() as session:
            made = Client(
                name="helpdesk",
                merchant_id="default",
                reasons=("damaged",),
                maxima=(parse_budget("EUR:50.00"),),
                budgets=(parse_budget("EUR:40.00"),),
            )
            clients.create(session, made, new_key())
    finally:
        db.dispose()
    code, said = run(env, "client", "list", "--json")
    [listed] = json.loads(said)
    assert code == 0 and listed["client"] == "helpdesk" and listed["reasons"] == ["damaged"], said
    assert listed["daily_budgets"][0]["daily"] == {"value": 4_000, "currency": "EUR"}, said


def test_upgrading_where_there_is_no_database_makes_one(env: dict[str, str], tmp_path: Path) -> None:
    """A write, unlike the reads above: a fresh machine's `refunds db upgrade` makes the database."""
    assert not (tmp_path / "refunds.db").exists()
    code, said = run(env, "db", "upgrade")
    assert code == 0 and said.startswith("database at revision"), said
    assert run(env, "db", "current")[1].startswith("database 00")


@pytest.mark.parametrize(
    ("setting", "command", "says"),
    [
        (
            {"REFUNDS_DATABASE_URL": "postgresql+psycopg://nobody:hidden-pw@127.0.0.1:9/x"},
            ("audit", "demo-1"),
            "database_unavailable: the database at postgresql+psycopg://nobody:***@127.0.0.1:9/x",
        ),
        (
            {"REFUNDS_DATABASE_URL": "garbage://x"},
            ("status", "demo-1"),
            "invalid_settings: REFUNDS_DATABASE_URL",
        ),
        (
            {"REFUNDS_TEMPORAL_ADDRESS": "127.0.0.1:9"},
            ("worker",),
            "temporal_unavailable: Temporal at 127.0.0.1:9",
        ),
    ],
    ids=["database down", "not a database url", "temporal down"],
)
def test_what_the_machine_lacks_is_one_line_never_a_traceback(
    tmp_path: Path, setting: dict[str, str], command: tuple[str, ...], says: str
) -> None:
    """Before: rich tracebacks (OperationalError, NoSuchModuleError, `Failed client connect`)."""
    import os
    import subprocess

    from tests.conftest import repo_root

    env = {k: v for k, v in os.environ.items() if not k.startswith("REFUNDS_")}
    env |= {"PYTHONPATH": str(repo_root()), "REFUNDS_ENVIRONMENT": "dev", **setting}
    env["REFUNDS_DATA_DIR"] = str(tmp_path / "data")
    done = subprocess.run(
        [sys.executable, "-m", "workers.cli", *command],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and says in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "hidden-pw" not in done.stdout + done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(says.split(":")[0] + ":")


def test_replaying_to_an_endpoint_nobody_made_says_so(env: dict[str, str]) -> None:
    """Before: "0 events go to ep_nope again", exit 0."""
    code, said = run(env, "events", "replay", "--endpoint", "ep_nope", "--since", "2026-01-01")
    assert (code, said) == (1, "not_found: no endpoint ep_nope\n")
    code, said = run(env, "events", "endpoint", "add", "https://[::1/x")  # before: invalid_event_types
    assert code == 2 and said.startswith("invalid_url: "), said
