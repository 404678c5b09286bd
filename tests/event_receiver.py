"""A merchant's endpoint for the tests: a real HTTP server on a free port that keeps every request
it is sent and answers what the test tells it to (per call, in order; 204 once the list runs out)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    received: list[Received] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)  # status codes to answer next, in order
    location: str | None = None  # where a 3xx answer points
    delay_seconds: float = 0.0  # how long it takes to answer (a slow ERP)
    answer_body: bytes = b"ok"
    rule: Callable[[bytes], int] | None = None  # the status for a body, before `answers`
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_status(self) -> int:
        with self.lock:
            return self.answers.pop(0) if self.answers else 204

    def ids(self) -> list[str]:
        with self.lock:
            return [request.headers["webhook-id"] for request in self.received]


@contextmanager
def receiver(path: str = "/hooks") -> Iterator[Receiver]:
    state: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            keeper = state["receiver"]
            if keeper.delay_seconds:
                threading.Event().wait(keeper.delay_seconds)  # an endpoint's own slowness
            with keeper.lock:
                keeper.received.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
            status = keeper.rule(body) if keeper.rule else keeper.next_status()
            self.send_response(status)
            if 300 <= status < 400 and keeper.location:
                self.send_header("location", keeper.location)
            self.send_header("content-length", str(len(keeper.answer_body)))
            self.end_headers()
            self.wfile.write(keeper.answer_body)

        def log_message(self, *args: Any) -> None:  # the tests' output stays theirs
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["receiver"] = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}{path}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["receiver"]
    finally:
        server.shutdown()
        server.server_close()
