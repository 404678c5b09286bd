"""The docker-compose stack and the Dockerfile, proved against the code without a Docker engine:
every setting is one the product knows, the required ones are given, ports and health checks match
the code, commands are real CLI commands, the stack comes up in order."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.main import get_command

from domain.naming import SEARCH_ATTRIBUTES
from tests.conftest import Stack, free_port, repo_root
from tests.helpers import eventually
from workers.cli import app
from workers.service.health import router as health_router
from workers.settings import Settings
from workers.temporal import connect, metrics_runtime

ROOT = repo_root()
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
OURS = {name: service for name, service in SERVICES.items() if service.get("build") == "."}
KNOWN = {f"REFUNDS_{name.upper()}" for name in Settings.model_fields}
SA_TYPES = {"Keyword": "keyword", "Int": "int", "Datetime": "datetime", "Bool": "bool"}


def env_file(path: str) -> dict[str, str]:
    """The committed example of an env file (the real one holds secrets and is not committed)."""
    lines = (ROOT / f"{path}.example").read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))
    return {key: value for key, value in pairs}


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    values: dict[str, str] = {}
    for path in service.get("env_file", []):
        values |= env_file(path)
    values |= {key: str(value) for key, value in service.get("environment", {}).items()}
    return values


def test_our_services_are_the_migration_job_the_worker_and_the_service() -> None:
    assert set(OURS) == {"migrate", "worker", "service"}


@pytest.mark.parametrize("name", sorted(OURS))
def test_every_setting_is_known_and_the_required_ones_are_given(name: str) -> None:
    environment = environment_of(OURS[name])
    assert set(environment) <= KNOWN, set(environment) - KNOWN
    required = {"REFUNDS_DATABASE_URL", "REFUNDS_TEMPORAL_ADDRESS", "REFUNDS_INBOUND_WEBHOOK_SECRET"}
    assert required <= set(environment)
    assert environment["REFUNDS_ENVIRONMENT"] == "production"
    assert environment["REFUNDS_DATABASE_URL"].startswith("postgresql+psycopg://")
    # the values parse as the product's settings (production rules included)
    settings = Settings(**{key.removeprefix("REFUNDS_").lower(): value for key, value in environment.items()})
    assert settings.temporal_address == "temporal:7233"


@pytest.mark.parametrize("name", sorted(OURS))
def test_commands_are_real_cli_commands(name: str) -> None:
    cli = get_command(app)
    command = OURS[name]["command"]
    found: Any = cli
    for word in command:
        found = found.commands[word]  # type: ignore[attr-defined]
    assert found.name == command[-1]


def test_the_service_port_and_health_check_match_the_code() -> None:
    service = OURS["service"]
    port = environment_of(service)["REFUNDS_HTTP_PORT"]
    assert service["ports"] == [f"{port}:{port}"]
    assert f"http://127.0.0.1:{port}/healthz" in " ".join(service["healthcheck"]["test"])
    assert environment_of(service)["REFUNDS_HTTP_HOST"] == "0.0.0.0"
    assert "/healthz" in {route.path for route in health_router.routes}  # type: ignore[attr-defined]


def test_the_worker_health_check_is_its_metrics_port() -> None:
    worker = OURS["worker"]
    port = environment_of(worker)["REFUNDS_WORKER_METRICS_PORT"]
    assert f"http://127.0.0.1:{port}/metrics" in " ".join(worker["healthcheck"]["test"])


def test_the_stack_comes_up_in_order() -> None:
    def waits_for(name: str) -> dict[str, str]:
        return {dep: cond["condition"] for dep, cond in SERVICES[name].get("depends_on", {}).items()}

    assert waits_for("temporal-schema") == {"postgresql": "service_healthy"}
    assert waits_for("temporal") == {"temporal-schema": "service_completed_successfully"}
    assert waits_for("temporal-setup") == {"temporal": "service_healthy"}
    assert waits_for("migrate") == {"postgresql": "service_healthy"}
    for name in ("worker", "service"):
        assert waits_for(name) == {
            "temporal-setup": "service_completed_successfully",
            "migrate": "service_completed_successfully",
        }
    checked = {name for name, service in SERVICES.items() if "test" in service.get("healthcheck", {})}
    assert checked == {"postgresql", "temporal", "worker", "service"}  # what others wait for, and ours


def test_one_shot_jobs_retry_a_few_times_then_fail_loudly() -> None:
    """A job that connects a moment too early is started again; one that keeps failing stops the
    stack's start instead of being hidden (`|| true`)."""
    for name in ("temporal-schema", "temporal-setup", "migrate"):
        assert SERVICES[name]["restart"] == "on-failure:5", name
        assert "|| true" not in str(SERVICES[name].get("command", "")), name
    assert "|| true" not in (ROOT / "deploy" / "temporal-setup.sh").read_text()


def test_postgresql_is_healthy_only_when_its_real_server_answers_over_tcp() -> None:
    """The image's first-boot server listens on its socket alone; pg_isready without -h would call
    it ready and let the schema job connect to a server about to stop."""
    check = SERVICES["postgresql"]["healthcheck"]["test"][1]
    assert "pg_isready -h 127.0.0.1" in check and "-d $${POSTGRES_DB}" in check


def test_temporal_binds_every_interface_so_its_health_check_and_clients_reach_it() -> None:
    """Without BIND_ON_IP the official image binds the container's own address only, and
    `nc -z localhost 7233` is refused for ever."""
    temporal = SERVICES["temporal"]
    assert temporal["environment"]["BIND_ON_IP"] == "0.0.0.0"
    assert temporal["healthcheck"]["test"] == ["CMD", "nc", "-z", "localhost", "7233"]


def test_the_setup_job_is_the_tested_script() -> None:
    job = SERVICES["temporal-setup"]
    assert job["entrypoint"] == ["sh", "/scripts/temporal-setup.sh"]
    assert "./deploy/temporal-setup.sh:/scripts/temporal-setup.sh:ro" in job["volumes"]
    assert job["environment"]["TEMPORAL_ADDRESS"] == "temporal:7233"


def test_every_search_attribute_is_registered_with_its_type() -> None:
    script = (ROOT / "deploy" / "temporal-setup.sh").read_text()
    registered = dict(re.findall(r"--name (\w+) --type (\w+)", script))
    assert {name: SA_TYPES[kind] for name, kind in registered.items()} == {
        key.name: key.indexed_value_type.name.removeprefix("INDEXED_VALUE_TYPE_").lower()
        for key in SEARCH_ATTRIBUTES
    }


def test_temporal_runs_on_its_official_images_with_postgresql() -> None:
    for name in ("temporal", "temporal-schema", "temporal-setup", "temporal-ui"):
        assert SERVICES[name]["image"].startswith("temporalio/"), name
    assert SERVICES["temporal"]["environment"]["DB"] == "postgres12"
    databases = (ROOT / "deploy" / "postgres-init.sql").read_text()
    assert {"refunds", "temporal", "temporal_visibility"} <= set(
        re.findall(r"CREATE DATABASE (\w+)", databases)
    )
    assert "refunds" in environment_of(OURS["worker"])["REFUNDS_DATABASE_URL"].rsplit("/", 1)[-1]


def test_image_versions_are_pinned_exactly_in_one_place() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    pinned = COMPOSE["x-images"]
    for image in pinned.values():
        tag = image.partition(":")[2]
        assert re.fullmatch(r"\d+(\.\d+){0,2}", tag), image  # no floating minor versions
        assert text.count(image) == 1, image  # named once, used through its anchor
    used = {
        service["image"] for service in SERVICES.values() if "image" in service and "build" not in service
    }
    assert used == set(pinned.values())
    assert all(
        re.fullmatch(r"\d+\.\d+\.\d+", image.partition(":")[2]) for image in used if "temporalio/" in image
    )


def test_the_ui_decodes_through_the_service_from_the_browser() -> None:
    """The UI's codec endpoint is called by the reviewer's browser: it must be the service's published
    address, with the session cookie, and the service must allow the UI's own origin."""
    ui = SERVICES["temporal-ui"]
    endpoint = ui["environment"]["TEMPORAL_CODEC_ENDPOINT"]
    service_port = SERVICES["service"]["ports"][0].split(":")[0]
    assert endpoint == f"http://localhost:{service_port}/codec"
    assert ui["environment"]["TEMPORAL_CODEC_INCLUDE_CREDENTIALS"] == "true"
    ui_port = ui["ports"][0].split(":")[0]
    origins = environment_of(SERVICES["service"])["REFUNDS_CODEC_CORS_ORIGINS"].split(",")
    assert f"http://localhost:{ui_port}" in origins


def test_the_dockerfile_is_multi_stage_slim_non_root_and_runs_the_cli() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", dockerfile, flags=re.MULTILINE)
    assert len(stages) >= 2 and all("slim" in stage for stage in stages)
    assert re.search(r"^USER (?!root)\w+", dockerfile, flags=re.MULTILINE)
    assert "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile
    assert 'ENTRYPOINT ["refunds"]' in dockerfile
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'refunds = "workers.cli:main"' in pyproject
    copied = set(re.findall(r"^COPY (\w+) \1$", dockerfile, flags=re.MULTILINE))
    packages = {"domain", "workflows", "activities", "adapters", "workers"}
    assert copied == packages and all((ROOT / package).is_dir() for package in packages)
    # The PSP sandbox is a dev and test tool: dev installs get it, the image (a wheel built from
    # what is copied) does not, and nothing copied may contain it.
    assert (ROOT / "sandbox").is_dir() and "sandbox" not in copied
    assert '"sandbox*"' in pyproject
    assert not any((ROOT / package / "sandbox").exists() for package in packages)


def test_only_the_service_can_sign_review_decisions() -> None:
    """A worker runs PSP calls at scale; it never holds the key that makes an approval count."""
    holders = {name for name in OURS if "REFUNDS_REVIEW_SIGNING_KEY" in environment_of(OURS[name])}
    assert holders == {"service"}


def test_no_secret_is_committed() -> None:
    assert not (ROOT / "deploy" / "refunds.env").exists() or ".env" in (ROOT / ".gitignore").read_text()
    for path in Path(ROOT / "deploy").glob("*.example"):
        for key, value in env_file(str(path.relative_to(ROOT)).removesuffix(".example")).items():
            if "SECRET" in key or "PASSWORD" in key or key.endswith("_KEY"):
                assert value == "" or value.startswith("change-me"), key


async def test_the_worker_serves_temporal_sdk_metrics_on_its_port(stack: Stack) -> None:
    port = free_port()
    settings = stack.settings.model_copy(update={"worker_metrics_port": port})
    client = await connect(settings, metrics_runtime(port))
    await client.count_workflows()  # any call: the runtime now reports

    async def scrape() -> httpx.Response:
        async with httpx.AsyncClient() as http:
            return await http.get(f"http://127.0.0.1:{port}/metrics")

    response = await eventually(scrape, lambda r: r.status_code == 200)
    assert "temporal_request" in response.text
