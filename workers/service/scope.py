"""Whose refunds a caller may see and steer: one merchant's, or, for the installation's own reviewers
(and reads in development), every merchant's. Never a missing merchant standing for either."""

from __future__ import annotations

from enum import Enum


class EveryMerchant(Enum):
    EVERY = "every merchant"


EVERY_MERCHANT = EveryMerchant.EVERY
Scope = str | EveryMerchant  # a merchant's id, or every merchant
