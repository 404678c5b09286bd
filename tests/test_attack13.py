"""Adversarial review of issue 13 (input validation, unsafe defaults, per-merchant request ids), as a
forger, a replayer, a careless client and an unlucky operator: each test pins a weakness found (its
docstring says what it was), the last one an attack that was already refused."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import repo_root

NO_PSP = "http://127.0.0.1:9"  # globex's Stripe account, never called by these tests


# ---- unsafe starts -------------------------------------------------------------------------------


def test_settings_that_cannot_be_loaded_are_refused_in_one_line_that_shows_no_secret() -> None:
    """Production without an inbound secret was a 65-line traceback, exit 1, whose last lines echoed
    the settings' values (REFUNDS_REVIEW_SIGNING_KEY among them) into the log."""
    signing_key = "a-review-signing-secret-nobody-may-see-0123"
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFUNDS_")}
    env |= {"REFUNDS_ENVIRONMENT": "production", "REFUNDS_REVIEW_SIGNING_KEY": signing_key}
    run = subprocess.run(
        [sys.executable, "-m", "workers.cli", "serve"],
        env=env,
        cwd=repo_root(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = run.stdout + run.stderr
    assert signing_key not in output and "nobody-may-see" not in output
    lines = output.strip().splitlines()
    assert (run.returncode, len(lines)) == (2, 1), output
    assert "REFUNDS_INBOUND_WEBHOOK_SECRET" in lines[0]
