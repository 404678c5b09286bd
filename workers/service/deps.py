"""Request-scoped dependencies as `Annotated` aliases."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Annotated

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends, Header, Request
from sqlalchemy.exc import SQLAlchemyError
from temporalio.client import Client

from adapters.db import clients, service_keys
from adapters.db.engine import Database
from adapters.psp.base import PspDirectory
from domain.clients import KEY_PREFIX
from domain.clients import Client as ApiClient
from domain.contracts import RefundPolicy
from domain.reviewer_tokens import entry_digests, parse_entries
from domain.risk_model import RiskModel
from domain.status import ErrorCode
from workers.bearer import bearer_token
from workers.codec import EncryptionCodec, parse_keys
from workers.legacy_payments import adopt_legacy_payments
from workers.merchants import MerchantProfile
from workers.service import codec_session
from workers.service.errors import ApiError
from workers.service.scope import EVERY_MERCHANT, Scope
from workers.settings import Settings


@dataclass
class Services:
    settings: Settings
    db: Database
    temporal: Client
    psps: PspDirectory
    risk_model: RiskModel | None = field(init=False)
    merchants: dict[str, MerchantProfile] = field(init=False)
    policies: dict[str, RefundPolicy] = field(init=False)  # by merchant, the default one included
    codec: EncryptionCodec | None = field(init=False)
    decision_keys: list[Ed25519PrivateKey] = field(init=False)  # sign the decisions reviewers make here
    review_keys: tuple[str, ...] = field(init=False)  # its public half, given to every new refund

    def __post_init__(self) -> None:
        # read once: every refund started by this process runs under the same policy and model
        self.risk_model = self.settings.risk_model()
        keys = parse_keys(self.settings.payload_keys)
        self.codec = EncryptionCodec(keys) if keys else None
        self.decision_keys = self.settings.decision_keys()
        self.review_keys = self.settings.review_public_keys()
        with self.db.transaction() as session:  # workers verify what this service signs with these
            service_keys.publish(session, self.review_keys)
        adopt_legacy_payments(self.settings, self.db)
        self.merchants = self.settings.merchant_profiles()
        self.policies = {
            merchant_id: self.settings.for_merchant(profile).policy()
            for merchant_id, profile in self.merchants.items()
        }

    def owner(self, merchant_id: str) -> str | None:
        """How a merchant is named on its refunds (`domain.naming.refund_id`): None for the default."""
        return None if merchant_id == self.settings.merchant_id else merchant_id


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


@dataclass(frozen=True)
class Reviewer:
    name: str
    scope: Scope  # a merchant's own reviewer, or the installation's, for every merchant's refunds

    @property
    def merchant_id(self) -> str | None:
        """As the API shows it: the merchant, or none for the installation's own reviewers."""
        return None if self.scope is EVERY_MERCHANT else self.scope


def _identify(services: Services, authorization: str | None) -> Reviewer | None:
    token = bearer_token(authorization)
    if not token:
        return None
    name = services.settings.reviewer_for(token)
    if name is not None:
        return Reviewer(name, EVERY_MERCHANT)
    for merchant_id, profile in services.merchants.items():
        name = profile.reviewer_for(token)
        if name is not None:
            return Reviewer(name, merchant_id)
    return None


def _reviewer(
    services: Annotated[Services, Depends(_services)],
    authorization: Annotated[str | None, Header()] = None,
) -> Reviewer:
    """The reviewer is who the bearer token says, never what the body claims."""
    reviewer = _identify(services, authorization)
    if reviewer is None:
        raise ApiError(401, ErrorCode.UNAUTHORIZED, "a valid reviewer bearer token is required")
    return reviewer


def _operator(reviewer: Annotated[Reviewer, Depends(_reviewer)]) -> Reviewer:
    """The installation's own reviewers: what they do spans merchants (the codec opens anyone's)."""
    if reviewer.scope is not EVERY_MERCHANT:
        raise ApiError(403, ErrorCode.UNAUTHORIZED, f"{reviewer.name} acts for one merchant only")
    return reviewer


@dataclass(frozen=True)
class ClientReader:
    """An API client reading refunds: the ones it asked for itself, nothing else of its merchant's."""

    name: str
    merchant_id: str

    @property
    def scope(self) -> Scope:
        return self.merchant_id


def _reader(
    services: Annotated[Services, Depends(_services)],
    authorization: Annotated[str | None, Header()] = None,
) -> Reviewer | ClientReader | None:
    """Reads need a reviewer token (or an API client's key, for its own refunds) in production
    (refunds carry customer data); elsewhere a read without one sees every refund, as in development."""
    reader: Reviewer | ClientReader | None = _identify(services, authorization)
    if reader is None:
        reader = _client_reader(services, authorization)
    if reader is None and (authorization or services.settings.environment == "production"):
        raise ApiError(401, ErrorCode.UNAUTHORIZED, "a valid reviewer bearer token is required")
    return reader


def _client_reader(services: Services, authorization: str | None) -> ClientReader | None:
    client = _acting_client(services, authorization)
    return ClientReader(client.name, client.merchant_id) if client is not None else None


def _acting_client(services: Services, authorization: str | None) -> ApiClient | None:
    """The active API client the bearer key proves, for a merchant still configured here: one taken
    out of the merchants file takes its clients' reads with it, as it does its reviewers'."""
    key = bearer_token(authorization)
    client = client_for_key(services, key) if key.startswith(KEY_PREFIX) else None
    return client if client is not None and client.merchant_id in services.merchants else None


def client_for_key(services: Services, key: str) -> ApiClient | None:
    """The active API client this key proves; None for any other key."""
    try:
        with services.db.transaction() as session:
            return clients.by_key(session, key) if key else None
    except SQLAlchemyError as err:
        raise ApiError(
            503, ErrorCode.DATABASE_UNAVAILABLE, "the client database cannot be read right now; retry"
        ) from err


def _api_client(
    services: Annotated[Services, Depends(_services)],
    authorization: Annotated[str | None, Header()] = None,
) -> ApiClient:
    """The API client the bearer key proves: its own standing is for it alone."""
    client = _acting_client(services, authorization)
    if client is None:
        raise ApiError(401, ErrorCode.UNAUTHORIZED, "a valid API client key is required (Bearer rfc_...)")
    return client


def _codec_reader(
    services: Annotated[Services, Depends(_services)],
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
) -> Reviewer:
    """An installation reviewer, by bearer token, or by the session cookie the Temporal UI sends
    from the reviewer's browser (`/codec/login`)."""
    if authorization:
        return _operator(_reviewer(services, authorization))
    name = codec_session.holder(
        services.settings.review_signing_secrets,
        installation_reviewers(services.settings),
        request.cookies.get(codec_session.COOKIE, ""),
        int(time.time()),
    )
    if name is None:
        raise ApiError(
            401,
            ErrorCode.UNAUTHORIZED,
            "a reviewer bearer token or a codec session (/codec/login) is required",
        )
    return Reviewer(name, EVERY_MERCHANT)


def installation_reviewers(settings: Settings) -> list[tuple[str, str]]:
    """The installation's own reviewers, each with its token's digest."""
    return entry_digests(parse_entries(settings.reviewer_tokens))


ServicesDep = Annotated[Services, Depends(_services)]
ReviewerDep = Annotated[Reviewer, Depends(_reviewer)]
OperatorDep = Annotated[Reviewer, Depends(_operator)]
CodecReaderDep = Annotated[Reviewer, Depends(_codec_reader)]
ReaderDep = Annotated[Reviewer | ClientReader | None, Depends(_reader)]
ApiClientDep = Annotated[ApiClient, Depends(_api_client)]
