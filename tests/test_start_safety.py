"""Only a development machine runs on dev defaults: `refunds serve` and `refunds worker` refuse, in a
line naming the setting for each, an unset or unknown environment, published dev values, the deploy
examples' placeholders, and a PSP configured without the secret that proves its webhooks: every
problem at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from domain.policy_file import PolicyError
from domain.reviewer_tokens import token_digest
from tests.conftest import repo_root
from tests.helpers import SAFE
from workers.psp_wiring.adyen import SANDBOX_ADYEN_HMAC_KEY
from workers.psp_wiring.stripe import SANDBOX_STRIPE_WEBHOOK_SECRET
from workers.safety import start_problems, start_warning
from workers.settings import DEV_REVIEW_SIGNING_SECRET, DEV_REVIEWER_TOKEN, Settings


def test_a_production_start_with_real_values_is_safe() -> None:
    psps = {
        "stripe_api_key": "sk_live_x",
        "stripe_webhook_secret": "whsec_a-real-one",
        "adyen_api_key": "ak",
        "adyen_hmac_key": "0123456789ABCDEF" * 4,
        "paypal_client_id": "id",
        "paypal_webhook_id": "WH-1",
    }
    assert start_problems(Settings(**SAFE, **psps)) == []  # type: ignore[arg-type]
    assert start_problems(Settings(environment="dev")) == []  # a development machine, said so


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"inbound_webhook_secret": "change-me"}, "REFUNDS_INBOUND_WEBHOOK_SECRET"),
        ({"review_signing_key": "change-me-to-32-or-more-random-characters"}, "REFUNDS_REVIEW_SIGNING_KEY"),
        ({"reviewer_tokens": f"ops:sha256:{token_digest(DEV_REVIEWER_TOKEN)}"}, "REFUNDS_REVIEWER_TOKENS"),
        ({"stripe_api_key": "sk_live_x"}, "REFUNDS_STRIPE_WEBHOOK_SECRET"),
        ({"adyen_api_key": "ak", "adyen_hmac_key": ""}, "REFUNDS_ADYEN_HMAC_KEY"),  # a forged CAPTURE passed
        ({"adyen_api_key": "ak", "adyen_hmac_key": "ABCD"}, "REFUNDS_ADYEN_HMAC_KEY"),
        ({"adyen_api_key": "ak", "adyen_hmac_key": "zz" * 32}, "REFUNDS_ADYEN_HMAC_KEY"),
        ({"paypal_client_id": "id"}, "REFUNDS_PAYPAL_WEBHOOK_ID"),
        ({"payload_keys": ""}, "REFUNDS_PAYLOAD_KEYS"),  # histories would show customer data in clear
        ({"inbound_webhook_secret": "CHANGE-ME-please"}, "REFUNDS_INBOUND_WEBHOOK_SECRET"),
        # the sandbox's credentials are published in this repository
        ({"stripe_api_key": "sk_live_x", "stripe_webhook_secret": SANDBOX_STRIPE_WEBHOOK_SECRET}, "sandbox"),
        ({"adyen_api_key": "ak", "adyen_hmac_key": SANDBOX_ADYEN_HMAC_KEY.lower()}, "REFUNDS_ADYEN_HMAC_KEY"),
    ],
)
def test_an_unsafe_setting_is_named(changes: dict[str, str], named: str) -> None:
    problems = start_problems(Settings(**{**SAFE, **changes}))  # type: ignore[arg-type]
    assert len(problems) == 1 and named in problems[0], problems


@pytest.mark.parametrize(
    "signing",
    [DEV_REVIEW_SIGNING_SECRET, f"a-review-signing-secret-of-32-chars-or-more, {DEV_REVIEW_SIGNING_SECRET}"],
    ids=["alone", "an older entry"],
)
@pytest.mark.parametrize("environment", ["production", "test"])
def test_the_dev_review_signing_secret_published_in_the_source_is_refused_outside_dev(
    signing: str, environment: str
) -> None:
    """It is 47 characters, so the length check passed: a service started on it, and anyone who read
    workers/settings.py could mint the proof of a review decision its refunds accept."""
    problems = start_problems(Settings(**{**SAFE, "environment": environment, "review_signing_key": signing}))  # type: ignore[arg-type]
    assert len(problems) == 1 and problems[0].startswith("REFUNDS_REVIEW_SIGNING_KEY"), problems
    dev = Settings(environment="dev", review_signing_key=DEV_REVIEW_SIGNING_SECRET)
    assert start_problems(dev) == []


def test_a_merchant_may_not_sign_its_requests_with_a_published_dev_value(tmp_path: Path) -> None:
    merchants = tmp_path / "merchants.toml"
    merchants.write_text(
        f'[merchants.acme]\ninbound_webhook_secret = "acme-secret,{DEV_REVIEW_SIGNING_SECRET}"\n'
    )
    problems = start_problems(Settings(**SAFE, merchants_file=merchants))  # type: ignore[arg-type]
    assert problems == ["merchant acme: inbound_webhook_secret holds a dev or example value"]


UNSAFE = {  # four problems in one start
    "review_signing_key": DEV_REVIEW_SIGNING_SECRET,
    "reviewer_tokens": f"ops:sha256:{token_digest(DEV_REVIEWER_TOKEN)}",
    "payload_keys": "",
    "stripe_api_key": "sk_live_x",
}


def test_every_unsafe_setting_is_named_at_once() -> None:
    """Only the first was: an operator fixed it, started again, and met the next one."""
    problems = start_problems(Settings(**{**SAFE, **UNSAFE}))  # type: ignore[arg-type]
    named = [problem.split(" ", 1)[0] for problem in problems]
    assert named == [
        "REFUNDS_REVIEW_SIGNING_KEY",
        "REFUNDS_REVIEWER_TOKENS",
        "REFUNDS_PAYLOAD_KEYS",
        "REFUNDS_STRIPE_WEBHOOK_SECRET",
    ], problems


def test_a_refused_start_prints_every_problem_a_line_each() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFUNDS_")}
    env |= {f"REFUNDS_{name.upper()}": value for name, value in {**SAFE, **UNSAFE}.items()}
    for command in ("serve", "worker"):
        run = subprocess.run(
            [sys.executable, "-m", "workers.cli", command],
            env=env,
            cwd=repo_root(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        lines = run.stderr.strip().splitlines()
        assert (run.returncode, len(lines)) == (2, 4), run.stdout + run.stderr
        assert all(line.startswith("unsafe_settings: REFUNDS_") for line in lines), lines
        assert DEV_REVIEW_SIGNING_SECRET not in run.stdout + run.stderr


def test_production_with_nothing_set_names_every_missing_secret_in_one_start(tmp_path: Path) -> None:
    """Before: one problem per attempt (the inbound secret, then the payload keys, then the signing
    key), three starts to learn what one could say."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFUNDS_")}
    env |= {"REFUNDS_ENVIRONMENT": "production", "REFUNDS_DATA_DIR": str(tmp_path / "data")}
    run = subprocess.run(
        [sys.executable, "-m", "workers.cli", "serve"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    named = {line.split(":")[1].split()[0] for line in run.stderr.strip().splitlines()}
    assert run.returncode == 2 and named == {
        "REFUNDS_INBOUND_WEBHOOK_SECRET",
        "REFUNDS_REVIEW_SIGNING_KEY",
        "REFUNDS_PAYLOAD_KEYS",
    }, run.stderr
    assert len(run.stderr.strip().splitlines()) == 3 and not (tmp_path / "data").exists()


def test_running_production_without_payload_encryption_is_a_named_waiver_that_warns() -> None:
    waived = Settings(**{**SAFE, "payload_keys": "", "payload_encryption_waived": True})  # type: ignore[arg-type]
    assert start_problems(waived) == []
    warning = start_warning(waived)
    assert warning is not None and "clear" in warning
    assert start_warning(Settings(**SAFE)) is None  # type: ignore[arg-type]


def test_a_start_without_an_environment_is_refused_in_one_line() -> None:
    """`refunds serve` with nothing set used to serve on the published dev secret, reads without a token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFUNDS_")}
    for command in ("serve", "worker"):
        run = subprocess.run(
            [sys.executable, "-m", "workers.cli", command],
            env=env,
            cwd=repo_root(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        lines = run.stderr.strip().splitlines()
        assert (run.returncode, len(lines)) == (2, 1), run.stdout + run.stderr
        assert "unsafe_settings" in lines[0] and "REFUNDS_ENVIRONMENT" in lines[0]


@pytest.mark.parametrize(
    ("entry", "named"),
    [
        ('inbound_webhook_secret = "change-me"\n', "merchant acme: inbound_webhook_secret"),
        (
            'inbound_webhook_secret = "acme-secret"\n[merchants.acme.adyen]\napi_key = "ak"\n'
            'merchant_account = "Acme"\nhmac_key = "ABCD"\n',
            "merchant acme: REFUNDS_ADYEN_HMAC_KEY",
        ),
        (
            'inbound_webhook_secret = "acme-secret"\n[merchants.acme.stripe]\napi_key = "sk_live_acme"\n'
            'webhook_secret = "change-me"\n',
            "merchant acme: REFUNDS_STRIPE_WEBHOOK_SECRET",
        ),
    ],
)
def test_each_merchants_own_accounts_are_held_to_the_same_rules(
    tmp_path: Path, entry: str, named: str
) -> None:
    merchants = tmp_path / "merchants.toml"
    merchants.write_text(f"[merchants.acme]\n{entry}")
    problems = start_problems(Settings(**SAFE, merchants_file=merchants))  # type: ignore[arg-type]
    assert len(problems) == 1 and problems[0].startswith(named), problems


def test_tracing_without_its_extra_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """The setting would otherwise fail on import inside the running process."""
    traced = {**SAFE, "otel_endpoint": "http://collector:4318/v1/traces"}
    assert start_problems(Settings(**traced)) == []  # type: ignore[arg-type]  # the extra is installed here
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    (problem,) = start_problems(Settings(**traced))  # type: ignore[arg-type]
    assert "REFUNDS_OTEL_ENDPOINT" in problem and "[otel]" in problem


def test_a_merchants_file_may_not_redefine_the_default_merchant(tmp_path: Path) -> None:
    merchants = tmp_path / "merchants.toml"
    merchants.write_text('[merchants.default]\ninbound_webhook_secret = "another-secret"\n')
    with pytest.raises(PolicyError, match="default merchant"):
        Settings(**SAFE, merchants_file=merchants).merchant_profiles()  # type: ignore[arg-type]


def test_one_token_may_not_prove_reviewers_of_two_scopes(tmp_path: Path) -> None:
    """Whichever scope is found first would act: a merchant's reviewer as the installation's."""
    entry = f"sha256:{token_digest('one-token')}"
    merchants = tmp_path / "merchants.toml"
    merchants.write_text(
        f'[merchants.acme]\ninbound_webhook_secret = "acme-secret"\nreviewer_tokens = "carol:{entry}"\n'
    )
    shared = Settings(**SAFE, merchants_file=merchants, reviewer_tokens=f"alice:{entry}")  # type: ignore[arg-type]
    (problem,) = start_problems(shared)
    assert "reviewer carol's token is also one of the installation's" in problem
    apart = Settings(**SAFE, merchants_file=merchants, reviewer_tokens=f"alice:sha256:{token_digest('x')}")  # type: ignore[arg-type]
    assert start_problems(apart) == []


def test_two_merchants_may_not_share_a_psp_account(tmp_path: Path) -> None:
    """Globex configured with the default merchant's Adyen merchant account (its own HMAC key) would
    sign notifications the default merchant's payments answer to; the same webhook secret likewise."""
    merchants = tmp_path / "merchants.toml"
    default_adyen = {
        "adyen_api_key": "ak",
        "adyen_hmac_key": "0123456789ABCDEF" * 4,
        "adyen_merchant_account": "ShopECOM",
    }
    merchants.write_text(
        '[merchants.globex]\ninbound_webhook_secret = "globex-secret"\n'
        '[merchants.globex.adyen]\napi_key = "gk"\nhmac_key = "' + "FEDCBA9876543210" * 4 + '"\n'
        'merchant_account = "ShopECOM"\n'
    )
    problems = start_problems(Settings(**SAFE, **default_adyen, merchants_file=merchants))  # type: ignore[arg-type]
    assert problems == ["merchant globex: REFUNDS_ADYEN_MERCHANT_ACCOUNT is also default's account"], problems
    merchants.write_text(merchants.read_text().replace('"ShopECOM"', '"GlobexECOM"'))
    assert start_problems(Settings(**SAFE, **default_adyen, merchants_file=merchants)) == []  # type: ignore[arg-type]


@pytest.mark.parametrize("environment", ["prod", "staging", "bogus"])
def test_an_environment_nobody_reads_is_refused_by_every_command(environment: str) -> None:
    """Before, `REFUNDS_ENVIRONMENT=bogus` was taken as "not dev" by every command but a start."""
    import subprocess
    import sys

    from tests.conftest import repo_root

    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(repo_root()), "REFUNDS_ENVIRONMENT": environment}
    done = subprocess.run(
        [sys.executable, "-m", "workers.cli", "status", "demo-1"], env=env, capture_output=True, text=True
    )
    said = done.stdout + done.stderr
    assert done.returncode == 2, said
    assert said.startswith(f"invalid_settings: REFUNDS_ENVIRONMENT: '{environment}' is none of dev, test"), (
        said
    )
