"""deploy/postgres-init.sql as the official postgres image runs it on a fresh volume: a cluster made
by initdb for POSTGRES_USER, POSTGRES_DB created by the image, then the script under psql with
ON_ERROR_STOP. It must succeed (else the image stops and every later start skips it) and leave the
product's database and Temporal's two; a second run changes nothing."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port, repo_root

INIT = repo_root() / "deploy" / "postgres-init.sql"


def _binary(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _as_postgres(argv: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root; the image runs them as `postgres` too."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


class Cluster:
    def __init__(self, root: Path) -> None:
        self.data, self.sockets, self.port = root / "data", root / "run", free_port()
        self.sockets.mkdir()
        self.process: subprocess.Popen[bytes] | None = None

    def psql(self, user: str, database: str, *args: str) -> subprocess.CompletedProcess[str]:
        psql = _binary("psql")
        assert psql is not None
        argv = [psql, "-h", str(self.sockets), "-p", str(self.port), "-U", user, "--no-password"]
        argv += ["--no-psqlrc", "-v", "ON_ERROR_STOP=1", "--dbname", database, *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)

    def databases(self, user: str) -> set[str]:
        listed = self.psql(user, "postgres", "-At", "-c", "SELECT datname FROM pg_database")
        assert listed.returncode == 0, listed.stderr
        return set(listed.stdout.split())


@pytest.fixture
def image_like(tmp_path: Path) -> Iterator[tuple[Cluster, str]]:
    """A fresh cluster initialised as the image does for POSTGRES_USER=refunds (see
    deploy/postgres.env.example), with its POSTGRES_DB already created."""
    initdb, postgres = _binary("initdb"), _binary("postgres")
    if initdb is None or postgres is None or (os.geteuid() == 0 and shutil.which("runuser") is None):
        pytest.skip("PostgreSQL's server binaries are not installed here")
    root = Path(tempfile.mkdtemp(prefix="pg-image-"))
    root.chmod(0o777)  # the cluster is postgres's, as in the image
    cluster = Cluster(root)
    cluster.sockets.chmod(0o777)
    user = "refunds"
    made = subprocess.run(
        _as_postgres([initdb, "-D", str(cluster.data), "--username", user, "--auth", "trust"]),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    cluster.process = subprocess.Popen(
        _as_postgres(
            [
                postgres,
                "-D",
                str(cluster.data),
                "-p",
                str(cluster.port),
                "-k",
                str(cluster.sockets),
                "-c",
                "listen_addresses=",
            ]
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while cluster.psql(user, "postgres", "-c", "SELECT 1").returncode != 0:
            assert cluster.process.poll() is None and time.monotonic() < deadline, "postgres did not start"
            time.sleep(0.1)
        created = cluster.psql(user, "postgres", "-c", f'CREATE DATABASE "{user}"')  # POSTGRES_DB
        assert created.returncode == 0, created.stderr
        yield cluster, user
    finally:
        cluster.process.terminate()
        cluster.process.wait(30)
        shutil.rmtree(root, ignore_errors=True)


def test_the_init_script_succeeds_on_a_fresh_volume_and_again(image_like: tuple[Cluster, str]) -> None:
    cluster, user = image_like
    first = cluster.psql(user, user, "-f", str(INIT))
    again = cluster.psql(user, user, "-f", str(INIT))
    assert first.returncode == 0, first.stderr
    assert again.returncode == 0, again.stderr
    assert {"refunds", "temporal", "temporal_visibility"} <= cluster.databases(user)


def test_the_stack_names_the_database_the_image_creates() -> None:
    example = (repo_root() / "deploy" / "postgres.env.example").read_text()
    assert "POSTGRES_DB=refunds" in example.splitlines()
