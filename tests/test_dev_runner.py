"""`refunds dev` as a user runs it: banner, a refund through it, hard kill, restart, clean stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.sandbox.control import SandboxControl
from tests.conftest import free_port, repo_root

BANNER = "refunds dev is running"


class DevRun:
    def __init__(self, data_dir: Path) -> None:
        self.http_port = free_port()
        self.env = {
            **os.environ,
            "REFUNDS_ENVIRONMENT": "dev",
            "REFUNDS_DATA_DIR": str(data_dir),
            "REFUNDS_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
            "REFUNDS_TEMPORAL_UI_PORT": str(free_port()),
            "REFUNDS_SANDBOX_PORT": str(free_port()),
            "REFUNDS_HTTP_PORT": str(self.http_port),
        }
        for name in ("REFUNDS_DATABASE_URL", "REFUNDS_STRIPE_API_BASE", "REFUNDS_INBOUND_WEBHOOK_SECRET"):
            self.env.pop(name, None)
        self.log = data_dir / "dev.out"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> str:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "workers.cli", "dev"],
                env=self.env,
                cwd=repo_root(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while BANNER not in (text := self.log.read_text()):
            assert self.process.poll() is None, text
            assert time.monotonic() < deadline, text
            time.sleep(0.1)
        return text

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "workers.cli", *args],
            env=self.env,
            cwd=repo_root(),
            capture_output=True,
            text=True,
            timeout=60,
        )

    def submit(self, body: str) -> httpx.Response:
        signed = subprocess.run(
            [sys.executable, "-m", "workers.cli", "sign"],
            env=self.env,
            cwd=repo_root(),
            input=body,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.strip()
        return httpx.post(
            f"{self.url}/v1/refund-requests",
            content=body,
            headers={"content-type": "application/json", "Refund-Signature": signed},
        )

    def status(self, request_id: str) -> str | None:
        response = httpx.get(f"{self.url}/v1/refunds/{request_id}", timeout=10)
        return response.json()["status"] if response.status_code == 200 else None

    def wait_status(self, request_id: str, wanted: str) -> None:
        deadline = time.monotonic() + 60
        while (status := self.status(request_id)) != wanted:
            assert time.monotonic() < deadline, f"{request_id} is {status}, not {wanted}"
            time.sleep(0.1)

    def hard_kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def interrupt(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=30)


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[DevRun]:
    run = DevRun(tmp_path / "data")
    yield run
    if run.process is not None and run.process.poll() is None:
        os.killpg(run.process.pid, signal.SIGKILL)


def body(request_id: str, payment: str, amount: int | None = None) -> str:
    payload: dict[str, object] = {
        "request_id": request_id,
        "provider": "stripe",
        "payment_reference": payment,
        "reason_code": "damaged",
        "order_id": f"order-{request_id}",
    }
    if amount is not None:
        payload["amount"] = {"value": amount, "currency": "EUR"}
    return json.dumps(payload)


def sandbox_refunds(dev: DevRun, payment: str) -> list[dict[str, Any]]:
    with SandboxControl(f"http://127.0.0.1:{dev.env['REFUNDS_SANDBOX_PORT']}") as sandbox:
        return sandbox.stripe_refunds(payment)


def test_dev_runs_refunds_survives_a_hard_kill_and_stops_cleanly(dev: DevRun) -> None:
    banner = dev.start()
    assert f"{dev.url}/docs" in banner and "refunds sign" in banner

    assert dev.submit(body("dev-small", "pi_demo_eur_captured", 2_500)).status_code == 202
    dev.wait_status("dev-small", "succeeded")
    assert dev.submit(body("dev-large", "pi_demo_eur_large")).status_code == 202
    dev.wait_status("dev-large", "awaiting_review")

    dev.hard_kill()
    dev.start()

    assert dev.submit(body("dev-small", "pi_demo_eur_captured", 2_500)).status_code == 200
    approved = dev.cli("approve", "dev-large")  # as dev's own reviewer, by its token
    assert approved.returncode == 0, approved.stdout + approved.stderr
    dev.wait_status("dev-large", "succeeded")
    assert len(sandbox_refunds(dev, "pi_demo_eur_captured")) == 1
    assert len(sandbox_refunds(dev, "pi_demo_eur_large")) == 1

    status = dev.cli("status", "dev-large", "--json")
    assert json.loads(status.stdout)["review"]["reviewer"] == "ops"
    # a command run beside dev finds the sandbox and its keys with nothing exported
    since = datetime.now(UTC).strftime("%Y-%m-%d")
    for provider in ("stripe", "paypal"):
        reconciled = dev.cli("reconcile", "--provider", provider, "--since", since)
        assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr
        assert "the books match the PSP" in reconciled.stdout
    adyen = dev.cli("reconcile", "--provider", "adyen", "--since", since)  # configured, but cannot list
    assert adyen.stdout.startswith("not_supported: adyen")

    assert dev.interrupt() == 0
    assert "stopping" in dev.log.read_text()
    assert not (Path(dev.env["REFUNDS_DATA_DIR"]) / "dev.env").exists()  # nothing points at a stopped dev
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{dev.url}/healthz", timeout=1)


def test_dev_on_a_taken_port_says_which_and_starts_nothing(tmp_path: Path) -> None:
    run = DevRun(tmp_path / "taken")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", run.http_port))
        holder.listen()  # another refunds dev, or anything else, already listens there
        done = subprocess.run(
            [sys.executable, "-m", "workers.cli", "dev"],
            env=run.env,
            cwd=repo_root(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"port {run.http_port} is in use" in done.stderr and "REFUNDS_HTTP_PORT" in done.stderr
    assert BANNER not in done.stdout
    assert not (tmp_path / "taken" / "temporal.db").exists()  # nothing was started
