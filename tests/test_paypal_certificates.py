"""PayPal's webhook certificate is fetched off the event loop, a failing one is not fetched again for a
while, and only a few fetches run at once: forged deliveries naming a slow or failing certificate URL
never stall the service (its health check answers meanwhile) nor hammer the certificate's host."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.conftest import Stack, free_port, starter_for
from tests.helpers import eventually


class CertificateHost:
    """A certificate host that answers 404, optionally only once the test releases it."""

    def __init__(self, hold: bool) -> None:
        self.requests = 0
        self.release = threading.Event()
        if not hold:
            self.release.set()
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host.requests += 1
                host.release.wait(timeout=60)
                self.send_response(404)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/certs/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()


@pytest.fixture
def slow_host() -> Iterator[CertificateHost]:
    host = CertificateHost(hold=True)
    yield host
    host.close()


@pytest.fixture
def failing_host() -> Iterator[CertificateHost]:
    host = CertificateHost(hold=False)
    yield host
    host.close()


def _forged(cert_url: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "PAYPAL-TRANSMISSION-ID": "t-1",
        "PAYPAL-TRANSMISSION-TIME": datetime.now(UTC).isoformat(),
        "PAYPAL-TRANSMISSION-SIG": base64.b64encode(b"forged").decode(),
        "PAYPAL-CERT-URL": cert_url,
        "PAYPAL-AUTH-ALGO": "SHA256withRSA",
    }


async def _deliver(http: httpx.AsyncClient, cert_url: str) -> httpx.Response:
    return await http.post("/webhooks/paypal", content=b'{"id": "WH-1"}', headers=_forged(cert_url))


async def test_a_slow_certificate_host_never_stalls_the_service(
    stack: Stack, slow_host: CertificateHost
) -> None:
    port = free_port()
    starter = starter_for(stack, port=port, paypal_cert_url_prefixes=slow_host.url)
    async with starter as (_, http):
        deliveries = [asyncio.create_task(_deliver(http, f"{slow_host.url}{n}.pem")) for n in range(6)]
        await eventually(_value(lambda: slow_host.requests), lambda n: n >= 4)  # four fetches held
        # asked from another thread over the network: a stalled event loop could not answer it
        health = await asyncio.to_thread(httpx.get, f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert health.status_code == 200
        slow_host.release.set()
        answers = [await task for task in deliveries]
    codes = {(r.status_code, r.json()["error"]["code"]) for r in answers}
    assert codes == {(400, "certificate_unavailable")}
    assert slow_host.requests == 4  # the other two were refused without a fetch


def _value(read: Callable[[], int]) -> Callable[[], Awaitable[int]]:
    async def probe() -> int:
        return read()

    return probe


async def test_a_failing_certificate_url_is_fetched_once_a_minute_at_most(
    stack: Stack, failing_host: CertificateHost
) -> None:
    async with starter_for(stack, paypal_cert_url_prefixes=failing_host.url) as (_, http):
        for _ in range(5):
            response = await _deliver(http, f"{failing_host.url}same.pem")
            assert (response.status_code, response.json()["error"]["code"]) == (
                400,
                "certificate_unavailable",
            )
    assert failing_host.requests == 1
