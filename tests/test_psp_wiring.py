"""Each PSP's wiring names only settings Settings has, and Settings composes every PSP's own."""

from __future__ import annotations

import pytest

from workers.psp_wiring import WIRINGS, PspSettings, PspWiring
from workers.settings import Settings


def test_every_provider_is_wired_once() -> None:
    providers = [wiring.provider for wiring in WIRINGS]
    assert len(set(providers)) == len(providers)


@pytest.mark.parametrize("wiring", WIRINGS, ids=lambda wiring: wiring.provider.value)
def test_wiring_names_its_own_composed_settings(wiring: PspWiring) -> None:
    assert issubclass(PspSettings, wiring.settings), "add its settings class to PspSettings' bases"
    own = set(wiring.settings.model_fields)
    assert own <= set(Settings.model_fields)
    named = {wiring.api_base_field, *wiring.account_keys.values(), *wiring.secrets, *wiring.sandbox}
    assert named <= own
    assert wiring.account_keys["api_base"] == wiring.api_base_field


@pytest.mark.parametrize("wiring", WIRINGS, ids=lambda wiring: wiring.provider.value)
def test_unconfigured_psp_has_no_adapter_and_no_problem(wiring: PspWiring) -> None:
    settings = Settings()
    assert wiring.adapter(settings, None) is None  # type: ignore[arg-type]
    assert wiring.problems(settings) == []
    assert getattr(settings, f"{wiring.provider.value}_base") == wiring.default_api_base
