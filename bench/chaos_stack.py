"""The chaos run's processes: Temporal dev server, PSP sandbox, worker and HTTP service, each its own
OS process on loopback, all on one data dir, so any of them can be SIGKILLed and started again on the
same state. The sandbox is the ground truth: it is never killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
import psycopg

from workers.dev import temporal_argv
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
from workers.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
INBOUND_SECRET = "chaos-inbound-secret"
REVIEW_SIGNING_KEY = "chaos-review-signing-key-0123456789abcdef"  # 32+ characters, no merchant's secret
REVIEWERS = {"alice": "alice-chaos-token", "bob": "bob-chaos-token"}
KILLABLE = ("worker", "service", "temporal")
READY_DEADLINE_SECONDS = 90

# Review at 1,000.00 and above, two reviewers at 5,000.00 and above; the score alone never sends a
# refund to review (90), so which refunds wait for a human is decided by the plan, not by chance.
POLICY = """\
version = "chaos-1"

[review]
threshold_major = 1000
score_threshold = 90
auto_approve_below_major = 20
always_review_reasons = []
four_eyes_above_major = 5000
escalate_after_hours = 24
decide_after_hours = 72
on_deadline = "reject"

# An early fraud warning refunds what is left of the payment (check 16: after a partial refund, exactly
# the rest); the remainders the run leaves stay below the review threshold, so no human is needed.
[early_fraud_warnings]
mode = "refund"
refund_up_to_major = 1000
review_fraud_types = []

[returns]
shipping = "full_return"
no_return_reasons = ["damaged", "defective", "not_received", "vending_failure", "goodwill"]
deadline_days = 90
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_answers() -> bool:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def fresh_database(data_dir: Path, sqlite: bool) -> tuple[str, str | None]:
    """A new PostgreSQL database when one answers (its URL and name, to drop), else SQLite."""
    if sqlite or not postgres_answers():
        return f"sqlite:///{data_dir / 'refunds.db'}", None
    name = f"refunds_chaos_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", name


def drop_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None
    kills: int = 0
    crashes: int = 0  # died on its own (not by our hand) and was started again


@dataclass
class Stack:
    data_dir: Path
    database_url: str
    workflow_sandbox: bool = False
    temporal_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    sandbox_port: int = field(default_factory=free_port)
    children: dict[str, Child] = field(default_factory=dict)
    merchants_file: Path | None = None  # the merchants beside the default one (the hostile tenant)

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    @property
    def service_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def temporal_address(self) -> str:
        return f"127.0.0.1:{self.temporal_port}"

    def environment(self) -> dict[str, str]:
        """The REFUNDS_* configuration every child shares, as workers/dev.py gives its children."""
        sandbox = self.sandbox_url
        return {
            "REFUNDS_ENVIRONMENT": "test",
            "REFUNDS_DATA_DIR": str(self.data_dir),
            "REFUNDS_DATABASE_URL": self.database_url,
            "REFUNDS_TEMPORAL_ADDRESS": self.temporal_address,
            "REFUNDS_TASK_QUEUE": "refunds-chaos",
            "REFUNDS_HTTP_PORT": str(self.http_port),
            "REFUNDS_INBOUND_WEBHOOK_SECRET": INBOUND_SECRET,
            "REFUNDS_REVIEWER_TOKENS": ",".join(f"{name}:{token}" for name, token in REVIEWERS.items()),
            "REFUNDS_REVIEW_SIGNING_KEY": REVIEW_SIGNING_KEY,
            "REFUNDS_POLICY_FILE": str(self.data_dir / "policy.toml"),
            "REFUNDS_PSP_TIMEOUT_SECONDS": "5",
            "REFUNDS_CONFIRMATION_POLL_SECONDS": "5",
            "REFUNDS_WORKFLOW_SANDBOX": "true" if self.workflow_sandbox else "false",
            "REFUNDS_STRIPE_API_BASE": sandbox,
            "REFUNDS_STRIPE_API_KEY": SANDBOX_STRIPE_API_KEY,
            "REFUNDS_STRIPE_WEBHOOK_SECRET": SANDBOX_STRIPE_WEBHOOK_SECRET,
            "REFUNDS_ADYEN_API_BASE": f"{sandbox}/checkout",
            "REFUNDS_ADYEN_API_KEY": SANDBOX_ADYEN_API_KEY,
            "REFUNDS_ADYEN_MERCHANT_ACCOUNT": SANDBOX_ADYEN_MERCHANT_ACCOUNT,
            "REFUNDS_ADYEN_HMAC_KEY": SANDBOX_ADYEN_HMAC_KEY,
            "REFUNDS_PAYPAL_API_BASE": sandbox,
            "REFUNDS_PAYPAL_CLIENT_ID": SANDBOX_PAYPAL_CLIENT_ID,
            "REFUNDS_PAYPAL_CLIENT_SECRET": SANDBOX_PAYPAL_CLIENT_SECRET,
            "REFUNDS_PAYPAL_WEBHOOK_ID": SANDBOX_PAYPAL_WEBHOOK_ID,
            "REFUNDS_PAYPAL_CERT_URL_PREFIXES": f"{sandbox}/_sandbox/paypal/",
            **({"REFUNDS_MERCHANTS_FILE": str(self.merchants_file)} if self.merchants_file else {}),
        }

    def settings(self) -> Settings:
        """The same configuration, for the checks run in this process (attention, reconcile)."""
        values = {key.removeprefix("REFUNDS_").lower(): value for key, value in self.environment().items()}
        return Settings(_env_file=None, **values)  # type: ignore[arg-type]

    def start(self) -> None:
        """Every process, in dependency order, each ready before the next starts."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "logs").mkdir(exist_ok=True)
        (self.data_dir / "policy.toml").write_text(POLICY, encoding="utf-8")
        me = [sys.executable, "-m", "workers.cli"]
        temporal = temporal_argv(
            self.settings().model_copy(update={"temporal_ui_port": free_port()}),
            self.data_dir / "temporal.db",
        )
        self.children = {
            "temporal": Child("temporal", [*temporal, "--headless"]),
            "sandbox": Child(
                "sandbox",
                [*me, "sandbox", "--port", str(self.sandbox_port), "--service-url", self.service_url],
            ),
            "worker": Child("worker", [*me, "worker"]),
            "service": Child("service", [*me, "serve"]),
        }
        for name in self.children:
            self._spawn(name)
            self.wait_ready(name)

    def _spawn(self, name: str) -> None:
        child = self.children[name]
        if child.log is None:
            child.log = (self.data_dir / "logs" / f"{name}.log").open("ab")
        child.process = subprocess.Popen(
            child.argv,
            env={**os.environ, "PYTHONPATH": str(ROOT), **self.environment()},
            cwd=ROOT,
            stdout=child.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a kill takes its helpers too
        )

    def ready(self, name: str) -> bool:
        try:
            if name == "temporal":
                with socket.create_connection(("127.0.0.1", self.temporal_port), timeout=1):
                    return True
            if name == "sandbox":
                return httpx.get(f"{self.sandbox_url}/_sandbox/health", timeout=2).status_code == 200
            if name == "service":
                return httpx.get(f"{self.service_url}/healthz", timeout=2).status_code == 200
        except (OSError, httpx.HTTPError):
            return False
        return True  # the worker has no port: alive is ready

    def wait_ready(self, name: str) -> None:
        child = self.children[name]
        deadline = time.monotonic() + READY_DEADLINE_SECONDS
        while not self.ready(name):
            assert child.process is not None
            if child.process.poll() is not None:
                raise RuntimeError(f"{name} exited with {child.process.returncode} while starting")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready within {READY_DEADLINE_SECONDS}s")
            time.sleep(0.1)

    def kill(self, name: str) -> None:
        """SIGKILL the process (and its group), then start it again on the same data."""
        assert name in KILLABLE, f"{name} is not to be killed"
        child = self.children[name]
        assert child.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.process.pid, signal.SIGKILL)
        child.process.wait()
        child.kills += 1
        self._spawn(name)
        self.wait_ready(name)

    def forget(self) -> None:
        """SIGKILL the Temporal server and start it on a fresh, empty database file: retention has
        forgotten every workflow (the service and the worker stay up and reconnect)."""
        child = self.children["temporal"]
        assert child.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.process.pid, signal.SIGKILL)
        child.process.wait()
        for path in self.data_dir.glob("temporal.db*"):
            path.rename(path.with_name(path.name.replace("temporal.db", "temporal-forgotten.db")))
        self._spawn("temporal")
        self.wait_ready("temporal")

    def revive(self) -> list[str]:
        """Start again whatever died on its own; the names, for the report."""
        revived = []
        for name, child in self.children.items():
            if child.process is not None and child.process.poll() is not None:
                child.crashes += 1
                revived.append(f"{name} (exit {child.process.returncode})")
                self._spawn(name)
                self.wait_ready(name)
        return revived

    def stop(self) -> None:
        for child in reversed(list(self.children.values())):
            if child.process is not None and child.process.poll() is None:
                os.killpg(child.process.pid, signal.SIGTERM)
                try:
                    child.process.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(child.process.pid, signal.SIGKILL)
                    child.process.wait()
            if child.log is not None:
                child.log.close()
