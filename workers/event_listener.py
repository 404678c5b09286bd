"""`refunds events listen`: what a merchant's receiver does, small enough to read in one sitting.
Each request is verified with the official `standardwebhooks` package (signature and a timestamp
within five minutes), deduplicated by its `webhook-id` (delivery is at least once) and printed."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

BODY_LIMIT = 1_000_000
READ_SECONDS = 10


def listen(secret: str, port: int, host: str = "127.0.0.1") -> None:
    """Serve until Ctrl-C."""
    from workers.cli_kit import fail, say

    try:
        verifier = Webhook(secret)
    except Exception as err:  # the package's own errors for an empty or malformed secret
        fail("invalid_secret", f"not a whsec_ secret: {type(err).__name__}", 2)
    seen: set[str] = set()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        timeout = READ_SECONDS  # a sender that stops mid-request holds a thread this long at most

        def do_POST(self) -> None:
            given = self.headers.get("content-length") or ""
            if not given.isdigit():
                self._answer(411, "a content-length is required")
                return
            length = int(given)
            if length > BODY_LIMIT:
                self._answer(413, "too large")
                return
            try:
                body = self.rfile.read(length)
            except TimeoutError:
                return
            try:
                event = verifier.verify(body, dict(self.headers.items()))
            except (WebhookVerificationError, ValueError) as err:
                say(f"refused: {err}")
                self._answer(400, "not verified")
                return
            if not isinstance(event, dict):  # signed, but not an event of ours
                self._answer(400, "not an event")
                return
            webhook_id = self.headers.get("webhook-id", "")
            with lock:
                again = webhook_id in seen
                seen.add(webhook_id)
            data = event.get("data", {})
            refund = data.get("refund", {}) if isinstance(data, dict) else {}
            said = "again (already seen, ignored)" if again else json.dumps(data, sort_keys=True)
            say(f"{event.get('type')} {refund.get('request_id')} {refund.get('status')} {webhook_id}: {said}")
            self._answer(204, "")

        def _answer(self, status: int, text: str) -> None:
            self.send_response(status)
            self.send_header("content-length", str(len(text)))
            self.end_headers()
            self.wfile.write(text.encode())

        def log_message(self, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            """A sender that hangs up mid-answer is one line, never a traceback."""
            say(f"dropped: {client_address[0]}:{client_address[1]} ({sys.exc_info()[1]!r})")

    try:
        server = Server((host, port), Handler)
    except OSError as err:
        fail("port_taken", f"{host}:{port} cannot be listened on ({err.strerror}): pass --port", 2)
    say(f"listening on http://{host}:{port}/ (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
