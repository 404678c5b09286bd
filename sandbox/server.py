"""The PSP sandbox process: a keep-alive HTTP/1.1 server on loopback in a background thread.

    with SandboxServer(state_path=Path(".refunds/sandbox.db")) as sandbox:
        client = stripe.StripeClient("sk_test_sandbox", base_addresses={"api": sandbox.url})

Routes by path prefix: Stripe owns `/v1/`, the control API `/_sandbox/`; other PSPs mount beside.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Callable, Sequence
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from sandbox.background import DueLoop
from sandbox.faults import FaultRegistry
from sandbox.routing import Router, SandboxRequest, SandboxResponse
from sandbox.stats import CallStats
from sandbox.store import SandboxStore
from sandbox.stripe.api import ControlApi, StripeApi
from sandbox.stripe.engine import StripeEngine
from sandbox.stripe.objects import new_request_id, webhook_headers
from sandbox.webhooks import StoreOutbox, WebhookSender

log = logging.getLogger(__name__)


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], router: Router) -> None:
        self.router = router
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "refunds-sandbox/1"
    sys_version = ""
    disable_nagle_algorithm = True
    timeout = 120  # idle keep-alive connections are closed after this many seconds
    server: _HttpServer

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.connections_lock:
                self.server.connections.discard(self.connection)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        url = urlsplit(self.path)
        request = SandboxRequest(
            method=self.command,
            path=url.path,
            query=url.query,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            client_host=self.client_address[0],
            request_id=new_request_id(),
        )
        response = self.server.router.handle(request)
        if response.drop_connection:
            self.close_connection = True
            return
        self._write(request, response)

    def _write(self, request: SandboxRequest, response: SandboxResponse) -> None:
        head = [f"HTTP/1.1 {response.status} {self.responses.get(response.status, ('',))[0]}"]
        head.append(f"Content-Type: {response.content_type}")
        head.append(f"Content-Length: {len(response.body)}")
        head.append(f"Request-Id: {request.request_id}")
        head.extend(f"{name}: {value}" for name, value in response.headers.items())
        if self.close_connection:
            head.append("Connection: close")
        raw = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body
        try:
            self.wfile.write(raw)
        except OSError:
            # The client went away (e.g. a timeout during a slow fault); the effect has committed.
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class SandboxServer:
    """Stripe's sandbox with faults, webhooks and a control API; Adyen and PayPal mount beside it."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        state_path: Path | None = None,
        stripe_api_key: str = "sk_test_sandbox",
        stripe_webhook_secret: str = "whsec_sandbox",
        stripe_webhook_url: str | None = None,
        *,
        webhook_retry_delays: Sequence[float] = (0.5, 2.0, 5.0),
        webhook_timeout_seconds: float = 5.0,
    ) -> None:
        self._host = host
        self._port = port
        self._stripe_webhook_url = stripe_webhook_url
        self.store = SandboxStore(state_path)
        self.stats = CallStats()
        self.faults = FaultRegistry(self.stats)
        self.webhooks = WebhookSender(
            self.store,
            StoreOutbox({"stripe": partial(webhook_headers, stripe_webhook_secret)}),
            name="sandbox-webhooks",
            retry_delays=webhook_retry_delays,
            timeout_seconds=webhook_timeout_seconds,
        )
        self.stripe = StripeEngine(
            self.store,
            webhook_url=lambda: self._stripe_webhook_url,
            on_event=self.webhooks.wake,
            on_settlement_scheduled=lambda: self._settlements.wake(),
        )
        self._settlements = DueLoop("sandbox-settlements", self.stripe.settle_due)
        self.router = Router(self.stats)
        self.router.mount("/v1/", StripeApi(self.stripe, self.store, self.faults, self.stats, stripe_api_key))
        self.router.mount(
            "/_sandbox/",
            ControlApi(
                self.stripe,
                self.store,
                self.faults,
                self.stats,
                get_webhook_url=lambda: self._stripe_webhook_url,
                set_webhook_url=self.set_stripe_webhook_url,
            ),
            count_calls=False,
        )
        self._http: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._stop_requested = threading.Event()
        self._stopped = threading.Event()
        self._closers: list[Callable[[], None]] = []

    @property
    def url(self) -> str:
        if self._http is None:
            raise RuntimeError("the sandbox is not started")
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def stripe_webhook_url(self) -> str | None:
        return self._stripe_webhook_url

    def set_stripe_webhook_url(self, url: str | None) -> None:
        """Where Stripe events are POSTed from now on (events already made keep their URL)."""
        self._stripe_webhook_url = url

    def start(self) -> SandboxServer:
        if self._http is not None:
            raise RuntimeError("the sandbox is already started")
        self._http = _HttpServer((self._host, self._port), self.router)
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="sandbox-http",
            daemon=True,
        )
        self._thread.start()
        self.webhooks.start()
        self._settlements.start()
        log.info("PSP sandbox listening on %s", self.url)
        return self

    def on_stop(self, close: Callable[[], None]) -> None:
        """Run `close` when the server stops, before its store closes (a mounted PSP's threads)."""
        self._closers.append(close)

    def stop(self) -> None:
        """Stop serving, drop open connections, stop background work and close the state file."""
        self._stop_requested.set()
        while self._closers:
            self._closers.pop()()
        if self._http is None or self._stopped.is_set():
            return
        self._http.shutdown()
        self._http.server_close()
        with self._http.connections_lock:
            for connection in list(self._http.connections):
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(5)
        self._settlements.stop()
        self.webhooks.stop()
        self.store.close()
        self._stopped.set()

    def serve_forever(self) -> None:
        """Start (if needed) and block until `stop()`, Ctrl-C or (in the main thread) SIGTERM."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda signum, frame: self._stop_requested.set())
        if self._http is None:
            self.start()
        try:
            while not self._stop_requested.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
