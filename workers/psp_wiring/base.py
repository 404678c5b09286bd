"""What workers need to know about one PSP, in one value: its settings, its merchants-file keys, its
sandbox credentials, the checks it is refused a start on, and how its adapter is built."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydantic import BaseModel

from domain.status import Provider

if TYPE_CHECKING:  # Settings composes every PSP's settings, so it is imported for types only
    from adapters.db.engine import Database
    from adapters.psp.base import PspAdapter
    from workers.settings import Settings


@dataclass(frozen=True)
class PspWiring:
    provider: Provider
    # The PSP's REFUNDS_<PSP>_* fields, a mixin composed into Settings (so env names never change)
    settings: type[BaseModel]
    api_base_field: str  # unset: `default_api_base`; set by `refunds dev` to the sandbox's
    default_api_base: str
    # A merchants file's [merchants.X.<psp>] keys and the setting each one stands for; the
    # `api_base` key is optional, every other one required
    account_keys: Mapping[str, str]
    secrets: tuple[str, ...]  # settings that must never hold an example's change-me value
    # The sandbox's credentials (setting -> value): `refunds dev` gives them to its children; being
    # in this repository, the secrets among them are refused in production
    sandbox: Mapping[str, str]
    sandbox_path: str  # where the sandbox serves this PSP's API, below the sandbox's URL
    # The reasons a process outside dev must not start with these settings, in one line each
    problems: Callable[[Settings], list[str]]
    # The adapter for these settings' account, None when they configure none; it imports the
    # PSP's SDK when called, never when settings are read (every CLI command reads them)
    adapter: Callable[[Settings, Database], PspAdapter | None]
    # More of `refunds dev`'s environment for its children when the sandbox serves this PSP
    dev_extras: Callable[[Settings, str], dict[str, str]] = lambda settings, sandbox_url: {}
    # Settings that name the PSP account itself (not secret): two merchants never share one, or
    # either's events would pass as the other's (the secrets are compared too)
    identities: tuple[str, ...] = ()
    # Headers the PSP signs its webhooks with, documented in the OpenAPI schema
    webhook_headers: Mapping[str, str] = field(default_factory=dict)

    def published(self) -> dict[str, str]:
        """The sandbox's secrets, which anyone who reads this repository knows."""
        return {name: value for name, value in self.sandbox.items() if name in self.secrets}

    def dev_environment(self, settings: Settings, sandbox_url: str) -> dict[str, str]:
        """`refunds dev`'s children talk to the sandbox with its credentials."""
        return {
            f"REFUNDS_{self.api_base_field.upper()}": f"{sandbox_url}{self.sandbox_path}",
            **{f"REFUNDS_{name.upper()}": value for name, value in self.sandbox.items()},
            **self.dev_extras(settings, sandbox_url),
        }
