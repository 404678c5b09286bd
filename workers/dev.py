"""`refunds dev`: Temporal dev server, Web UI, sandbox, worker and service as supervised children.

State lives under REFUNDS_DATA_DIR (Temporal's file, the database, the sandbox's file), so a stop
and a start resume every refund in flight; requests are idempotent end to end, so a hard kill
doubles nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from temporalio.common import SearchAttributeIndexedValueType, SearchAttributeKey

from adapters.db import migrate
from adapters.db.engine import make_engine
from domain.naming import SEARCH_ATTRIBUTES
from domain.reviewer_tokens import parse_entries
from workers.binaries import find_binary
from workers.dev_policy import write_dev_policy
from workers.psp_wiring import WIRINGS
from workers.settings import DEV_ENV_FILE, DEV_REVIEWER_TOKEN, Settings
from workers.temporal import connect

DEV_REVIEWER_TOKENS = f"ops:{DEV_REVIEWER_TOKEN}"
STARTUP_DEADLINE_SECONDS = 60
STOP_GRACE_SECONDS = 15


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]


def _die_with_parent(parent: int) -> None:
    """In the child, before it runs: the kernel kills it when `refunds dev` dies (Linux's
    PR_SET_PDEATHSIG), so a SIGKILLed dev leaves no child holding its ports."""
    prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)
    if prctl is None:
        return  # not Linux: a child outlives a SIGKILLed dev there (dev stops it on any other exit)
    if prctl(_PR_SET_PDEATHSIG, signal.SIGKILL) != 0 or os.getppid() != parent:
        os._exit(1)  # the guarantee failed, or dev is already gone: run nothing


_PR_SET_PDEATHSIG = 1


class Supervisor:
    """Starts children, stops them all in reverse order on a signal or when one dies."""

    def __init__(self) -> None:
        self.children: list[Child] = []
        self._stopping = False

    def start(self, name: str, argv: list[str], env: dict[str, str], log_file: Path) -> None:
        """A child in a process group of its own: a terminal's Ctrl-C (SIGINT to the foreground
        group) reaches `refunds dev` alone, which stops the children in order; a child dies with
        dev all the same (a hard kill of dev kills it: `_die_with_parent`)."""
        log = log_file.open("ab")
        process = subprocess.Popen(
            argv,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            process_group=0,
            preexec_fn=functools.partial(_die_with_parent, os.getpid()),
        )
        self.children.append(Child(name, process))

    def died(self) -> Child | None:
        return next((c for c in self.children if c.process.poll() is not None), None)

    def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        for child in reversed(self.children):
            if child.process.poll() is None:
                child.process.terminate()
            try:
                child.process.wait(STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()


def child_environment(settings: Settings, sandbox_url: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("FORCE_COLOR", None)  # the children write log files: plain text, never terminal colours
    env["NO_COLOR"] = "1"
    env.update(
        {
            "REFUNDS_ENVIRONMENT": "dev",
            "REFUNDS_DATA_DIR": str(settings.data_dir.resolve()),
            "REFUNDS_DATABASE_URL": settings.database_url,
            "REFUNDS_TEMPORAL_ADDRESS": settings.temporal_address,
            "REFUNDS_INBOUND_WEBHOOK_SECRET": settings.inbound_webhook_secret,
            "REFUNDS_REVIEWER_TOKENS": settings.reviewer_tokens or DEV_REVIEWER_TOKENS,
        }
    )
    if "codec_cors_origins" not in settings.model_fields_set:  # the UI where dev runs it
        port = settings.temporal_ui_port
        env["REFUNDS_CODEC_CORS_ORIGINS"] = f"http://127.0.0.1:{port},http://localhost:{port}"
    for wiring in WIRINGS:  # the sandbox serves every PSP given no base of its own
        if sandbox_url is not None and not getattr(settings, wiring.api_base_field):
            env.update(wiring.dev_environment(settings, sandbox_url))
    return env


def temporal_argv(settings: Settings, db_file: Path) -> list[str]:
    host, _, port = settings.temporal_address.rpartition(":")
    argv = [
        str(find_binary("temporal")),
        "server",
        "start-dev",
        "--db-filename",
        str(db_file),
        "--ip",
        host or "127.0.0.1",
        "--port",
        port,
        "--ui-port",
        str(settings.temporal_ui_port),
        "--namespace",
        settings.temporal_namespace,
        "--log-level",
        "warn",
    ]
    for key in SEARCH_ATTRIBUTES:
        argv += [
            "--search-attribute",
            f"{key.name}={_sa_type(key)}",
        ]
    return argv


def _sa_type(key: SearchAttributeKey[Any]) -> str:
    """The CLI's spelling of the key's type: KEYWORD -> Keyword, KEYWORD_LIST -> KeywordList."""
    value_type = SearchAttributeIndexedValueType(key.indexed_value_type)
    return "".join(part.capitalize() for part in value_type.name.split("_"))


def wait_until(ready: Callable[[], bool], what: str, supervisor: Supervisor) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
    while not ready():
        dead = supervisor.died()
        if dead is not None:
            raise RuntimeError(f"{dead.name} exited with {dead.process.returncode} while starting")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not become ready within {STARTUP_DEADLINE_SECONDS}s")
        time.sleep(0.1)


def http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=1).status_code < 500
        except httpx.HTTPError:
            return False

    return check


def temporal_ready(settings: Settings) -> Callable[[], bool]:
    async def _probe() -> bool:
        try:
            await connect(settings)
        except RuntimeError:
            return False
        return True

    return lambda: asyncio.run(_probe())


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def taken_port(settings: Settings, with_sandbox: bool) -> str | None:
    """The first port `refunds dev` needs that something else holds, and the setting that moves it:
    checked before anything starts, so another instance answering health checks is never mistaken
    for ours."""
    host, _, temporal_port = settings.temporal_address.rpartition(":")
    wanted = [
        (host or "127.0.0.1", int(temporal_port), "REFUNDS_TEMPORAL_ADDRESS"),
        (host or "127.0.0.1", settings.temporal_ui_port, "REFUNDS_TEMPORAL_UI_PORT"),
        (settings.http_host, settings.http_port, "REFUNDS_HTTP_PORT"),
    ]
    if with_sandbox:
        wanted.append(("127.0.0.1", settings.sandbox_port, "REFUNDS_SANDBOX_PORT"))
    for bind_host, port, setting in wanted:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a listener, not TIME_WAIT
            try:
                probe.bind((bind_host, port))
            except OSError:
                return f"port {port} is in use (another refunds dev?): stop it, or move it with {setting}"
    return None


def run_dev(settings: Settings) -> int:
    # one sandbox serves every PSP whose base is unset
    own_bases = all(getattr(settings, wiring.api_base_field) for wiring in WIRINGS)
    sandbox_url = None if own_bases else f"http://127.0.0.1:{settings.sandbox_port}"
    taken = taken_port(settings, with_sandbox=sandbox_url is not None)
    if taken is not None:  # refused before anything is made where it was run
        print(f"port_in_use: {taken}", file=sys.stderr, flush=True)
        return 2
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    logs = data_dir / "logs"
    logs.mkdir(exist_ok=True)
    me = [sys.executable, "-m", "workers.cli"]
    service_url = f"http://{settings.http_host}:{settings.http_port}"
    env = {**child_environment(settings, sandbox_url), "REFUNDS_SERVICE_URL": service_url}
    if settings.policy_file is None:  # the built-in policy, with early fraud warnings refunded
        env["REFUNDS_POLICY_FILE"] = str(write_dev_policy(settings, data_dir))
    if not migrate_database(settings.database_url):
        return 1

    told = write_dev_env(data_dir / DEV_ENV_FILE, env)
    supervisor = Supervisor()
    for sig in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: a background shell ignores it
        signal.signal(sig, _interrupt)
    try:
        supervisor.start(
            "temporal",
            temporal_argv(settings, data_dir / "temporal.db"),
            env,
            logs / "temporal.log",
        )
        wait_until(temporal_ready(settings), "Temporal", supervisor)
        if sandbox_url is not None:
            supervisor.start(
                "sandbox",
                [
                    *me,
                    "sandbox",
                    "--port",
                    str(settings.sandbox_port),
                    "--service-url",
                    service_url,
                ],
                env,
                logs / "sandbox.log",
            )
            wait_until(http_ok(f"{sandbox_url}/_sandbox/health"), "PSP sandbox", supervisor)
        supervisor.start("worker", [*me, "worker"], env, logs / "worker.log")
        supervisor.start("service", [*me, "serve"], env, logs / "service.log")
        wait_until(http_ok(f"{service_url}/healthz"), "refunds service", supervisor)
        print(banner(settings, service_url, sandbox_url, logs, env), flush=True)
        while (dead := supervisor.died()) is None:
            time.sleep(0.5)
        print(
            f"{dead.name} exited with {dead.process.returncode}; stopping (logs in {logs})",
            flush=True,
        )
        return 1
    except KeyboardInterrupt:
        print("\nstopping…", flush=True)
        return 0
    except RuntimeError as err:
        print(f"refunds dev: {err} (logs in {logs})", file=sys.stderr, flush=True)
        return 1
    finally:
        supervisor.stop()
        told.close()


@dataclass
class DevEnvFile:
    """What the children were told, locked for as long as this dev runs: a command run by hand
    reads it only while the lock is held, so a file a hard kill left behind points nowhere."""

    path: Path
    descriptor: int

    def close(self) -> None:
        self.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            os.close(self.descriptor)


def write_dev_env(path: Path, env: dict[str, str]) -> DevEnvFile:
    """What the children were told, for commands run by hand beside dev (`local_settings`): they
    find the sandbox, its keys and the service without anything exported. Readable by us alone."""
    told = {key: value for key, value in sorted(env.items()) if key.startswith("REFUNDS_")}
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    os.write(descriptor, (json.dumps(told, indent=1) + "\n").encode("utf-8"))  # exact, unlike dotenv
    return DevEnvFile(path, descriptor)


def migrate_database(url: str) -> bool:
    """Migrate once before the children start, so a database problem is one clear line."""
    engine = make_engine(url)
    try:
        revision = migrate.upgrade(engine)
    except migrate.UnversionedDatabase as err:
        print(f"refunds dev: {err}", file=sys.stderr, flush=True)
        return False
    finally:
        engine.dispose()
    print(f"database at revision {revision}", flush=True)
    return True


def reviewer_line(tokens: str) -> str:
    """Who reviews in this dev run: dev's own reviewer and its token, or the reviewers configured
    (whose tokens are theirs to pass: never guessed from the list)."""
    if tokens == DEV_REVIEWER_TOKENS:
        return (
            f"  reviewer token {DEV_REVIEWER_TOKEN}  (ops; Authorization: Bearer …, the CLI's default here)"
        )
    names = ", ".join(name for name, _ in parse_entries(tokens))
    return f"  reviewers      {names}  (REFUNDS_REVIEWER_TOKENS: each passes its own --token)"


def banner(
    settings: Settings, service_url: str, sandbox_url: str | None, logs: Path, env: dict[str, str]
) -> str:
    host = settings.temporal_address.rpartition(":")[0] or "127.0.0.1"
    body = (
        '{"request_id":"demo-1","provider":"stripe","payment_reference":"pi_demo_eur_captured",'
        '"amount":{"value":2500,"currency":"EUR"},"reason_code":"damaged","order_id":"order-1"}'
    )
    lines = [
        "",
        "refunds dev is running",
        f"  API            {service_url}   (OpenAPI: {service_url}/docs)",
        f"  Temporal UI    http://{host}:{settings.temporal_ui_port}",
        f"  Temporal gRPC  {settings.temporal_address}  namespace {settings.temporal_namespace}",
        f"  database       {settings.database_url}",
        f"  PSP sandbox    {sandbox_url or 'off (every PSP has its own base)'}",
        reviewer_line(env["REFUNDS_REVIEWER_TOKENS"]),
        f"  policy         {settings.policy_file or env.get('REFUNDS_POLICY_FILE') or 'built in'}",
        f"  logs           {logs}",
        "",
        "Send a signed refund request:",
        f"  body='{body}'",
        f"  curl -s -X POST {service_url}/v1/refund-requests -H 'content-type: application/json' \\",
        '    -H "Refund-Signature: $(printf %s "$body" | refunds sign)" -d "$body"',
        "  refunds status demo-1",
        "",
        "Ctrl-C stops everything; `refunds dev` again resumes every refund in flight.",
    ]
    return "\n".join(lines)
