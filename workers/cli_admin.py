"""`refunds risk|db|deploy ...`: the installation's own upkeep, the risk model, the schema and the
worker deployment versions."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from workers.cli_kit import app, current_settings, fail, print_table, run_ops, say

if TYPE_CHECKING:
    from workers.versioning import DeploymentView

risk_app = typer.Typer(help="The risk model.", no_args_is_help=True)
app.add_typer(risk_app, name="risk")


@risk_app.command("train")
def risk_train(
    out: Annotated[Path | None, typer.Option(help="Directory for the model (default: data dir)")] = None,
    min_samples: Annotated[int, typer.Option(min=4, help="Decisions needed at least")] = 20,
) -> None:
    """Fit a model on past review decisions, report its quality on held-out ones, save it.

    Example: refunds risk train --min-samples 50"""
    from adapters.db.engine import Database
    from workers.risk_training import TrainingError, train

    settings = current_settings()
    db = Database.connect(settings.database_url)
    try:
        report = train(db, out or settings.data_dir / "models", min_samples=min_samples)
    except TrainingError as err:
        fail(err.code, err)
    finally:
        db.dispose()
    metrics = ", ".join(f"{k} {v}" for k, v in report.model.metrics.items())
    say(f"trained {report.model.version} on {report.samples} decisions ({report.rejections} rejected)")
    say(f"held-out quality: {metrics}")
    say(f"use it: REFUNDS_RISK_MODEL_FILE={report.path}")


db_app = typer.Typer(help="The product's database.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision")] = "head",
) -> None:
    """Apply the database migrations (services also apply them at start).

    Example: refunds db upgrade"""
    from adapters.db import migrate
    from adapters.db.engine import make_engine

    engine = make_engine(current_settings().database_url)  # a write: a new database is made here
    try:
        before = migrate.current_revision(engine)
        after = migrate.upgrade(engine, revision)
    except migrate.UnversionedDatabase as err:
        fail("unversioned_database", err)
    finally:
        engine.dispose()
    say(f"database at revision {after} (was {before or 'empty'})")


@db_app.command("current")
def db_current() -> None:
    """The database's migration revision and the newest one this version knows.

    Example: refunds db current"""
    from adapters.db import migrate
    from adapters.db.engine import make_engine, sqlite_file

    settings = current_settings()
    path = sqlite_file(settings.database_url)
    if path is not None and not path.exists():  # SQLite would create an empty one to answer
        fail(
            "no_database",
            f"no database at {settings.database_url}; this command used REFUNDS_DATA_DIR="
            f"{settings.data_dir} (from {Path.cwd()}): run it where `refunds dev` runs, or set "
            "REFUNDS_DATABASE_URL",
        )
    engine = make_engine(settings.database_url)
    try:
        say(f"database {migrate.current_revision(engine) or 'empty'}, newest {migrate.head_revision()}")
    finally:
        engine.dispose()


deploy_app = typer.Typer(
    help="Worker Versioning: which build of the workers gets the work.", no_args_is_help=True
)
app.add_typer(deploy_app, name="deploy")


@deploy_app.command("promote")
def deploy_promote(
    build_id: Annotated[str, typer.Argument(help="The build (REFUNDS_BUILD_ID of its workers)")],
    ramp: Annotated[
        int | None,
        typer.Option(min=0, max=100, help="Send only this percentage of new refunds to it, for now"),
    ] = None,
) -> None:
    """Make a build current (its workers take new refunds and, at their next step, those in flight),
    or ramp it. Promoting the previous build again is the rollback.

    Example: refunds deploy promote v42 --ramp 10"""
    from workers.temporal import connect
    from workers.versioning import promote

    settings = current_settings()

    async def run() -> None:
        await promote(await connect(settings), settings, build_id, ramp)

    run_ops(run())
    share = f"{ramp}% of new refunds" if ramp is not None else "current"
    say(f"{settings.deployment_name}: build {build_id} {share}")


@deploy_app.command("status")
def deploy_status() -> None:
    """The deployment's builds: current, ramping, draining (refunds still on it) or drained.

    Example: refunds deploy status"""
    from workers.temporal import connect
    from workers.versioning import describe

    settings = current_settings()

    async def run() -> DeploymentView:
        return await describe(await connect(settings), settings)

    view = run_ops(run())
    ramping = f", ramping {view.ramping} at {view.ramp_percentage}%" if view.ramping else ""
    say(f"{view.name}: current {view.current or 'unversioned'}{ramping}")
    builds = [(build.build_id, build.status, build.drainage) for build in view.builds]
    print_table(Table("build", "status", "drainage"), builds, "no builds")
