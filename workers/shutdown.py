"""SIGINT/SIGTERM as an asyncio event, so processes stop cleanly instead of dying mid-step."""

from __future__ import annotations

import asyncio
import signal


def shutdown_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop
