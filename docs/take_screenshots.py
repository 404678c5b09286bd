"""Retake the screenshots in docs/ops.md from a running `refunds dev`.

    pip install -e '.[docs]'               # websockets, to drive Chromium over DevTools
    python docs/take_screenshots.py        # needs Debian's chromium (apt-get install chromium)

Starts `refunds dev` on a scratch data directory, makes a few refunds (one auto-approved, two waiting
for review, one of them needing four eyes), then photographs the Temporal UI's pages and the CLI's
output (rendered to HTML by rich) with headless Chromium. Stops everything when done.
"""

from __future__ import annotations

import base64
import html
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import httpx
from websockets.sync.client import connect

from domain import signature
from workers.settings import DEV_INBOUND_SECRET

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "img"
SERVICE = "http://127.0.0.1:8000"
UI = "http://127.0.0.1:8233"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def wait_for(url: str, deadline_seconds: float = 120) -> None:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)  # a script polling a server it started, not a test
    raise SystemExit(f"{url} did not come up")


def wait_for_status(request_id: str, status: str, deadline_seconds: float = 60) -> None:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        response = httpx.get(f"{SERVICE}/v1/refunds/{request_id}", timeout=5)
        if response.status_code == 200 and response.json()["status"] == status:
            return
        time.sleep(0.3)
    raise SystemExit(f"{request_id} never reached {status}")


def submit(request_id: str, payment: str, amount: int, **extra: object) -> None:
    body = json.dumps(
        {
            "request_id": request_id,
            "provider": "stripe",
            "payment_reference": payment,
            "amount": {"value": amount, "currency": "EUR"},
            "reason_code": "changed_mind",
            "order_id": f"order-{request_id}",
            "customer_id": f"cus-{request_id}",
            **extra,
        }
    ).encode()
    header = signature.sign([DEV_INBOUND_SECRET], int(time.time()), body)
    response = httpx.post(
        f"{SERVICE}/v1/refund-requests",
        content=body,
        headers={"content-type": "application/json", "Refund-Signature": header},
    )
    response.raise_for_status()


class Browser:
    """Headless Chromium driven over the DevTools protocol: navigate, wait until the page shows
    what we expect (the Temporal UI long-polls, so "network idle" never comes), photograph."""

    def __init__(self) -> None:
        self._profile = tempfile.mkdtemp(prefix="chromium-")
        self._process = subprocess.Popen(
            ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={self._profile}", "--remote-debugging-port=9333"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for("http://127.0.0.1:9333/json/version", 30)
        page = httpx.put("http://127.0.0.1:9333/json/new?about:blank").json()
        self._socket = connect(page["webSocketDebuggerUrl"], max_size=None).__enter__()
        self._ids = iter(range(1, 1_000_000))

    def call(self, method: str, **params: object) -> dict[str, object]:
        message_id = next(self._ids)
        self._socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            answer = json.loads(self._socket.recv())
            if answer.get("id") == message_id:
                return dict(answer.get("result") or {})

    def shoot(self, url: str, name: str, *, width: int, height: int, showing: str) -> None:
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + 30
        probe = f"document.body && document.body.innerText.includes({json.dumps(showing)})"
        while not self.call("Runtime.evaluate", expression=probe).get("result", {}).get("value"):  # type: ignore[union-attr]
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} never showed {showing!r}")
            time.sleep(0.3)
        time.sleep(1.0)  # let the last panels finish rendering after the text appears
        shot = self.call("Page.captureScreenshot", format="png")
        (OUT / name).write_bytes(base64.b64decode(str(shot["data"])))
        print(f"docs/img/{name}")

    def close(self) -> None:
        self._socket.close()
        self._process.terminate()
        self._process.wait(timeout=30)
        shutil.rmtree(self._profile, ignore_errors=True)


def cli_page(env: dict[str, str], *args: str) -> Path:
    """The command's output as a terminal-looking HTML page."""
    done = subprocess.run(
        [sys.executable, "-m", "workers.cli", *args],
        env={**env, "COLUMNS": "150"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    text = html.escape(f"$ refunds {' '.join(args)}\n{done.stdout}{done.stderr}")
    page = Path(tempfile.mkdtemp()) / "cli.html"
    page.write_text(
        "<html><body style='margin:0;background:#1e1e1e'>"
        "<pre style='color:#ddd;font:14px/1.35 DejaVu Sans Mono,monospace;padding:18px'>"
        f"{text}</pre></body></html>"
    )
    return page


def main() -> None:
    if shutil.which("chromium") is None:
        raise SystemExit("chromium is not installed (apt-get install chromium)")
    OUT.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="refunds-screens-"))
    policy = data_dir / "policy.toml"
    policy.write_text('version = "docs-1"\n[review]\nfour_eyes_above_major = 2000\n')
    env = {
        **os.environ,
        "REFUNDS_DATA_DIR": str(data_dir),
        "REFUNDS_POLICY_FILE": str(policy),
        "REFUNDS_OPERATOR": "olga",
    }
    dev = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "dev"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(f"{SERVICE}/healthz")
        wait_for(UI)
        submit("docs-small", "pi_demo_eur_captured", 2_500)
        submit("docs-review", "pi_demo_eur_large", 150_000, metadata={"requested_by": "sam"})
        submit("docs-four-eyes", "pi_demo_eur_large", 240_000)
        for request_id, status in [
            ("docs-small", "succeeded"),
            ("docs-review", "awaiting_review"),
            ("docs-four-eyes", "awaiting_review"),
        ]:
            wait_for_status(request_id, status)
        subprocess.run(
            [sys.executable, "-m", "workers.cli", "approve", "docs-four-eyes"], env=env, check=False
        )

        run_id = httpx.get(f"{UI}/api/v1/namespaces/default/workflows/refund-docs-review").json()[
            "workflowExecutionInfo"
        ]["execution"]["runId"]
        query = urllib.parse.quote('RefundStatus = "awaiting_review"')
        browser = Browser()
        try:
            browser.shoot(
                f"{UI}/namespaces/default/workflows?query={query}",
                "ui-review-queue.png",
                width=1400,
                height=560,
                showing="refund-docs-four-eyes",
            )
            browser.shoot(
                f"{UI}/namespaces/default/workflows/refund-docs-review/{run_id}/history",
                "ui-refund-detail.png",
                width=1400,
                height=1100,
                showing="validate_refund_request",
            )
            browser.shoot(
                cli_page(env, "pending").as_uri(),
                "cli-pending.png",
                width=1400,
                height=300,
                showing="docs-review",
            )
            browser.shoot(
                cli_page(env, "status", "docs-small").as_uri(),
                "cli-status.png",
                width=1400,
                height=900,
                showing="audit",
            )
        finally:
            browser.close()
    finally:
        os.killpg(dev.pid, signal.SIGTERM)
        dev.wait(timeout=60)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
