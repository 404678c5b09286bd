"""Every PSP workers know, each wired in its own module; a new PSP is a module and a line here."""

from __future__ import annotations

from workers.psp_wiring.adyen import ADYEN, AdyenSettings
from workers.psp_wiring.base import PspWiring
from workers.psp_wiring.paypal import PAYPAL, PayPalSettings
from workers.psp_wiring.stripe import STRIPE, StripeSettings

# In this order the start checks report, adapters are registered and webhook headers documented.
WIRINGS: tuple[PspWiring, ...] = (STRIPE, ADYEN, PAYPAL)


class PspSettings(StripeSettings, AdyenSettings, PayPalSettings):
    """Every PSP's REFUNDS_* fields, for Settings to inherit: named here, not built from WIRINGS,
    so that mypy knows each field's type (tests check the two lists agree)."""


__all__ = ["WIRINGS", "PspSettings", "PspWiring"]
