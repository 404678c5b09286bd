"""One Temporal dev server, one database, one PSP sandbox and one running product per test session.

The product runs as it does in production, only in-process: the FastAPI service on a real port
(the sandbox delivers signed webhooks to it), the worker polling a real Temporal dev server, the
official Stripe SDK talking HTTP to the sandbox. PostgreSQL is used where it answers; SQLite
otherwise (REFUNDS_TEST_DATABASE=sqlite forces it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
import uvicorn
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from adapters.db.engine import Database
from sandbox.adyen.control import AdyenSandboxControl
from sandbox.paypal.control import PayPalSandboxControl
from sandbox.server import SandboxServer
from sandbox.stripe.control import SandboxControl
from tests.helpers import INBOUND_SECRET, local_temporal, time_skipping_temporal
from workers.psp_wiring.adyen import (
    SANDBOX_ADYEN_API_KEY,
    SANDBOX_ADYEN_HMAC_KEY,
    SANDBOX_ADYEN_MERCHANT_ACCOUNT,
)
from workers.psp_wiring.paypal import (
    SANDBOX_PAYPAL_CLIENT_ID,
    SANDBOX_PAYPAL_CLIENT_SECRET,
    SANDBOX_PAYPAL_WEBHOOK_ID,
)
from workers.psp_wiring.stripe import SANDBOX_STRIPE_API_KEY, SANDBOX_STRIPE_WEBHOOK_SECRET
from workers.psps import build_directory
from workers.sandbox import sandbox_server as sandbox_server_for
from workers.service.app import create_app
from workers.service.deps import Services
from workers.settings import Settings
from workers.worker import EXECUTOR_THREADS, build_worker

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_available() -> bool:
    if os.environ.get("REFUNDS_TEST_DATABASE") == "sqlite":
        return False
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str | None]:
    """A fresh PostgreSQL database for this session, dropped afterwards; None without PostgreSQL."""
    if not postgres_available():
        yield None
        return
    name = f"refunds_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url(postgres_url: str | None, tmp_path_factory: pytest.TempPathFactory) -> str:
    if postgres_url is not None:
        return postgres_url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'refunds.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_url: str | None,
) -> Iterator[Database]:
    """The database layer alone, on SQLite and on PostgreSQL (skipped where it is not running)."""
    if request.param == "postgresql":
        if postgres_url is None:
            pytest.skip("PostgreSQL is not running here")
        url = postgres_url
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('guard') / 'guard.db'}"
    database = Database.connect(url)
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def database(database_url: str) -> Iterator[Database]:
    db = Database.connect(database_url)
    yield db
    db.dispose()


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    async with local_temporal() as env:
        yield env


@pytest.fixture(scope="session")
def temporal_client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@dataclass
class Stack:
    """The running product, as tests see it."""

    settings: Settings
    services: Services
    base_url: str
    http: httpx.AsyncClient
    sandbox: SandboxControl
    sandbox_url: str
    database: Database
    client: Client


@pytest.fixture(scope="session")
def service_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def sandbox_server(tmp_path_factory: pytest.TempPathFactory, service_port: int) -> Iterator[SandboxServer]:
    state = tmp_path_factory.mktemp("sandbox") / "sandbox.db"
    server = sandbox_server_for(0, state, f"http://127.0.0.1:{service_port}")
    server.start()
    yield server
    server.stop()


def make_settings(database_url: str, temporal: Client, sandbox_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "environment": "test",
        "temporal_address": temporal.service_client.config.target_host,
        "task_queue": f"refunds-test-{uuid.uuid4().hex[:8]}",
        "database_url": database_url,
        "inbound_webhook_secret": INBOUND_SECRET,
        "reviewer_tokens": "alice:alice-token,bob:bob-token",
        "review_signing_key": "test-review-signing-secret-0123456789abcdef",
        "stripe_api_key": SANDBOX_STRIPE_API_KEY,
        "stripe_api_base": sandbox_url,
        "stripe_webhook_secret": SANDBOX_STRIPE_WEBHOOK_SECRET,
        "adyen_api_key": SANDBOX_ADYEN_API_KEY,
        "adyen_api_base": f"{sandbox_url}/checkout",
        "adyen_merchant_account": SANDBOX_ADYEN_MERCHANT_ACCOUNT,
        "adyen_hmac_key": SANDBOX_ADYEN_HMAC_KEY,
        "paypal_client_id": SANDBOX_PAYPAL_CLIENT_ID,
        "paypal_client_secret": SANDBOX_PAYPAL_CLIENT_SECRET,
        "paypal_api_base": sandbox_url,
        "paypal_webhook_id": SANDBOX_PAYPAL_WEBHOOK_ID,
        "paypal_cert_url_prefixes": f"{sandbox_url}/_sandbox/paypal/",
        "psp_timeout_seconds": 5,
        "confirmation_poll_seconds": 30,
        "workflow_sandbox": True,  # the sandbox catches non-deterministic workflow code in CI
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@asynccontextmanager
async def serving(services: Services, port: int) -> AsyncIterator[str]:
    """The HTTP service on 127.0.0.1:`port` for the block; yields its base URL."""
    config = uvicorn.Config(create_app(services), host="127.0.0.1", port=port, log_level="error")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = asyncio.get_running_loop().time() + 30
    while not server.started:
        if task.done() or asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"the service did not start on port {port}")
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture(scope="session")
def activity_executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=EXECUTOR_THREADS) as executor:
        yield executor


@pytest.fixture(scope="session")
async def stack(
    database_url: str,
    database: Database,
    temporal_client: Client,
    sandbox_server: SandboxServer,
    service_port: int,
    activity_executor: ThreadPoolExecutor,
) -> AsyncIterator[Stack]:
    settings = make_settings(database_url, temporal_client, sandbox_server.url, http_port=service_port)
    psps = build_directory(settings, database)
    services = Services(settings, database, temporal_client, psps)
    worker = build_worker(temporal_client, settings, database, psps, activity_executor)
    async with (
        serving(services, service_port) as base_url,
        worker,
        httpx.AsyncClient(base_url=base_url, timeout=10) as http,
    ):
        yield Stack(
            settings=settings,
            services=services,
            base_url=base_url,
            http=http,
            sandbox=SandboxControl(sandbox_server.url),
            sandbox_url=sandbox_server.url,
            database=database,
            client=temporal_client,
        )


@pytest.fixture
def sandbox(stack: Stack) -> Iterator[SandboxControl]:
    yield stack.sandbox
    stack.sandbox.clear_faults()


@pytest.fixture
def adyen(stack: Stack) -> Iterator[AdyenSandboxControl]:
    with AdyenSandboxControl(stack.sandbox_url) as control:
        yield control
        control.clear_faults()
        control.hold_notifications(False)


@pytest.fixture
def paypal(stack: Stack) -> Iterator[PayPalSandboxControl]:
    with PayPalSandboxControl(stack.sandbox_url) as control:
        yield control
        control.clear_faults()


@pytest.fixture
async def skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    async with time_skipping_temporal() as env:
        yield env


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@asynccontextmanager
async def starter_for(
    stack: Stack, client: Client | None = None, port: int | None = None, **overrides: object
) -> AsyncIterator[tuple[Settings, httpx.AsyncClient]]:
    """The HTTP service in-process with its own settings (and its own task queue, so its workflows
    run only on the worker a test chooses), on the session's client unless told another; with a
    `port`, it also listens there (for a PSP sandbox's webhooks)."""
    values: dict[str, object] = {"task_queue": f"side-{uuid.uuid4().hex[:8]}", **overrides}
    settings = stack.settings.model_copy(update=values)
    registry = build_directory(settings, stack.database)
    services = Services(settings, stack.database, client or stack.client, registry)
    transport = httpx.ASGITransport(app=create_app(services))
    async with contextlib.AsyncExitStack() as listening:
        if port is not None:
            await listening.enter_async_context(serving(services, port))
        async with httpx.AsyncClient(transport=transport, base_url="http://starter") as http:
            yield settings, http


@asynccontextmanager
async def worker_for(stack: Stack, settings: Settings, client: Client | None = None) -> AsyncIterator[None]:
    """A worker on `settings.task_queue`, against the session's server unless told another."""
    with ThreadPoolExecutor(max_workers=EXECUTOR_THREADS) as executor:
        worker = build_worker(
            client or stack.client,
            settings,
            stack.database,
            build_directory(settings, stack.database),
            executor,
        )
        async with worker:
            yield
