"""Product metrics for `/metrics` (Prometheus text format)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

REFUND_REQUESTS = Counter(
    "refunds_requests_total", "Refund requests by outcome", ["outcome"], registry=REGISTRY
)
WEBHOOK_FAILURES = Counter(
    "refunds_webhook_verification_failures_total",
    "Webhook deliveries refused at verification",
    ["source", "code"],
    registry=REGISTRY,
)
WEBHOOK_REPLAYS = Counter(
    "refunds_webhook_replays_total",
    "Verified PSP events seen before: acknowledged, not signalled again",
    ["source"],
    registry=REGISTRY,
)
ACK_SECONDS = Histogram(
    "refunds_request_ack_seconds",
    "Time to acknowledge a refund request",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
    registry=REGISTRY,
)
REVIEW_QUEUE_DEPTH = Gauge(
    "refunds_review_queue_depth", "Refunds waiting for a human decision", registry=REGISTRY
)
FRAUD_WARNINGS = Counter(
    "refunds_early_fraud_warnings_total",
    "Verified early fraud warnings (each once) by what policy did: received, then refunded, held "
    "for review or recorded",
    ["source", "outcome"],
    registry=REGISTRY,
)
CLIENT_REQUESTS = Counter(
    "refunds_client_requests_total",
    "API clients' refund requests by client and outcome: accepted, replayed, held at intake "
    "(client_limit, client_budget) or refused (reason_not_allowed)",
    ["client", "outcome"],
    registry=REGISTRY,
)
