"""A fast receiver for `bench/events.py`: answers 204 at once and appends, per event, the time it
arrived and its `webhook-id` and body to a file (read when the run ends).

    python -m bench.event_sink PORT FILE
"""

from __future__ import annotations

import sys
import time
from typing import Any

import uvicorn


def app_writing_to(path: str) -> Any:
    sink = open(path, "a", buffering=1)  # noqa: SIM115  # open for the server's life

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        arrived = time.time()
        webhook_id = dict(scope["headers"]).get(b"webhook-id", b"").decode()
        sink.write(f"{arrived}\t{webhook_id}\t{body.decode()}\n")
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


if __name__ == "__main__":
    port, path = int(sys.argv[1]), sys.argv[2]
    uvicorn.run(app_writing_to(path), host="127.0.0.1", port=port, log_level="error", access_log=False)
