"""`refunds risk train`: a logistic regression on the merchant's own review outcomes.

Each human review decision in the audit trail carries the features the risk step saw (`feature:*`);
approvals are 0, rejections 1, and decisions the policy took at a deadline are left out. A quarter of
the decisions is held out to report the model's quality; the model is saved as JSON that the service
passes to new refunds (REFUNDS_RISK_MODEL_FILE). scikit-learn is the optional `ml` extra.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from adapters.db import audit
from adapters.db.engine import Database
from domain.risk_model import FEATURES, RiskModel


class TrainingError(Exception):
    code = "not_enough_data"


class NotInstalled(TrainingError):
    code = "not_installed"


@dataclass(frozen=True)
class TrainingReport:
    model: RiskModel
    path: Path
    samples: int
    rejections: int


def decisions(db: Database) -> tuple[list[list[Decimal]], list[int]]:
    """Feature rows and labels (1 = rejected) of every human review decision."""
    rows: list[list[Decimal]] = []
    labels: list[int] = []
    with db.transaction() as session:
        for entry in audit.entries_with_step(session, "review_decided"):
            if entry.actor.startswith("policy:") or entry.reason_code not in ("approved", "rejected"):
                continue
            try:
                rows.append([Decimal(entry.detail[f"feature:{name}"]) for name in FEATURES])
            except KeyError:
                continue  # decided before features were recorded
            labels.append(int(entry.reason_code == "rejected"))
    return rows, labels


def _exact(value: object) -> str:
    """A fitted parameter as the shortest decimal string that round-trips (numpy scalar included)."""
    return repr(float(value))  # type: ignore[arg-type]


def train(db: Database, out_dir: Path, *, min_samples: int = 20, seed: int = 7) -> TrainingReport:
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import accuracy_score, roc_auc_score
        from sklearn.model_selection import train_test_split
        from sklearn.preprocessing import StandardScaler
    except ImportError as err:  # the optional extra
        raise NotInstalled("scikit-learn is not installed: pip install -e '.[ml]'") from err

    rows, labels = decisions(db)
    rejections = sum(labels)
    if len(rows) < min_samples or rejections < 2 or len(rows) - rejections < 2:
        raise TrainingError(
            f"{len(rows)} review decisions ({rejections} rejections); need {min_samples} with at least "
            "two of each outcome"
        )
    matrix = [[float(value) for value in row] for row in rows]
    train_x, test_x, train_y, test_y = train_test_split(
        matrix, labels, test_size=0.25, stratify=labels, random_state=seed
    )
    scaler = StandardScaler().fit(train_x)
    classifier = LogisticRegression(max_iter=1000).fit(scaler.transform(train_x), train_y)
    held_out = scaler.transform(test_x)
    metrics = {
        "held_out": str(len(test_y)),
        "accuracy": f"{accuracy_score(test_y, classifier.predict(held_out)):.3f}",
        "roc_auc": f"{roc_auc_score(test_y, classifier.predict_proba(held_out)[:, 1]):.3f}",
    }
    parameters = {
        "means": [_exact(v) for v in scaler.mean_],
        "scales": [_exact(v) for v in scaler.scale_],
        "coefficients": [_exact(v) for v in classifier.coef_[0]],
        "intercept": _exact(classifier.intercept_[0]),
    }
    digest = hashlib.sha256(json.dumps(parameters, sort_keys=True).encode()).hexdigest()[:8]
    version = f"model-{datetime.now(UTC):%Y%m%d%H%M%S}-{digest}"
    model = RiskModel.model_validate({"version": version, "metrics": metrics, **parameters})
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{version}.json"
    path.write_text(model.model_dump_json(indent=2))
    return TrainingReport(model=model, path=path, samples=len(rows), rejections=rejections)
