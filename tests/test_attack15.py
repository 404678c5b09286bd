"""Adversarial review of the production stack (round 15): the compose file against what Temporal's
official 1.30.1 images really do, the codec session, and deploy/temporal-setup.sh under odd settings."""

from __future__ import annotations

import contextlib
import os
import posixpath
import subprocess
import time
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from tests.conftest import Stack, free_port, repo_root, starter_for
from workers.binaries import find_binary
from workers.service import codec_session
from workers.settings import Settings

ROOT = repo_root()
SERVICES: dict[str, dict[str, Any]] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
FORM = {"content-type": "application/x-www-form-urlencoded"}

# temporalio/temporal v1.30.1, the source of the temporalio/server:1.30.1 image:
# docker/targets/server.Dockerfile copies these two files alone, WORKDIR /etc/temporal;
SERVER_IMAGE_FILES = {"/usr/local/bin/temporal-server", "/etc/temporal/entrypoint.sh"}
SERVER_WORKDIR = "/etc/temporal"
# docker/scripts/sh/entrypoint.sh runs `temporal-server start` without flags, so the server renders
# common/config/config_template_embedded.yaml, whose dynamicConfigClient.filepath is
#   {{ default "/etc/temporal/config/dynamicconfig/docker.yaml" (env "DYNAMIC_CONFIG_FILE_PATH") }}
# and cmd/server/main.go exits ("Unable to create dynamic config client") when
# common/dynamicconfig/file_based_client.go cannot stat that file.
DEFAULT_DYNAMIC_CONFIG = "/etc/temporal/config/dynamicconfig/docker.yaml"


def _mounted_files(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> repository path, for the service's bind mounts of repository files."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            mounts[target] = source
    return mounts


def test_the_temporal_server_finds_its_dynamic_config_file_on_first_boot() -> None:
    """The 1.30.1 server image has no dynamic config file: without one mounted where the server
    looks, `temporal` exits at start, never gets healthy, and nothing after it starts."""
    temporal = SERVICES["temporal"]
    configured = str(temporal.get("environment", {}).get("DYNAMIC_CONFIG_FILE_PATH", ""))
    path = posixpath.join(SERVER_WORKDIR, configured or DEFAULT_DYNAMIC_CONFIG)
    mounted = _mounted_files(temporal)
    assert path not in SERVER_IMAGE_FILES
    assert path in mounted, f"the server reads {path}, which neither the image nor a mount provides"
    source = ROOT / mounted[path]
    assert source.is_file()
    # common/dynamicconfig/yaml_loader.go: a map of key -> list of {value, constraints}
    loaded = yaml.safe_load(source.read_text()) or {}
    assert isinstance(loaded, dict)
    for key, values in loaded.items():
        assert isinstance(values, list) and values, key
        for value in values:
            assert isinstance(value, dict) and "value" in value, key
            assert set(value) <= {"value", "constraints"}, key


@pytest.mark.parametrize(
    "origins", ["*", "null", "http://localhost:8080,*", "https://ui.example.com/path", "localhost:8080"]
)
def test_the_codec_cors_origins_never_let_any_origin_read_with_credentials(origins: str) -> None:
    """The codec server allows credentials: Starlette's CORS middleware with `*` answers every
    Origin (even `null`) with itself and Allow-Credentials, so any page sharing the site reads
    decrypted payloads with the reviewer's session. Only exact origins are accepted."""
    with pytest.raises(ValidationError, match="REFUNDS_CODEC_CORS_ORIGINS"):
        Settings(codec_cors_origins=origins)


def test_codec_cors_origins_are_matched_as_the_browser_sends_them() -> None:
    """`a, b` or a trailing slash would never equal a browser's Origin header, silently."""
    settings = Settings(codec_cors_origins="http://localhost:8080/, http://127.0.0.1:8080")
    assert settings.codec_cors_origins == "http://localhost:8080,http://127.0.0.1:8080"


async def test_a_login_form_with_too_many_fields_is_a_400_not_a_500(stack: Stack) -> None:
    async with starter_for(stack, reviewer_tokens="alice:alice-token") as (_, http):
        many = await http.post("/codec/login", content="a=1&b=2&c=3&d=4&token=alice-token", headers=FORM)
    assert many.status_code == 400, many.text
    assert codec_session.COOKIE not in many.cookies


async def test_signing_out_is_this_browser_only_and_the_page_says_so(stack: Stack) -> None:
    """Sessions are stateless: a copy of the cookie taken before sign-out still opens payloads
    until it expires or the reviewer's token is removed. The page must not promise otherwise."""
    async with starter_for(stack, reviewer_tokens="alice:alice-token") as (_, http):
        page = await http.get("/codec/login")
        signed_in = await http.post("/codec/login", content="token=alice-token", headers=FORM)
        copy = signed_in.cookies[codec_session.COOKIE]
        out = await http.post("/codec/logout")
        http.cookies.set(codec_session.COOKIE, copy, path="/codec")
        replayed = await http.post("/codec/encode", content="{}")
    assert "max-age=0" in out.headers["set-cookie"].lower()
    assert replayed.status_code != 401  # by design; what the page must be honest about
    assert "until you sign out" not in page.text
    assert "this browser" in page.text and "token is removed" in page.text
    readme = (ROOT / "README.md").read_text()
    assert "Signing out at `/codec/logout` removes the cookie from that browser only" in readme


def _setup(**env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "PATH": f"{find_binary('temporal').parent}{os.pathsep}{os.environ['PATH']}",
        "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        **env,
    }
    script = str(ROOT / "deploy" / "temporal-setup.sh")
    return subprocess.run(["sh", script], env=environment, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "odd",
    [
        {"SETUP_ATTEMPTS": "3x", "SETUP_PAUSE_SECONDS": "0.1"},
        {"SETUP_ATTEMPTS": "0", "SETUP_PAUSE_SECONDS": "0.1"},
        {"SETUP_ATTEMPTS": "2", "SETUP_PAUSE_SECONDS": "soon"},
        {"SETUP_ATTEMPTS": "2", "SETUP_PAUSE_SECONDS": "1.5.2"},
    ],
)
def test_the_setup_job_fails_at_once_in_one_line_on_odd_retry_settings(odd: dict[str, str]) -> None:
    """A non-number made `[ "$attempt" -ge "$ATTEMPTS" ]` an error, which `if` reads as false: the
    job retried for ever and the stack hung instead of failing loudly; a pause `sleep` refuses
    stopped it with sleep's own message; zero attempts "failed after 0 attempts"."""
    started = time.monotonic()
    failed = _setup(**odd)
    assert failed.returncode != 0
    assert time.monotonic() - started < 10
    assert failed.stderr.strip().splitlines() == [failed.stderr.strip()]  # one line, before any call
    assert failed.stderr.startswith("temporal-setup: SETUP_")


def _temporal_password_line(password: str) -> str:
    """The line temporalio/server 1.30.1's embedded config template renders from POSTGRES_PWD."""
    return f'password: "{password}"'


def test_the_postgres_password_is_one_temporal_and_the_database_url_both_read_unchanged() -> None:
    """The compose stack hands POSTGRES_PASSWORD to Temporal's config template (inside a double-quoted
    YAML string) and, by hand, to REFUNDS_DATABASE_URL: the example must say which passwords survive
    both, and those must."""
    example = (ROOT / "deploy" / "postgres.env.example").read_text()
    assert "letters, digits, '-', '_' and '.' only" in example
    safe = "Ab9-_." + "0123456789abcdef" * 3
    assert yaml.safe_load(_temporal_password_line(safe))["password"] == safe
    assert make_url(f"postgresql+psycopg://refunds:{safe}@postgresql:5432/refunds").password == safe
    for unsafe in ('a"b', "a\\bc"):  # what the comment warns of, as the server's YAML parser sees it
        with contextlib.suppress(yaml.YAMLError):
            assert yaml.safe_load(_temporal_password_line(unsafe))["password"] != unsafe
    assert make_url("postgresql+psycopg://refunds:a@b@postgresql:5432/refunds").password != "a@b"
