"""Configuration: `.env.example` documents exactly what the product reads; unsafe defaults refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tests.conftest import repo_root
from workers.settings import DEV_INBOUND_SECRET, Settings


def documented() -> set[str]:
    lines = (repo_root() / ".env.example").read_text().splitlines()
    return {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}


def test_env_example_lists_every_setting_and_nothing_else() -> None:
    assert documented() == {f"REFUNDS_{name.upper()}" for name in Settings.model_fields}


def test_outside_dev_the_placeholder_secret_is_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(environment="production", inbound_webhook_secret=DEV_INBOUND_SECRET)
    assert Settings(environment="production", inbound_webhook_secret="s3cret").inbound_secrets == ["s3cret"]


def test_rotation_secrets_and_reviewer_tokens_parse() -> None:
    settings = Settings(inbound_webhook_secret="old, new ,", reviewer_tokens="alice:t1, bob:t2, broken")
    assert settings.inbound_secrets == ["old", "new"]
    assert settings.reviewers_by_token == {"t1": "alice", "t2": "bob"}


def test_database_defaults_to_sqlite_in_the_data_dir(tmp_path: object) -> None:
    settings = Settings(data_dir=tmp_path, database_url="")  # type: ignore[arg-type]
    assert settings.database_url == f"sqlite:///{tmp_path}/refunds.db"
    assert Settings(stripe_api_base="").stripe_base == "https://api.stripe.com"
