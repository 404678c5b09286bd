"""JSON logs carry the refund, its workflow and the PSP's request id."""

from __future__ import annotations

import json
import logging
import sys

from workers.logs import JsonFormatter


def record(message: str, **extra: object) -> logging.LogRecord:
    entry = logging.LogRecord("refunds.test", logging.INFO, __file__, 1, message, (), None)
    entry.__dict__.update(extra)
    return entry


def test_an_activity_log_line_names_the_refund_and_the_psp_request() -> None:
    line = JsonFormatter().format(
        record(
            "psp refund succeeded",
            temporal_activity={
                "workflow_id": "refund-order-77",
                "activity_type": "refund_at_psp",
                "attempt": 2,
            },
            psp_request_id="req_123",
            provider="stripe",
        )
    )
    parsed = json.loads(line)
    assert {
        k: parsed[k] for k in ("request_id", "workflow_id", "psp_request_id", "activity_type", "attempt")
    } == {
        "request_id": "order-77",
        "workflow_id": "refund-order-77",
        "psp_request_id": "req_123",
        "activity_type": "refund_at_psp",
        "attempt": 2,
    }
    assert (parsed["level"], parsed["message"], parsed["provider"]) == (
        "info",
        "psp refund succeeded",
        "stripe",
    )


def test_errors_keep_their_traceback_in_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        entry = record("failed")
        entry.exc_info = sys.exc_info()
    parsed = json.loads(JsonFormatter().format(entry))
    assert "ValueError: boom" in parsed["error"] and "\n" not in JsonFormatter().format(entry)
