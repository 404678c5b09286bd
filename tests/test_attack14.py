"""Adversarial checks: what `refunds dev` tells hand-run commands, what the CLI prints to an
operator's terminal, how long the CLI waits for an unanswered query, and what a review answers
once it has been decided."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import repo_root
from workers.dev import write_dev_env
from workers.settings import DEV_ENV_FILE, Settings, local_settings

ESC = "\x1b"


@pytest.fixture
def hand_shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A shell beside a `refunds dev` on `tmp_path/.refunds`: nothing exported, no `.env`."""
    for name in list(os.environ):
        if name.upper().startswith("REFUNDS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    data = tmp_path / ".refunds"
    data.mkdir()
    return data


# --- dev.env ----------------------------------------------------------------------------------


HOSTILE = {
    "REFUNDS_INBOUND_WEBHOOK_SECRET": "s3cr${HOME}t",
    "REFUNDS_OPERATOR": "o'brien ${REFUNDS_INBOUND_WEBHOOK_SECRET} café",
    "REFUNDS_REVIEWER_TOKEN": 'tok"en\\n\\\\ $(id) `id`',
    "REFUNDS_OTEL_SERVICE_NAME": "line\r\nnext\ttab\x0bvt",
    "REFUNDS_SERVICE_URL": "http://127.0.0.1:8123",
}


def test_dev_env_hands_every_value_over_as_written(hand_shell: Path) -> None:
    told = write_dev_env(hand_shell / DEV_ENV_FILE, {**HOSTILE, "HOME": "/elsewhere"})
    try:
        settings = local_settings()
    finally:
        told.close()
    assert settings.inbound_webhook_secret == HOSTILE["REFUNDS_INBOUND_WEBHOOK_SECRET"]
    assert settings.operator == HOSTILE["REFUNDS_OPERATOR"]
    assert settings.reviewer_token == HOSTILE["REFUNDS_REVIEWER_TOKEN"]
    assert settings.otel_service_name == HOSTILE["REFUNDS_OTEL_SERVICE_NAME"]
    assert settings.service_base == "http://127.0.0.1:8123"


def test_a_dev_env_no_running_dev_holds_is_not_read(hand_shell: Path) -> None:
    """After a hard kill the file stays behind: whatever listens on its ports now is not dev's."""
    told = write_dev_env(hand_shell / DEV_ENV_FILE, {"REFUNDS_SERVICE_URL": "http://127.0.0.1:8123"})
    assert local_settings().service_base == "http://127.0.0.1:8123"
    os.close(told.descriptor)  # dev died without its `finally`
    assert (hand_shell / DEV_ENV_FILE).exists()
    assert local_settings().service_base == "http://127.0.0.1:8000"


def test_a_dev_env_anyone_could_have_written_is_not_read(hand_shell: Path, tmp_path: Path) -> None:
    told = write_dev_env(hand_shell / DEV_ENV_FILE, {"REFUNDS_SERVICE_URL": "http://127.0.0.1:8123"})
    try:
        (hand_shell / DEV_ENV_FILE).chmod(0o666)  # a shared data directory: anyone could change it
        assert local_settings().service_base == "http://127.0.0.1:8000"
        (hand_shell / DEV_ENV_FILE).chmod(0o600)
        planted = tmp_path / "planted.env"
        planted.write_text('{"REFUNDS_SERVICE_URL": "http://attacker.example"}')
        planted.chmod(0o600)
        moved = hand_shell / "real.env"
        (hand_shell / DEV_ENV_FILE).rename(moved)
        (hand_shell / DEV_ENV_FILE).symlink_to(planted)
        assert local_settings().service_base == "http://127.0.0.1:8000"
    finally:
        told.close()


def test_dev_env_beside_a_env_copied_from_the_example(hand_shell: Path, tmp_path: Path) -> None:
    """`.env.example` says: copy to .env. Its empty values mean "the default": dev's own."""
    shutil.copy(repo_root() / ".env.example", tmp_path / ".env")
    assert Settings().environment == "dev"  # the example itself loads
    sandbox = {
        "REFUNDS_STRIPE_API_BASE": "http://127.0.0.1:12999",
        "REFUNDS_STRIPE_API_KEY": "sk_test_sandbox",
        "REFUNDS_SERVICE_URL": "http://127.0.0.1:8123",
    }
    told = write_dev_env(hand_shell / DEV_ENV_FILE, sandbox)
    try:
        settings = local_settings()
    finally:
        told.close()
    assert settings.stripe_base == "http://127.0.0.1:12999"
    assert settings.stripe_api_key == "sk_test_sandbox"
    assert settings.service_base == "http://127.0.0.1:8123"


def test_dev_env_is_never_read_outside_dev(
    hand_shell: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    told = write_dev_env(
        hand_shell / DEV_ENV_FILE, {"REFUNDS_ENVIRONMENT": "dev", "REFUNDS_SERVICE_URL": "http://dev"}
    )
    try:
        (tmp_path / ".env").write_text("REFUNDS_ENVIRONMENT=production\nREFUNDS_INBOUND_WEBHOOK_SECRET=s\n")
        assert local_settings().service_base == "http://127.0.0.1:8000"
        (tmp_path / ".env").unlink()
        for environment in ("production", "Production", "test", ""):
            monkeypatch.setenv("REFUNDS_ENVIRONMENT", environment)
            monkeypatch.setenv("REFUNDS_INBOUND_WEBHOOK_SECRET", "s")
            assert local_settings().service_base == "http://127.0.0.1:8000", environment
        monkeypatch.setenv("REFUNDS_ENVIRONMENT", "dev")
        assert local_settings().service_base == "http://dev"
    finally:
        told.close()
