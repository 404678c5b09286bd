"""The risk model: trained on the merchant's own review decisions, reported on held-out ones, saved as
JSON and scored beside the rules for new refunds."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.db import audit
from adapters.db.engine import Database
from domain.contracts import AuditEvent, PaymentRecord, RefundPolicy, RiskSignals
from domain.money import Money
from domain.requests import RefundRequest
from domain.risk import assess_risk
from domain.risk_model import FEATURES, RiskModel, rejection_percent
from domain.status import PaymentState, Provider
from sandbox.stripe.control import SandboxControl
from tests.conftest import Stack, starter_for, worker_for
from tests.flows import cli
from tests.helpers import eventually, refund_body, signed_headers, unique
from workers.risk_training import TrainingError, train

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def model_on(feature: str, weight: str, intercept: str = "0") -> RiskModel:
    """A model that looks at one feature only."""
    return RiskModel(
        version="hand-made",
        means=tuple(Decimal(0) for _ in FEATURES),
        scales=tuple(Decimal(1) for _ in FEATURES),
        coefficients=tuple(Decimal(weight) if name == feature else Decimal(0) for name in FEATURES),
        intercept=Decimal(intercept),
    )


def features(**values: int) -> dict[str, Decimal]:
    return {name: Decimal(values.get(name, 0)) for name in FEATURES}


def test_the_model_scores_exactly_and_deterministically() -> None:
    model = model_on("customer_requests_30d", "1")
    assert rejection_percent(model, features()) == 50
    assert rejection_percent(model, features(customer_requests_30d=2)) == 88  # 1 / (1 + e^-2)
    assert rejection_percent(model, features(customer_requests_30d=-3)) == 5
    assert rejection_percent(model, features(customer_requests_30d=10**6)) == 100  # clamped, finite


def test_the_model_adds_its_estimate_as_a_reason() -> None:
    request = RefundRequest(
        request_id="r1", provider=Provider.STRIPE, payment_reference="pi_1", reason_code="x", order_id="o"
    )
    payment = PaymentRecord(
        provider=Provider.STRIPE,
        reference="pi_1",
        state=PaymentState.CAPTURED,
        currency="EUR",
        amount_captured=10_000,
    )
    amount = Money(value=1_000, currency="EUR")
    busy = RiskSignals(customer_requests_30d=3)
    rules_only = assess_risk(request, payment, amount, RefundPolicy(), busy, NOW)
    with_model = assess_risk(
        request, payment, amount, RefundPolicy(), busy, NOW, model_on("customer_requests_30d", "1")
    )
    [reason] = [r for r in with_model.reasons if r.code == "model"]
    assert (reason.points, with_model.score) == (28, rules_only.score + 28)  # 95% of 30 points
    assert with_model.features["customer_requests_30d"] == "3"


def record_decisions(db: Database, count: int) -> None:
    """Past reviews: reviewers rejected customers who kept asking, and approved the others."""
    for i in range(count):
        rejected = i % 3 == 0
        values = {name: "0" for name in FEATURES}
        values |= {
            "rule_score": str(55 + i % 7 if rejected else 30 + i % 11),
            "customer_requests_30d": str(4 + i % 3 if rejected else i % 2),
            "amount_major": str(100 + i),
            "days_since_purchase": str(i % 40),
        }
        event = AuditEvent(
            key="review",
            step="review_decided",
            actor="reviewer:alice",
            reason_code="rejected" if rejected else "approved",
            detail={f"feature:{name}": value for name, value in values.items()},
            at=NOW - timedelta(days=1),
        )
        with db.transaction() as session:
            audit.record(session, unique("past"), "pi_past", [event])
    # a decision the policy took at a deadline is no reviewer's judgement: left out of training
    timeout = AuditEvent(
        key="review", step="review_decided", actor="policy:v1", reason_code="rejected", at=NOW
    )
    with db.transaction() as session:
        audit.record(session, unique("past"), "pi_past", [timeout])


def test_training_learns_from_reviews_and_reports_held_out_quality(tmp_path: Path) -> None:
    db = Database.connect(f"sqlite:///{tmp_path / 'history.db'}")
    try:
        with pytest.raises(TrainingError, match="need 20"):
            train(db, tmp_path)
        record_decisions(db, 60)
        report = train(db, tmp_path)
    finally:
        db.dispose()

    assert (report.samples, report.rejections) == (60, 20)
    assert float(report.model.metrics["accuracy"]) >= 0.9 and report.model.metrics["held_out"] == "15"
    saved = RiskModel.model_validate_json(report.path.read_text())
    assert saved == report.model and json.loads(report.path.read_text())["version"] == report.model.version
    keeps_asking = features(rule_score=60, customer_requests_30d=5, amount_major=120)
    asks_once = features(rule_score=35, customer_requests_30d=0, amount_major=120)
    assert rejection_percent(saved, keeps_asking) > 80 > 20 > rejection_percent(saved, asks_once)


async def test_a_trained_model_scores_new_refunds(
    stack: Stack, sandbox: SandboxControl, tmp_path: Path
) -> None:
    history = f"sqlite:///{tmp_path / 'history.db'}"
    db = Database.connect(history)
    record_decisions(db, 40)
    db.dispose()
    trained = await cli(stack, "risk", "train", "--out", str(tmp_path), REFUNDS_DATABASE_URL=history)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert "held-out quality: held_out 10, accuracy" in trained.stdout
    [model_file] = tmp_path.glob("model-*.json")

    payment = sandbox.seed_stripe_payment(amount=5_000, currency="EUR")
    request_id = unique("scored")
    handle = stack.client.get_workflow_handle(f"refund-{request_id}")
    async with (
        starter_for(stack, risk_model_file=model_file) as (settings, http),
        worker_for(stack, settings),
    ):
        body = refund_body(request_id, payment, amount=500)
        assert (await http.post("/v1/refund-requests", content=body, headers=signed_headers(body))).is_success
        await eventually(
            lambda: handle.describe(), lambda d: d.status is not None and d.status.name == "COMPLETED"
        )
        view = (await http.get(f"/v1/refunds/{request_id}")).json()
    [reason] = [r for r in view["risk"]["reasons"] if r["code"] == "model"]
    assert reason["detail"].startswith("model model-")
