"""The chaos run's small form: 24 refunds across the three PSPs, PSP faults, webhook replays and a
SIGKILL of the worker, the service and the Temporal server, then every end-state invariant; at the end
Temporal restarts on an empty database and four settled refunds are resent and read back.

Seed 105 draws every kind of refund: reviewed (four eyes with two names typed into the Temporal UI,
one approved from the UI alone, rejected), returned goods (with misfiled and unbound receipts), resent
early and late, pending and failed at the PSP, failed after success at Adyen and at Stripe (while
awaiting returned goods), and an Adyen refund whose notifications are replayed in a storm before and
after its late failure. Every run, however small, also forges outcome signals (to a refund awaiting
its PSP and to succeeded ones awaiting goods), replays proven ones into another refund and into their
own, fails a Stripe and an Adyen dashboard refund later (and leaves one standing), raises a fraud
warning after a partial refund on Stripe and on Adyen, asks again after reversed late failures, and
has a hostile second merchant sign, with its own PSP accounts, events naming refunds and payments of
the first on every PSP.

It runs `bench/chaos.py` as a process of its own (its own Temporal server, sandbox, worker and
service on free ports), with a fixed seed: a failure prints the seed, the broken invariants and the
refunds they name, and `python -m bench.chaos --seed 105 --count 24 --kills 3 --retention 4` replays it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import repo_root

SEED = 105
RUN_DEADLINE_SECONDS = 200


@pytest.mark.timeout(RUN_DEADLINE_SECONDS + 30)
def test_refunds_survive_faults_and_kills_with_every_invariant_intact() -> None:
    argv = [sys.executable, "-m", "bench.chaos", "--seed", str(SEED), "--count", "24", "--kills", "3"]
    argv += ["--step-timeout", "90", "--settle-timeout", "60", "--retention", "4"]
    if os.environ.get("REFUNDS_TEST_DATABASE") == "sqlite":
        argv.append("--sqlite")
    env = {**os.environ, "PYTHONPATH": str(repo_root())}
    env = {k: v for k, v in env.items() if not k.startswith("REFUNDS_") or k == "REFUNDS_TEST_DATABASE"}
    run = subprocess.run(
        argv, cwd=repo_root(), env=env, capture_output=True, text=True, timeout=RUN_DEADLINE_SECONDS
    )
    report = run.stdout + run.stderr[-3000:]
    lines = [line for line in run.stdout.splitlines() if line.startswith("summary ")]
    assert lines, report
    summary = json.loads(lines[-1].removeprefix("summary "))
    assert sum(summary["kills"].values()) == 3, report
    assert summary["faults"] > 0, report
    assert summary["storm_replays"] >= 50 and summary["late_failures"].get("stripe"), report
    assert summary["misfiled_receipts"] > 0 and summary["ui_signals"] > 0, report
    assert summary["retention_sample"] == 4, report
    assert summary["forged_signals"] > 0 and summary["replayed_signals"]["own"] > 0, report
    assert summary["replayed_signals"]["elsewhere"] > 0, report
    assert all(summary["dashboard_refunds"].get(psp, {}).get("failed") for psp in ("stripe", "adyen")), report
    assert summary["fraud_warnings"].get("stripe") and summary["fraud_warnings"].get("adyen"), report
    assert summary["extra_refunds"].get("again"), report
    hostile = summary["hostile_tenant"]
    assert set(hostile["refunds"]) == {"stripe", "adyen", "paypal"}, report
    assert {"dispute", "failure", "dashboard", "warning"} <= set(hostile["events"]), report
    broken = {number: verdict for number, verdict in summary["invariants"].items() if "BROKEN" in verdict}
    assert not broken and run.returncode == 0, report
