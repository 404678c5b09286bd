"""Request-scoped dependencies as `Annotated` aliases."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Header, Request
from temporalio.client import Client

from adapters.db.engine import Database
from adapters.psp.base import PspRegistry
from domain.contracts import RefundPolicy
from domain.risk_model import RiskModel
from domain.status import ErrorCode
from workers.codec import EncryptionCodec, parse_keys
from workers.merchants import MerchantProfile
from workers.service.errors import ApiError
from workers.settings import Settings


@dataclass
class Services:
    settings: Settings
    db: Database
    temporal: Client
    psps: PspRegistry
    risk_model: RiskModel | None = field(init=False)
    merchants: dict[str, MerchantProfile] = field(init=False)
    policies: dict[str, RefundPolicy] = field(init=False)  # by merchant, the default one included
    codec: EncryptionCodec | None = field(init=False)

    def __post_init__(self) -> None:
        # read once: every refund started by this process runs under the same policy and model
        self.risk_model = self.settings.risk_model()
        keys = parse_keys(self.settings.payload_keys)
        self.codec = EncryptionCodec(keys) if keys else None
        self.merchants = self.settings.merchant_profiles()
        self.policies = {
            merchant_id: self.settings.model_copy(update={"policy_file": profile.policy_file}).policy()
            for merchant_id, profile in self.merchants.items()
        }


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _reviewer(
    services: Annotated[Services, Depends(_services)],
    authorization: Annotated[str | None, Header()] = None,
) -> str:
    """The reviewer is who the bearer token says, never what the body claims."""
    token = (authorization or "").removeprefix("Bearer ").strip()
    reviewer = services.settings.reviewer_for(token)
    if reviewer is None:
        raise ApiError(401, ErrorCode.UNAUTHORIZED, "a valid reviewer bearer token is required")
    return reviewer


ServicesDep = Annotated[Services, Depends(_services)]
ReviewerDep = Annotated[str, Depends(_reviewer)]
