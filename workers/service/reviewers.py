"""GET /v1/reviewers/me: who a reviewer token acts as (the CLI checks it before deciding)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from workers.service.deps import ReviewerDep
from workers.service.errors import error_responses

router = APIRouter(prefix="/v1/reviewers", tags=["refunds"], responses=error_responses(401, 422))


class Me(BaseModel):
    reviewer: str
    merchant_id: str | None  # None: the installation's own reviewer, for every merchant


@router.get("/me", response_model=Me)
async def whoami(reviewer: ReviewerDep) -> Me:
    return Me(reviewer=reviewer.name, merchant_id=reviewer.merchant_id)
