"""Logs as JSON lines (REFUNDS_LOG_FORMAT=json) carrying the refund, its workflow and the PSP's
request id, so one refund's story can be pulled out of every process's logs."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from domain.naming import request_id_from_workflow_id

# Fields a log call may pass in `extra` that belong in the line as they are.
CONTEXT_FIELDS = ("request_id", "workflow_id", "psp_request_id", "provider", "status", "code")


def _temporal_context(record: logging.LogRecord) -> dict[str, Any]:
    """Temporal's activity and workflow loggers put their info on the record; keep what ops need."""
    context: dict[str, Any] = {}
    for attribute in ("temporal_activity", "temporal_workflow"):
        info = getattr(record, attribute, None)
        if isinstance(info, dict):
            workflow_id = info.get("workflow_id")
            if workflow_id:
                context["workflow_id"] = workflow_id
                context["request_id"] = request_id_from_workflow_id(str(workflow_id))
            for key in ("activity_type", "workflow_type", "attempt"):
                if key in info:
                    context[key] = info[key]
    return context


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_temporal_context(record),
        }
        for field in CONTEXT_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                line[field] = value
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(log_format: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
