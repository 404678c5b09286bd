"""What a long-running process refuses to start on: only a development machine runs on dev defaults.

`refunds dev` starts its children with REFUNDS_ENVIRONMENT=dev; every other `refunds serve` or
`refunds worker` must say where it runs, and outside dev it refuses the published dev values, the
deploy examples' placeholders, and a PSP configured without the secret that proves its webhooks.
"""

from __future__ import annotations

from collections.abc import Iterable

from domain.policy_file import PolicyError
from domain.reviewer_tokens import entry_digests, parse_entries
from workers.merchants import MerchantProfile
from workers.psp_wiring import WIRINGS
from workers.settings import DEV_INBOUND_SECRET, DEV_REVIEWER_TOKEN, Settings

ENVIRONMENTS = ("dev", "test", "production")
_SECRETS = (
    "inbound_webhook_secret",
    "review_signing_key",
    "reviewer_tokens",
    *(name for wiring in WIRINGS for name in wiring.secrets),
    "payload_keys",
    "database_url",
)


def start_problem(settings: Settings) -> str | None:
    """The first reason this process must not start, in one line naming the setting; None when safe."""
    if "environment" not in settings.model_fields_set:
        return "REFUNDS_ENVIRONMENT is not set: production (or dev, on a development machine only)"
    if settings.environment not in ENVIRONMENTS:
        return f"REFUNDS_ENVIRONMENT={settings.environment!r} is none of {', '.join(ENVIRONMENTS)}"
    if settings.otel_endpoint and not tracing_installed():
        return "REFUNDS_OTEL_ENDPOINT is set but the otel extra is not installed: pip install '.[otel]'"
    if settings.environment == "dev":
        return None
    placeholder = _placeholder(settings)
    if placeholder is not None:
        return placeholder
    if settings.reviewer_for(DEV_REVIEWER_TOKEN) is not None:
        return "REFUNDS_REVIEWER_TOKENS accepts the dev reviewer's published token"
    if settings.environment == "production" and not settings.payload_keys and not waived(settings):
        return (
            "REFUNDS_PAYLOAD_KEYS must be set in production (`refunds payload-key ID`): histories would "
            "hold customer data in clear; REFUNDS_PAYLOAD_ENCRYPTION_WAIVED=true runs without, warned"
        )
    return _psp_problem(settings) or _merchants_problem(settings)


# The PSP sandbox's credentials are in this repository: in production they would let anyone sign
# a webhook the product believes.
_PUBLISHED = {name: value for wiring in WIRINGS for name, value in wiring.published().items()}


def _placeholder(settings: Settings) -> str | None:
    for name in _SECRETS:
        if "change-me" in str(getattr(settings, name)).lower():
            return f"REFUNDS_{name.upper()} still holds the example's change-me value"
    if settings.environment == "production":
        for name, published in _PUBLISHED.items():
            if str(getattr(settings, name)).strip().lower() == published.lower():
                return f"REFUNDS_{name.upper()} is the PSP sandbox's published value"
    return None


def _merchants_problem(settings: Settings) -> str | None:
    """Each merchant's own secrets and PSP accounts, from REFUNDS_MERCHANTS_FILE, by the same rules."""
    try:
        profiles = settings.merchant_profiles()
    except PolicyError:
        return None  # a file that cannot be read is reported, with its reason, by the policy check
    shared = _shared_reviewer(profiles.values(), settings)
    if shared is not None:
        return shared
    signing = {key.strip() for key in settings.review_signing_key.split(",") if key.strip()}
    signed_by: dict[str, str] = {}  # each request secret and the merchant whose requests it signs
    default_first = sorted(profiles.items(), key=lambda item: item[0] != settings.merchant_id)
    for merchant_id, profile in default_first:
        for secret in profile.secrets:
            other = signed_by.setdefault(secret, merchant_id)
            if other != merchant_id:  # either could sign the other's refunds
                return f"merchant {merchant_id}: inbound_webhook_secret is also {other}'s"
        if merchant_id == settings.merchant_id:
            continue
        if any("change-me" in secret.lower() or secret == DEV_INBOUND_SECRET for secret in profile.secrets):
            return f"merchant {merchant_id}: inbound_webhook_secret holds a dev or example value"
        if signing.intersection(profile.secrets):  # the merchant could derive the decision key
            return f"merchant {merchant_id}: REFUNDS_REVIEW_SIGNING_KEY is this merchant's request secret"
        if profile.reviewer_for(DEV_REVIEWER_TOKEN) is not None:
            return f"merchant {merchant_id}: reviewer_tokens accepts the dev reviewer's published token"
        own = settings.for_merchant(profile)
        problem = _placeholder(own) or _psp_problem(own)
        if problem is not None:
            return f"merchant {merchant_id}: {problem}"
    return None


def _shared_reviewer(profiles: Iterable[MerchantProfile], settings: Settings) -> str | None:
    """One token proving a reviewer of two merchants (or of a merchant and the installation) would act
    as whichever is found first: every token belongs to one scope."""
    scopes: dict[str, str] = {
        digest: "the installation" for _, digest in entry_digests(parse_entries(settings.reviewer_tokens))
    }
    for profile in profiles:
        if profile.merchant_id == settings.merchant_id:
            continue
        for name, digest in entry_digests(profile.reviewers):
            other = scopes.setdefault(digest, f"merchant {profile.merchant_id}")
            if other != f"merchant {profile.merchant_id}":
                return f"merchant {profile.merchant_id}: reviewer {name}'s token is also one of {other}'s"
    return None


def tracing_installed() -> bool:
    """Whether the OpenTelemetry SDK and exporter that REFUNDS_OTEL_ENDPOINT needs can be imported."""
    try:
        import opentelemetry.exporter.otlp.proto.http.trace_exporter
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        return False
    return True


def waived(settings: Settings) -> bool:
    return settings.payload_encryption_waived


def start_warning(settings: Settings) -> str | None:
    """What a start that is allowed still says out loud."""
    if settings.environment == "production" and not settings.payload_keys and waived(settings):
        return "payload encryption is waived: Temporal's histories hold customer data in clear"
    return None


def _psp_problem(settings: Settings) -> str | None:
    """A PSP whose webhooks cannot be verified would let anyone post its events (each PSP's own
    checks: `problems` in workers/psp_wiring/<psp>.py)."""
    return next((problem for wiring in WIRINGS for problem in wiring.problems(settings)), None)
