"""`refunds dev` as a user runs it: banner, a refund through it, hard kill, restart, clean stop."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.stripe.control import SandboxControl
from tests.dev_run import BANNER, DevRun
from workers.settings import DEV_ENV_FILE


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[DevRun]:
    run = DevRun(tmp_path / "data")
    yield run
    run.stop()


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
        assert "Warning" not in reconciled.stderr, reconciled.stderr  # nothing but the answer
    adyen = dev.cli("reconcile", "--provider", "adyen", "--since", since)  # configured, but cannot list
    assert adyen.stderr.startswith("not_supported: adyen")

    # a refund in flight, then a terminal's Ctrl-C (to the whole process group): dev alone gets it
    # and stops its children in order (before, each child got it too: Temporal and the sandbox died
    # under the worker's PSP call, seven tracebacks and seconds of gRPC retries)
    with SandboxControl(f"http://127.0.0.1:{dev.env['REFUNDS_SANDBOX_PORT']}") as sandbox:
        sandbox.inject_fault("slow", path_prefix="/v1/refunds", method="POST", delay_ms=4_000)
    assert dev.submit(body("dev-last", "pi_demo_eur_captured", 500)).status_code == 202
    dev.wait_status("dev-last", "refunding")  # its PSP call is in flight
    assert dev.ctrl_c() == 0
    assert "stopping" in dev.log.read_text()
    logs = Path(dev.env["REFUNDS_DATA_DIR"]) / "logs"
    for log in ("worker.log", "service.log", "sandbox.log"):
        written = (logs / log).read_bytes()
        assert b"\x1b[" not in written, log  # plain text, no terminal colours
        assert b"Traceback" not in written, (log, written[-3000:])
    assert not (Path(dev.env["REFUNDS_DATA_DIR"]) / DEV_ENV_FILE).exists()  # nothing points at a stopped dev
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{dev.url}/healthz", timeout=1)


def test_dev_on_a_taken_port_says_which_and_starts_nothing(tmp_path: Path) -> None:
    run = DevRun(tmp_path / "taken")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", run.http_port))
        holder.listen()  # another refunds dev, or anything else, already listens there
        done = run.cli("dev")
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"port {run.http_port} is in use" in done.stderr and "REFUNDS_HTTP_PORT" in done.stderr
    assert BANNER not in done.stdout
    assert not (tmp_path / "taken").exists()  # nothing started, nothing made (before: its logs/)


def test_dev_lets_its_own_ui_decode_wherever_the_ui_port_is_moved() -> None:
    """Before: with REFUNDS_TEMPORAL_UI_PORT moved, the codec still allowed only :8233, and the
    UI dev started could not show a payload."""
    from workers.dev import child_environment
    from workers.settings import Settings

    moved = child_environment(Settings(environment="dev", temporal_ui_port=27234), None)
    assert moved["REFUNDS_CODEC_CORS_ORIGINS"] == "http://127.0.0.1:27234,http://localhost:27234"
    chosen = Settings(environment="dev", temporal_ui_port=27234, codec_cors_origins="https://ui.example.com")
    assert (
        child_environment(chosen, None).get("REFUNDS_CODEC_CORS_ORIGINS")
        != moved["REFUNDS_CODEC_CORS_ORIGINS"]
    )
