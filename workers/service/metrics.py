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
# Money refunded on early fraud warnings and the chargeback fees that avoided, per merchant and
# currency in minor units. Gauges read from the lasting record at each scrape, not counters bumped
# when a refund succeeds: the service does not learn of every success (a refund the PSP confirms
# at once, or by the worker's poll, sends it nothing), a counter would need redeliveries kept apart
# and restarts would reset it, and a refund the PSP fails afterwards must drop out again, which a
# counter cannot do. Every replica reports the same figures: aggregate them with max, never sum.
REFUNDED_ON_WARNINGS = Gauge(
    "refunds_refunded_on_warnings_minor",
    "Money refunded on early fraud warnings (succeeded, not failed since), minor units",
    ["merchant", "currency"],
    registry=REGISTRY,
)
EVENTS_OWED = Gauge(
    "refunds_event_deliveries_owed",
    "Events a merchant's endpoint is still owed (pending delivery or retry)",
    ["endpoint", "merchant"],
    registry=REGISTRY,
)
EVENTS_OLDEST_OWED = Gauge(
    "refunds_event_oldest_owed_seconds",
    "Age of the oldest event an endpoint is still owed: alert on it, an endpoint is falling behind",
    ["endpoint", "merchant"],
    registry=REGISTRY,
)
EVENT_ENDPOINT_ENABLED = Gauge(
    "refunds_event_endpoint_enabled",
    "1 while an endpoint is sent to, 0 once disabled (three days of failures, or by hand)",
    ["endpoint", "merchant"],
    registry=REGISTRY,
)
CHARGEBACK_FEES_AVOIDED = Gauge(
    "refunds_chargeback_fees_avoided_minor",
    "Chargeback fees the refunds on early fraud warnings avoided (the policy's chargeback_fee each), "
    "minor units; absent for a currency whose fee the policy does not set",
    ["merchant", "currency"],
    registry=REGISTRY,
)
