"""deploy/temporal-setup.sh, the compose job that readies Temporal for the worker and the service,
run with the real `temporal` CLI against a real server: it waits for a healthy cluster, makes the
namespace, registers every search attribute with its type, is safe to run again, and fails loudly
(non-zero, one line) when it cannot, so nothing starts on a half-made namespace."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator

import pytest
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from domain.naming import SEARCH_ATTRIBUTES
from tests.conftest import free_port, repo_root
from workers.binaries import find_binary

SCRIPT = repo_root() / "deploy" / "temporal-setup.sh"


@pytest.fixture
async def bare_server() -> AsyncIterator[Client]:
    """A server with none of our search attributes, as a fresh stack's Temporal is."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(find_binary("temporal")), dev_server_log_level="error"
    )
    try:
        yield env.client
    finally:
        await env.shutdown()


def setup(address: str, namespace: str, attempts: int = 5) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": f"{find_binary('temporal').parent}{os.pathsep}{os.environ['PATH']}",
        "TEMPORAL_ADDRESS": address,
        "TEMPORAL_NAMESPACE": namespace,
        "SETUP_ATTEMPTS": str(attempts),
        "SETUP_PAUSE_SECONDS": "0.2",
    }
    return subprocess.run(["sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120)


async def registered(client: Client, namespace: str) -> dict[str, int]:
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    return dict(listed.custom_attributes)


async def test_it_makes_the_namespace_and_every_search_attribute_and_runs_again(
    bare_server: Client,
) -> None:
    namespace = f"refunds-{uuid.uuid4().hex[:8]}"
    first = setup(bare_server.service_client.config.target_host, namespace)
    again = setup(bare_server.service_client.config.target_host, namespace)
    assert first.returncode == 0, first.stdout + first.stderr
    assert again.returncode == 0, again.stdout + again.stderr
    found = await registered(bare_server, namespace)
    assert {key.name: key.indexed_value_type for key in SEARCH_ATTRIBUTES} == {
        name: found[name] for name in (key.name for key in SEARCH_ATTRIBUTES)
    }


async def test_an_attribute_of_another_type_fails_the_job(bare_server: Client) -> None:
    namespace = f"refunds-{uuid.uuid4().hex[:8]}"
    address = bare_server.service_client.config.target_host
    temporal = str(find_binary("temporal"))
    subprocess.run(
        [temporal, "operator", "namespace", "create", "-n", namespace, "--address", address], check=True
    )
    as_int = ["--name", "RefundStatus", "--type", "Int"]
    subprocess.run(
        [temporal, "operator", "search-attribute", "create", "-n", namespace, "--address", address, *as_int],
        check=True,
        capture_output=True,
    )
    failed = setup(address, namespace, attempts=2)
    assert failed.returncode != 0
    assert "temporal-setup: registering search attributes" in failed.stderr


def test_no_server_fails_the_job_after_its_retries() -> None:
    failed = setup(f"127.0.0.1:{free_port()}", "default", attempts=2)
    assert failed.returncode != 0
    assert "temporal-setup: waiting for a healthy Temporal" in failed.stderr
