"""HTTP header facts every PSP adapter reads, whatever mapping its SDK hands back."""

from __future__ import annotations

from typing import Any


def header(headers: Any, name: str) -> str | None:
    """Case-insensitive lookup on any mapping-like headers object; None when absent."""
    if not headers or not hasattr(headers, "items"):
        return None
    wanted = name.lower()
    for key, value in headers.items():
        if str(key).lower() == wanted:
            return str(value)
    return None


def retry_after_in_seconds(headers: Any) -> float | None:
    """`Retry-After` in seconds (the delta form PSPs send); None when absent or unreadable."""
    raw_seconds = header(headers, "Retry-After")
    try:
        return float(raw_seconds) if raw_seconds is not None else None
    except ValueError:
        return None
