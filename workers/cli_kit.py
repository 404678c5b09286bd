"""What every `refunds` command shares: the Typer app, the settings, plain-text output, one-line
failures with their codes. The commands live beside it (`workers/cli*.py`) and register on `app`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from temporalio.service import RPCError

from workers.settings import Settings, local_settings

if TYPE_CHECKING:
    from adapters.db.engine import Database
from workers.terminal import printable

T = TypeVar("T")

app = typer.Typer(help="Refund automation on Temporal.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)  # errors apart from output: `--json` stays JSON, `> file` holds no error


def current_settings() -> Settings:
    return loaded(local_settings)


def loaded(make: Callable[[], Settings]) -> Settings:
    """The settings, or one line naming what is wrong with them: never a traceback, which would
    print every value given (the secrets among them) into the log."""
    from pydantic import ValidationError

    try:
        return make()
    except ValidationError as err:
        fail("invalid_settings", settings_problem(err), 2)


def settings_problem(err: Any) -> str:
    """What a settings ValidationError says, without the values it was given."""
    problems = []
    for error in err.errors(include_url=False, include_input=False, include_context=False):
        name = "_".join(str(part) for part in error["loc"]).upper()
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"REFUNDS_{name}: {message}" if name else message)
    return "; ".join(problems)


def say(message: str) -> None:
    """Plain text: names, ids and messages may hold brackets, which are never read as markup, and
    control characters, which are shown, never sent to the terminal as they are."""
    console.print(printable(message), markup=False, highlight=False, soft_wrap=True)


SHORT_CELL = 26  # an amount with its currency, a time with its offset
FOLDED = 4  # the least a folding column keeps
READABLE = 12  # what a folding column needs to read as text, not a column of letters


def print_table(table: Table, rows: Sequence[Sequence[object]], empty: str) -> None:
    """A table of plain-text cells (a reason may hold brackets), or what it means to have none.
    Nothing is ever cut: on a narrow terminal a long cell folds onto more lines; piped, every row is
    one line of tab-separated cells under a header line, whatever the width."""
    if not rows:
        say(empty)
        return
    if not console.is_terminal:
        headers = [printable(str(column.header)) for column in table.columns]
        lines = ["\t".join(headers)] + ["\t".join(printable(cell) for cell in row) for row in rows]
        print("\n".join(lines))
        return
    for column in table.columns:
        column.overflow = "fold"
    for row in rows:
        table.add_row(*(Text(printable(cell)) for cell in row))
    _share_the_screen(table, rows)
    console.print(table)


def _fit(pinned: list[int | None], room: int, least: int) -> list[int | None]:
    """Unpin the widest short column until the pinned ones and `least` for each other fit."""
    pinned = list(pinned)
    while sum(width for width in pinned if width) + least * pinned.count(None) > room and any(pinned):
        widest = max(range(len(pinned)), key=lambda index: pinned[index] or 0)
        pinned[widest] = None
    return pinned


def _share_the_screen(table: Table, rows: Sequence[Sequence[object]]) -> None:
    """Widths for a table wider than the screen: each column of short cells (an amount, a time, a
    count) keeps its widest cell so none is folded mid-word; prose and long ids share what is left,
    in proportion to their length. Where even that cannot fit, the widest short column folds too."""
    natural = [
        max(len(printable(str(column.header))), *(len(printable(row[index])) for row in rows))
        for index, column in enumerate(table.columns)
    ]
    room = console.width - 3 * len(natural) - 1  # each cell's padding and border, and the last border
    if sum(natural) <= room:
        return
    cells = [max(len(printable(row[index])) for row in rows) for index in range(len(natural))]
    short = [width if width <= SHORT_CELL else None for width in cells]
    # first with each short column's header words whole and the prose readable; on a screen too
    # narrow for that, the short cells alone, the prose folding as it must
    words = [max(len(word) for word in printable(str(column.header)).split()) for column in table.columns]
    worded = [
        max(width, word) if width is not None else None for width, word in zip(short, words, strict=True)
    ]
    pinned = _fit(worded, room, READABLE)
    if not any(pinned):
        pinned = _fit(short, room, FOLDED)
    folding = [index for index, width in enumerate(pinned) if width is None]
    left = max(room - sum(width for width in pinned if width), len(folding))
    wanted = sum(natural[index] for index in folding) or 1
    for index, column in enumerate(table.columns):
        share = left * natural[index] // wanted if index in folding else pinned[index]
        column.width = max(share or 1, 1)


def print_rows(columns: Sequence[str], rows: Sequence[Sequence[object]], empty: str, as_json: bool) -> None:
    """A table for people, or with --json a list of objects keyed by the columns (snake_case)."""
    if as_json:
        keys = [column.replace(" ", "_") for column in columns]
        print(json.dumps([dict(zip(keys, row, strict=True)) for row in rows], indent=2, default=str))
    else:
        print_table(Table(*columns), rows, empty)


def fail(code: str, message: object, exit_code: int = 1) -> NoReturn:
    """One line, `code: message`, and the exit status scripts check."""
    fail_all(code, [message], exit_code)


def fail_all(code: str, messages: Sequence[object], exit_code: int = 1) -> NoReturn:
    """A line `code: message` for each message, all at once, and the exit status scripts check."""
    for message in messages:
        errors.print(
            Text.assemble((printable(code), "red"), f": {printable(message)}"),
            highlight=False,
            soft_wrap=True,
        )
    raise typer.Exit(exit_code)


def configured_merchant(settings: Settings, merchant: str | None, hint: str = "") -> str:
    """The merchant named (or the default one), which these settings must configure: else one line
    (`hint` after it) and exit 2."""
    from domain.policy_file import PolicyError

    named = merchant or settings.merchant_id
    try:
        known = settings.merchant_profiles()
    except PolicyError as err:
        fail("invalid_settings", err, 2)
    if named not in known:
        fail("not_found", f"no merchant {named!r} is configured here{hint}", 2)
    return named


def identity(given: str | None) -> str:
    """Who the CLI acts as: the option, else REFUNDS_OPERATOR; never anonymous."""
    who = (given or current_settings().operator).strip()
    if not who:
        fail("operator_required", "say who acts: pass --operator NAME or set REFUNDS_OPERATOR", 2)
    return who


def checked_settings(
    *, signs_decisions: bool = False, safe_start: bool = False, announce_policy: bool = True
) -> Settings:
    """Settings for a long-running process: a bad policy file stops it before it starts anything.
    Its own environment alone: what a `refunds dev` told its children is for commands run by hand."""
    from domain.policy_file import PolicyError

    settings = loaded(Settings)
    if safe_start:
        from workers.safety import start_problems, start_warning

        problems = start_problems(settings, signs_decisions)
        if problems:
            fail_all("unsafe_settings", problems, 2)
        warning = start_warning(settings)
        if warning is not None:
            console.print(
                f"[yellow]warning[/yellow]: {escape(printable(warning))}", highlight=False, soft_wrap=True
            )
    try:
        policy = settings.policy()
        settings.risk_model()
        if signs_decisions:
            settings.decision_key()
        for profile in settings.merchant_profiles().values():  # each merchant's policy must load too
            settings.model_copy(update={"policy_file": profile.policy_file}).policy()
    except PolicyError as err:
        fail("invalid_policy", err, 2)
    if announce_policy:  # `refunds dev` names the policy its children run under in its banner
        say(f"refund policy {policy.version}")
    from workers.logs import configure_logging

    configure_logging(settings.log_format)
    return settings


def read_database(settings: Settings) -> Database:
    """The database a reading command reads: never one it would create where it stands."""
    from adapters.db.engine import Database, NoDatabase

    try:
        return Database.existing(settings.database_url)
    except NoDatabase:
        fail("no_database", f"no database at {settings.database_url}; {where_from(settings)}")


def asked(settings: Settings) -> str:
    """Where a command looked, for an answer that found nothing where everything answered."""
    return (
        f"asked Temporal at {settings.temporal_address} (namespace {settings.temporal_namespace}) "
        f"and the database at {settings.database_url}"
    )


def where_from(settings: Settings) -> str:
    """Which settings a command used, for an answer that found nothing."""
    return (
        f"this command used REFUNDS_DATA_DIR={settings.data_dir} (from {Path.cwd()}), Temporal at "
        f"{settings.temporal_address} (namespace {settings.temporal_namespace}): run it where `refunds "
        "dev` runs, or set REFUNDS_DATABASE_URL and REFUNDS_TEMPORAL_ADDRESS"
    )


def run_ops(operation: Coroutine[Any, Any, T]) -> T:
    """Run an ops call; Temporal being down or refusing, or no database where the settings point,
    is a one-line error, not a traceback."""
    from adapters.db.engine import NoDatabase

    try:
        return asyncio.run(operation)
    except NoDatabase as err:
        fail("no_database", f"no database at {err}; {where_from(current_settings())}")
    except RPCError as err:
        fail("temporal_error", err.message)
    except RuntimeError as err:  # the client could not connect
        settings = current_settings()
        fail(
            "temporal_unavailable",
            f"no Temporal answers at {settings.temporal_address}; {where_from(settings)} ({err})",
        )
