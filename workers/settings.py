"""All configuration, from `REFUNDS_*` environment variables (and an optional `.env`)."""

from __future__ import annotations

import fcntl
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from dotenv import dotenv_values
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain import identity
from domain.allocation import ShippingPolicy
from domain.contracts import FraudWarningPolicy, RefundPolicy
from domain.naming import DEFAULT_TASK_QUEUE, MERCHANT_ID_PATTERN
from domain.policy_file import PolicyError, parse_policy
from domain.reviewer_tokens import HASHED, parse_entries, reviewer_for
from domain.risk_model import RiskModel
from workers.merchants import MerchantProfile, load_merchants
from workers.psp_wiring import PspSettings

DEV_INBOUND_SECRET = "dev-inbound-secret-change-me"
_ORIGIN = re.compile(r"https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?")  # as browsers send it


# The built-in policy's amounts are euros: the minor units of each currency one euro is roughly worth.
# A policy file's [review.currencies] replaces the table; a currency in neither is always reviewed.
BUILTIN_REVIEW_CURRENCIES: dict[str, int] = {
    "EUR": 100,
    "USD": 110,
    "GBP": 85,
    "CHF": 95,
    "SEK": 1_150,
    "NOK": 1_170,
    "DKK": 746,
    "PLN": 430,
    "CZK": 2_500,
    "HUF": 39_500,
    "CAD": 150,
    "AUD": 165,
    "NZD": 180,
    "SGD": 145,
    "HKD": 850,
    "CNY": 780,
    "INR": 9_000,
    "BRL": 600,
    "MXN": 2_000,
    "ZAR": 2_000,
    "JPY": 160,
    "KWD": 330,
    "BHD": 410,
    "IDR": 1_700_000,
}

ENVIRONMENTS = ("dev", "test", "production")  # REFUNDS_ENVIRONMENT: the rules each start applies
DEV_REVIEWER_TOKEN = "dev-review-token"  # `refunds dev`'s reviewer, ops, and the CLI's default there
DEV_REVIEW_SIGNING_SECRET = "dev-review-signing-secret: dev decisions only"  # unset outside dev: refused
# Anyone who reads this file knows them: outside dev no secret may be one (workers/safety.py)
PUBLISHED_DEV_SECRETS = frozenset({DEV_INBOUND_SECRET, DEV_REVIEWER_TOKEN, DEV_REVIEW_SIGNING_SECRET})


DEV_ENV_FILE = "dev-settings.json"  # what a running `refunds dev` gave its children, in its data directory


class Settings(PspSettings, BaseSettings):  # each PSP's own settings: workers/psp_wiring/<psp>.py
    model_config = SettingsConfigDict(env_prefix="REFUNDS_", env_file=".env", extra="ignore")

    environment: str = Field(default="dev", description="dev | test | production")
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = DEFAULT_TASK_QUEUE
    data_dir: Path = Path("./.refunds")
    database_url: str = ""
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    merchant_id: str = "default"

    inbound_webhook_secret: str = DEV_INBOUND_SECRET
    reviewer_tokens: str = Field(
        default="",
        description="name:sha256:<hex of the token> entries, comma-separated, for the HTTP review "
        "endpoints (`refunds reviewer-token NAME` makes one); plain name:token only outside production",
    )
    operator: str = Field(
        default="", description="who the CLI acts as when --operator is not given (retry, receive)"
    )
    reviewer_token: str = Field(
        default="",
        description="the CLI's reviewer token: `refunds approve`/`reject` act through the service as "
        "the reviewer it names (in dev, the dev reviewer's token when unset)",
    )
    service_url: str = Field(
        default="", description="where the CLI reaches the service (unset: http://<http_host>:<http_port>)"
    )
    review_signing_key: str = Field(
        default="",
        description="secret(s) the service derives its review-decision signing keys from, comma-"
        "separated while rotating (the first signs; refunds accept every one's decisions); at least 32 "
        "random characters, required outside dev, never a secret shared with merchants",
    )
    ui_reviews_unverified: bool | None = Field(
        default=None,
        description="a Temporal UI decision without a proof decides a single-approval review, never "
        "towards four eyes (unset: yes outside production, no in production)",
    )

    workflow_sandbox: bool = Field(
        default=True,
        description="Run workflows in Temporal's determinism sandbox (tests always do); off trades "
        "that runtime check for about a quarter of the worker's CPU",
    )

    build_id: str = Field(
        default="",
        description="this release's build in the worker deployment (Worker Versioning); its workers get "
        "work once `refunds deploy promote` makes it current; empty: unversioned workers",
    )
    deployment_name: str = Field(default="refunds", description="the worker deployment's name")

    merchants_file: Path | None = Field(
        default=None,
        description="TOML of further merchants, each with its inbound secrets, policy and PSP "
        "accounts (see workers/merchants.py); requests name theirs in the Refund-Merchant header",
    )
    policy_file: Path | None = Field(
        default=None,
        description="TOML refund policy (review thresholds, four eyes, deadlines, returns); "
        "without one, the settings below and built-in defaults apply",
    )
    risk_model_file: Path | None = Field(
        default=None, description="a model from `refunds risk train`, scored beside the rules"
    )
    escalation_webhook_url: str = Field(
        default="", description="POSTed a JSON notice when a review waits past its escalation deadline"
    )
    event_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=60,
        description="how long a merchant's event endpoint may take to answer before the attempt fails",
    )
    review_threshold_major: int = 1_000
    shipping_policy: ShippingPolicy = ShippingPolicy.FULL_RETURN
    psp_timeout_seconds: int = 30
    confirmation_poll_seconds: int = 60
    confirmation_deadline_seconds: int = 7 * 24 * 3600

    payload_keys: str = Field(
        default="",
        description="id:base64-of-32-bytes AES keys, comma-separated, the first encrypting: workflow "
        "payloads are encrypted in Temporal's history (`refunds payload-key ID` makes one)",
    )
    payload_encryption_waived: bool = Field(
        default=False,
        description="run production without REFUNDS_PAYLOAD_KEYS (histories then hold customer data in "
        "clear); every start warns",
    )
    codec_cors_origins: str = Field(
        default="http://127.0.0.1:8233,http://localhost:8233",
        description="Temporal UI origins allowed to call the codec server (/codec), comma-separated",
    )
    psp_rate_limits: str = Field(
        default="",
        description="provider:calls-per-second, comma-separated, e.g. stripe:25,paypal:10: the most PSP "
        "calls per second across every worker (each PSP's task queue is rate-limited by Temporal)",
    )
    otel_endpoint: str = Field(
        default="", description="OTLP/HTTP traces endpoint, e.g. http://collector:4318/v1/traces (unset: off)"
    )
    otel_service_name: str = "refunds"
    log_format: str = Field(default="text", description="text | json (one object per line, with refund ids)")
    worker_metrics_port: int = Field(
        default=0, description="the worker serves Temporal SDK metrics for Prometheus here (0: off)"
    )
    worker_metrics_host: str = Field(
        default="127.0.0.1",
        description="where the worker's metrics listen: loopback unless a scraper elsewhere needs them",
    )
    max_request_bytes: int = Field(
        default=65_536, description="the largest body a refund request, receipt or review may have (413)"
    )
    max_webhook_bytes: int = Field(default=1_048_576, description="the largest PSP webhook body (413)")
    max_codec_bytes: int = Field(
        default=4_194_304, description="the largest payload batch the codec server decodes (413)"
    )
    sandbox_port: int = 12111
    temporal_ui_port: int = 8233

    @field_validator(
        "ui_reviews_unverified", "merchants_file", "policy_file", "risk_model_file", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """`NAME=` (as `.env.example` has it) leaves an optional setting unset, not a path "."."""
        return None if value == "" else value

    @field_validator("environment")
    @classmethod
    def _known_environment(cls, environment: str) -> str:
        """Which rules apply depends on it: a value nobody reads (a typo) is no environment."""
        if environment not in ENVIRONMENTS:
            raise ValueError(f"{environment!r} is none of {', '.join(ENVIRONMENTS)}")
        return environment

    @field_validator("merchant_id")
    @classmethod
    def _merchant_id(cls, merchant_id: str) -> str:
        if not re.fullmatch(MERCHANT_ID_PATTERN, merchant_id):
            raise ValueError(f"{merchant_id!r} is not a merchant id: lower case letters, digits and dashes")
        return merchant_id

    @field_validator("codec_cors_origins")
    @classmethod
    def _exact_origins(cls, configured: str) -> str:
        """The codec server allows credentials (the reviewer's session cookie): `*` would answer
        every Origin, `null` included, with itself, so only exact origins are taken, written as a
        browser sends them (no path, no trailing slash, no spaces)."""
        origins = [origin.strip().rstrip("/") for origin in configured.split(",") if origin.strip()]
        for origin in origins:
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"REFUNDS_CODEC_CORS_ORIGINS: {origin!r} is not an origin (scheme://host[:port]); "
                    "the codec server sends the reviewer's session, so '*' and 'null' are refused"
                )
        return ",".join(origins)

    @model_validator(mode="after")
    def _defaults_and_secrets(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'refunds.db').resolve()}"
        # every problem at once, each naming its setting (a start outside dev lists the rest too:
        # workers/safety.py), so an operator fixes them in one go
        problems = []
        signing = _entries(self.review_signing_key)
        if any(len(s) < 32 or s in self.inbound_secrets for s in signing) and self.environment != "dev":
            problems.append(
                "REFUNDS_REVIEW_SIGNING_KEY must be at least 32 characters and no merchant's request secret"
            )
        if len(signing) > 4:
            problems.append(
                "REFUNDS_REVIEW_SIGNING_KEY holds at most 4 secrets (the new one, then older ones)"
            )
        plain = [
            name for name, secret in parse_entries(self.reviewer_tokens) if not secret.startswith(HASHED)
        ]
        if self.environment == "production" and plain:
            problems.append(
                f"REFUNDS_REVIEWER_TOKENS holds plain tokens for {', '.join(plain)}: store "
                "name:sha256:<hex> entries (`refunds reviewer-token NAME` makes one)"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def inbound_secrets(self) -> list[str]:
        return _entries(self.inbound_webhook_secret)

    @property
    def psp_rates(self) -> dict[str, float]:  # calls per second, per provider
        rates = {}
        for entry in _entries(self.psp_rate_limits):
            provider, _, per_second = entry.partition(":")
            rates[provider.strip()] = float(per_second)
        return rates

    @property
    def configured_signing_secrets(self) -> list[str]:
        """REFUNDS_REVIEW_SIGNING_KEY's entries, as given: none when it is unset."""
        return _entries(self.review_signing_key)

    @property
    def review_signing_secrets(self) -> list[str]:
        """The service's signing secrets; outside dev it cannot start without one (the worker and
        the CLI never sign, so they need none)."""
        configured = self.configured_signing_secrets
        if configured:
            return configured
        if self.environment != "dev":
            raise PolicyError(
                "REFUNDS_REVIEW_SIGNING_KEY must be set outside dev: the service signs decisions"
            )
        return [DEV_REVIEW_SIGNING_SECRET]

    def decision_key(self) -> Ed25519PrivateKey:
        """The key the service signs review decisions with; workflows hold its public half."""
        return self.decision_keys()[0]

    def decision_keys(self) -> list[Ed25519PrivateKey]:
        """Every key a decision is signed with while rotating: refunds started before the rotation
        hold only the older public key."""
        return [identity.signing_key(secret) for secret in self.review_signing_secrets]

    def review_public_keys(self) -> tuple[str, ...]:
        """Every signing key's public half: a refund waiting across a rotation still verifies."""
        return tuple(identity.public_key(key) for key in self.decision_keys())

    @property
    def service_base(self) -> str:
        return (self.service_url or f"http://{self.http_host}:{self.http_port}").rstrip("/")

    def reviewer_for(self, token: str) -> str | None:
        return reviewer_for(token, parse_entries(self.reviewer_tokens)) if token else None

    def merchant_profiles(self) -> dict[str, MerchantProfile]:
        """Every merchant this installation serves, the default one (these settings) included."""
        profiles = load_merchants(self.merchants_file) if self.merchants_file else {}
        if self.merchant_id in profiles:  # its entry would be silently replaced by these settings
            raise PolicyError(
                f"{self.merchants_file}: merchants.{self.merchant_id} is the default merchant "
                "(REFUNDS_MERCHANT_ID), whose settings are the REFUNDS_* ones"
            )
        profiles[self.merchant_id] = MerchantProfile(self.merchant_id, self.inbound_secrets, self.policy_file)
        return profiles

    @property
    def local_event_endpoints(self) -> bool:
        """Whether a merchant's event endpoint may be http or a local address: on a developer's
        machine and in the tests' own stack, never in production (adapters/event_sender.py)."""
        return self.environment in ("dev", "test")

    def for_merchant(self, profile: MerchantProfile) -> Settings:
        """These settings as one merchant's: its policy, its PSP accounts and their rate limits."""
        return self.model_copy(update={"policy_file": profile.policy_file, **(profile.psp_settings or {})})

    def risk_model(self) -> RiskModel | None:
        """The trained model new refunds are scored with; raises PolicyError when it cannot be used."""
        if self.risk_model_file is None:
            return None
        try:
            return RiskModel.model_validate_json(self.risk_model_file.read_text(encoding="utf-8"))
        except OSError as err:
            raise PolicyError(f"{self.risk_model_file}: cannot be read: {err.strerror}") from err
        except ValueError as err:
            raise PolicyError(f"{self.risk_model_file}: not a risk model: {err}") from err

    def policy(self) -> RefundPolicy:
        """The policy every new refund starts under; raises PolicyError for a bad policy file."""
        base = RefundPolicy(
            review_threshold_major=self.review_threshold_major,
            psp_call_timeout_seconds=self.psp_timeout_seconds,
            confirmation_poll_seconds=self.confirmation_poll_seconds,
            confirmation_deadline_seconds=self.confirmation_deadline_seconds,
            shipping_policy=self.shipping_policy,
            review_currencies=BUILTIN_REVIEW_CURRENCIES,
            unverified_ui_reviews=(
                self.environment != "production"
                if self.ui_reviews_unverified is None
                else self.ui_reviews_unverified
            ),
        )
        if self.policy_file is None:
            return base
        try:
            text = self.policy_file.read_text(encoding="utf-8")
        except OSError as err:
            raise PolicyError(f"{self.policy_file}: cannot be read: {err.strerror}") from err
        rules = parse_policy(text, str(self.policy_file))
        review, returns, warnings = rules.review, rules.returns, rules.early_fraud_warnings
        return base.model_copy(
            update={
                "version": rules.version,
                "review_threshold_major": review.threshold_major,
                "review_score_threshold": review.score_threshold,
                "auto_approve_below_major": review.auto_approve_below_major,
                "always_review_reasons": tuple(review.always_review_reasons),
                "four_eyes_above_major": review.four_eyes_above_major,
                "review_escalate_after_seconds": review.escalate_after_hours * 3600,
                "review_decide_after_seconds": review.decide_after_hours * 3600,
                "on_review_deadline": review.on_deadline,
                "review_currencies": review.currencies or base.review_currencies,
                "shipping_policy": returns.shipping,
                "no_return_reasons": tuple(returns.no_return_reasons),
                "returns_deadline_seconds": returns.deadline_days * 24 * 3600,
                "early_fraud_warnings": FraudWarningPolicy(
                    mode=warnings.mode,
                    refund_up_to_major=warnings.refund_up_to_major,
                    review_fraud_types=tuple(warnings.review_fraud_types),
                    chargeback_fees=warnings.chargeback_fees_minor(),
                ),
            }
        )


def _entries(listed: str) -> list[str]:
    """A comma-separated setting's entries, blanks dropped."""
    return [entry.strip() for entry in listed.split(",") if entry.strip()]


def local_settings() -> Settings:
    """Settings for a command run by hand: beside a running `refunds dev` on the same data
    directory, what dev told its children (addresses, sandbox bases and keys) for every setting the
    environment and `.env` leave empty. Never outside dev, never from a dev that is gone (its file
    outlives a hard kill), never from a file someone else could have written."""
    settings = Settings()
    if settings.environment != "dev":
        return settings
    told = _told_by_running_dev(settings.data_dir / DEV_ENV_FILE)
    if not told:
        return settings
    given = {name.upper() for name, value in os.environ.items() if value}
    given |= {name.upper() for name, value in dotenv_values(".env").items() if value}
    fields = {f"REFUNDS_{name.upper()}": name for name in Settings.model_fields}
    beside_dev: dict[str, Any] = {
        fields[name]: value for name, value in told.items() if name in fields and name not in given
    }
    return Settings(**beside_dev)


def _told_by_running_dev(path: Path) -> dict[str, str]:
    """The file `refunds dev` keeps locked while it runs (JSON: every value exactly as written);
    nothing when no dev holds it, or when it is not our own, owner-only, regular file."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return {}
    with os.fdopen(descriptor, encoding="utf-8") as told:
        facts = os.fstat(descriptor)
        if not stat.S_ISREG(facts.st_mode) or facts.st_uid != os.getuid() or facts.st_mode & 0o077:
            return {}
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:  # dev holds it: it runs
            try:
                content = json.load(told)
            except ValueError:
                return {}
        else:
            return {}  # left behind by a dev that was killed
    if not isinstance(content, dict):
        return {}
    return {str(name): value for name, value in content.items() if isinstance(value, str)}
