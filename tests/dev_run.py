"""`refunds dev` run as a user runs it, on free ports and a data directory of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

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

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "workers.cli", *args],
            input=stdin,
            env=self.env,
            cwd=repo_root(),
            capture_output=True,
            text=True,
            timeout=60,
        )

    def submit(self, body: str) -> httpx.Response:
        signed = self.cli("sign", stdin=body).stdout.strip()
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

    def ctrl_c(self) -> int:
        """A terminal's Ctrl-C: SIGINT to the whole foreground process group."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout=30)

    def stop(self) -> None:
        """Whatever is left of the run, its children included."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
