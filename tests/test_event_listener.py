"""`refunds events listen`, the receiver a newcomer tries events with: it verifies what arrives and
shrugs off what is not an event of ours, without a traceback or a thread held forever."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from adapters.db.event_endpoints import new_secret
from adapters.event_sender import now, sign
from tests.conftest import free_port, repo_root


@pytest.fixture
def listener() -> Iterator[tuple[str, str, subprocess.Popen[str]]]:
    secret, port = new_secret(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFUNDS_")}
    env["PYTHONPATH"] = str(repo_root())
    process = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "events", "listen", "--secret", secret, "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30
    while True:  # poll with a deadline until it listens
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline and process.poll() is None, "the listener never listened"
            time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/", secret, process
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_what_is_not_an_event_of_ours_is_refused_in_one_line(
    listener: tuple[str, str, subprocess.Popen[str]],
) -> None:
    url, secret, process = listener
    with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1].strip("/")))) as raw:
        raw.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.0 411")  # before: a traceback
    listed = json.dumps([1, 2])
    signed = sign("evt_list", listed, (secret,), now())
    assert (
        httpx.post(url, content=signed.body, headers=signed.headers).status_code == 400
    )  # before: AttributeError
    event = json.dumps(
        {
            "id": "evt_1",
            "type": "refund.succeeded",
            "data": {"refund": {"request_id": "r1", "status": "succeeded"}},
        }
    )
    good = sign("evt_1", event, (secret,), now())
    assert httpx.post(url, content=good.body, headers=good.headers).status_code == 204
    assert httpx.post(url, content=good.body, headers=good.headers).status_code == 204  # a redelivery
    process.terminate()
    out = process.communicate(timeout=30)[0]
    assert "Traceback" not in out
    assert "refund.succeeded r1 succeeded evt_1" in out and "again (already seen, ignored)" in out
