"""The FastAPI application and `refunds serve`."""

from __future__ import annotations

import logging
import signal

import uvicorn
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from adapters.db.engine import Database
from workers.listening import bound
from workers.psps import build_directory
from workers.review_key_rotation import rotation_warnings
from workers.service import (
    client_api,
    codec,
    health,
    refund_requests,
    refunds,
    returns,
    reviewers,
    webhooks,
)
from workers.service.body_limits import BodyLimit
from workers.service.deps import Services
from workers.service.errors import install_error_handlers
from workers.settings import Settings
from workers.temporal import connect

log = logging.getLogger("refunds.service")


def create_app(services: Services) -> FastAPI:
    app = FastAPI(
        title="Refunds",
        summary="Signed refund requests in; exactly-once PSP refunds, ledger and audit out.",
        version="0.1.0",
    )
    app.state.services = services
    install_error_handlers(app)
    if services.settings.codec_cors_origins:
        # the Temporal UI calls the codec server from the browser
        app.add_middleware(
            CORSMiddleware,
            allow_origins=services.settings.codec_cors_origins.split(","),
            allow_methods=["POST"],
            allow_headers=["Authorization", "Content-Type", "X-Namespace"],
            allow_credentials=True,  # the reviewer's codec session cookie (/codec/login)
        )
    for module in (refund_requests, client_api, refunds, reviewers, returns, webhooks, codec, health):
        app.include_router(module.router)
    app.add_middleware(BodyLimit, settings=services.settings)
    return app


async def serve(settings: Settings) -> None:
    """`refunds serve`: the HTTP service against REFUNDS_TEMPORAL_ADDRESS and REFUNDS_DATABASE_URL."""
    listener = bound(settings.http_host, settings.http_port, "REFUNDS_HTTP_PORT")  # first: a taken port
    db = Database.connect(settings.database_url)
    services = Services(settings, db, await connect(settings), build_directory(settings, db))
    # a rotation that dropped the key waiting refunds know strands them until their deadline: say so
    for warning in await rotation_warnings(db, services.temporal, services.review_keys):
        print(f"warning: {warning}", flush=True)
    config = uvicorn.Config(
        create_app(services),
        host=settings.http_host,
        port=settings.http_port,
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    # On SIGTERM/SIGINT uvicorn stops accepting, finishes the requests in flight, then re-raises the
    # signal to the handler that was there before: this one, so a drained service exits 0.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: setattr(server, "should_exit", True))
    print(f"refunds service listening on http://{settings.http_host}:{settings.http_port}", flush=True)
    await server.serve(sockets=[listener])
    db.dispose()
