"""What a long-running process refuses to start on: only a development machine runs on dev defaults.

`refunds dev` starts its children with REFUNDS_ENVIRONMENT=dev; every other `refunds serve` or
`refunds worker` must say where it runs, and outside dev it refuses the published dev values, the
deploy examples' placeholders, and a PSP configured without the secret that proves its webhooks:
every one of them at once, so one failed start tells the operator all there is to fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from adapters.event_sender import EndpointRefused, check_url
from domain.policy_file import PolicyError
from domain.reviewer_tokens import entry_digests, parse_entries
from workers.merchants import MerchantProfile
from workers.psp_wiring import WIRINGS
from workers.settings import (
    DEV_REVIEWER_TOKEN,
    ENVIRONMENTS,
    PUBLISHED_DEV_SECRETS,
    Settings,
)

_SECRETS = (
    "inbound_webhook_secret",
    "review_signing_key",
    "reviewer_tokens",
    *(name for wiring in WIRINGS for name in wiring.secrets),
    "payload_keys",
    "database_url",
)


def start_problems(settings: Settings, signs_decisions: bool = False) -> list[str]:
    """Every reason this process must not start, each in one line naming the setting; none when
    safe. An unset or unknown environment is named alone: which rules apply depends on it."""
    if "environment" not in settings.model_fields_set:
        return ["REFUNDS_ENVIRONMENT is not set: production (or dev, on a development machine only)"]
    if settings.environment not in ENVIRONMENTS:
        return [f"REFUNDS_ENVIRONMENT={settings.environment!r} is none of {', '.join(ENVIRONMENTS)}"]
    problems = []
    if settings.otel_endpoint and not tracing_installed():
        problems.append(
            "REFUNDS_OTEL_ENDPOINT is set but the otel extra is not installed: pip install '.[otel]'"
        )
    if settings.environment == "dev":
        return problems
    if signs_decisions and not settings.configured_signing_secrets:
        problems.append("REFUNDS_REVIEW_SIGNING_KEY must be set outside dev: the service signs decisions")
    problems += _placeholders(settings)
    problems += _dev_values(settings)
    if settings.environment == "production" and not settings.payload_keys and not waived(settings):
        problems.append(
            "REFUNDS_PAYLOAD_KEYS must be set in production (`refunds payload-key ID`): histories would "
            "hold customer data in clear; REFUNDS_PAYLOAD_ENCRYPTION_WAIVED=true runs without, warned"
        )
    problems += _psp_problems(settings) + _merchants_problems(settings)
    return list(dict.fromkeys(problems))  # each once, in the order found


# The PSP sandbox's credentials are in this repository: in production they would let anyone sign
# a webhook the product believes.
_PUBLISHED = {name: value for wiring in WIRINGS for name, value in wiring.published().items()}


def _entries_of(value: str) -> set[str]:
    return {entry.strip() for entry in value.split(",") if entry.strip()}


def _placeholders(settings: Settings) -> list[str]:
    problems = [
        f"REFUNDS_{name.upper()} still holds the example's change-me value"
        for name in _SECRETS
        # a published dev value is said so, once (`_dev_values`)
        if "change-me" in str(getattr(settings, name)).lower()
        and not PUBLISHED_DEV_SECRETS.intersection(_entries_of(str(getattr(settings, name))))
    ]
    if settings.environment == "production":
        problems += [
            f"REFUNDS_{name.upper()} is the PSP sandbox's published value"
            for name, published in _PUBLISHED.items()
            if str(getattr(settings, name)).strip().lower() == published.lower()
        ]
    return problems


def _dev_values(settings: Settings) -> list[str]:
    """The dev values this repository publishes (workers/settings.py): anyone who reads it could
    sign a refund request, act as a reviewer, or mint the proof of a review decision."""
    problems = []
    if PUBLISHED_DEV_SECRETS.intersection(settings.configured_signing_secrets):
        problems.append(
            "REFUNDS_REVIEW_SIGNING_KEY holds the dev signing secret published in the source: anyone "
            "could sign review decisions"
        )
    if PUBLISHED_DEV_SECRETS.intersection(settings.inbound_secrets):
        problems.append("REFUNDS_INBOUND_WEBHOOK_SECRET holds a dev value published in the source")
    if settings.reviewer_for(DEV_REVIEWER_TOKEN) is not None:
        problems.append("REFUNDS_REVIEWER_TOKENS accepts the dev reviewer's published token")
    return problems


def _merchants_problems(settings: Settings) -> list[str]:
    """Each merchant's own secrets and PSP accounts, from REFUNDS_MERCHANTS_FILE, by the same rules."""
    try:
        profiles = settings.merchant_profiles()
    except PolicyError:
        return []  # a file that cannot be read is reported, with its reason, by the policy check
    problems = _shared_reviewers(profiles.values(), settings) + _shared_psp_accounts(profiles, settings)
    signing = set(settings.configured_signing_secrets)
    signed_by: dict[str, str] = {}  # each request secret and the merchant whose requests it signs
    installation = set(_placeholders(settings))  # named once, above: a merchant's own PSP accounts here
    default_first = sorted(profiles.items(), key=lambda item: item[0] != settings.merchant_id)
    for merchant_id, profile in default_first:
        for secret in profile.secrets:
            other = signed_by.setdefault(secret, merchant_id)
            if other != merchant_id:  # either could sign the other's refunds
                problems.append(f"merchant {merchant_id}: inbound_webhook_secret is also {other}'s")
        if merchant_id == settings.merchant_id:
            continue
        if any(
            "change-me" in secret.lower() or secret in PUBLISHED_DEV_SECRETS for secret in profile.secrets
        ):
            problems.append(f"merchant {merchant_id}: inbound_webhook_secret holds a dev or example value")
        if signing.intersection(profile.secrets):  # the merchant could derive the decision key
            problems.append(
                f"merchant {merchant_id}: REFUNDS_REVIEW_SIGNING_KEY is this merchant's request secret"
            )
        for declared in profile.events:  # an endpoint is no way into our own network
            try:
                check_url(declared.url, dev=settings.local_event_endpoints)
            except EndpointRefused as refused:
                problems.append(f"merchant {merchant_id}: events endpoint {declared.url!r}: {refused}")
        if profile.reviewer_for(DEV_REVIEWER_TOKEN) is not None:
            problems.append(
                f"merchant {merchant_id}: reviewer_tokens accepts the dev reviewer's published token"
            )
        own = settings.for_merchant(profile)
        for problem in [*_placeholders(own), *_psp_problems(own)]:
            if problem not in installation:
                problems.append(f"merchant {merchant_id}: {problem}")
    return problems


def _shared_psp_accounts(profiles: Mapping[str, MerchantProfile], settings: Settings) -> list[str]:
    """A PSP account (its secrets, and what names it, as Adyen's merchant account) belongs to one
    merchant: two sharing one could each sign events the other's payments would answer to."""
    problems = []
    owners: dict[tuple[str, str], str] = {}
    default_first = sorted(profiles.items(), key=lambda item: item[0] != settings.merchant_id)
    for merchant_id, profile in default_first:
        own = settings.for_merchant(profile)
        for wiring in WIRINGS:
            for name in (*wiring.secrets, *wiring.identities):
                value = str(getattr(own, name) or "").strip()
                other = owners.setdefault((name, value), merchant_id) if value else merchant_id
                if other != merchant_id:
                    problems.append(
                        f"merchant {merchant_id}: REFUNDS_{name.upper()} is also {other}'s account"
                    )
    return problems


def _shared_reviewers(profiles: Iterable[MerchantProfile], settings: Settings) -> list[str]:
    """One token proving a reviewer of two merchants (or of a merchant and the installation) would act
    as whichever is found first: every token belongs to one scope."""
    scopes: dict[str, str] = {
        digest: "the installation" for _, digest in entry_digests(parse_entries(settings.reviewer_tokens))
    }
    problems = []
    for profile in profiles:
        if profile.merchant_id == settings.merchant_id:
            continue
        for name, digest in entry_digests(profile.reviewers):
            other = scopes.setdefault(digest, f"merchant {profile.merchant_id}")
            if other != f"merchant {profile.merchant_id}":
                problems.append(
                    f"merchant {profile.merchant_id}: reviewer {name}'s token is also one of {other}'s"
                )
    return problems


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


def _psp_problems(settings: Settings) -> list[str]:
    """A PSP whose webhooks cannot be verified would let anyone post its events (each PSP's own
    checks: `problems` in workers/psp_wiring/<psp>.py)."""
    return [problem for wiring in WIRINGS for problem in wiring.problems(settings)]
