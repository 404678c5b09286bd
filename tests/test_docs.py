"""The README and the ops guide run as written: `refunds dev` on free ports and a fresh data
directory, then every shell example in order, pasted into bash as a user would, from a directory
where `refunds dev`'s data lives in the default `./.refunds` and nothing is exported.

A block the reader should not run here (installing, Docker) is marked `<!-- illustrative -->` on the
line before it; `<!-- expect: a | b -->` after a block names words its output must contain."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dev_run import DevRun
from tests.documents import DOCUMENTS, examples, setup_scripts


def test_every_document_has_examples_and_marks_what_it_does_not_run() -> None:
    """The runner below cannot pass by finding nothing."""
    counts = {document: len(examples(document)) for document in DOCUMENTS}
    assert all(count >= 2 for count in counts.values()), counts


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[DevRun]:
    run = DevRun(tmp_path / ".refunds")
    yield run
    run.stop()


def test_the_documents_run_as_written(dev: DevRun, tmp_path: Path) -> None:
    dev.start()
    ports = {
        "127.0.0.1:8000": f"127.0.0.1:{dev.env['REFUNDS_HTTP_PORT']}",
        "127.0.0.1:12111": f"127.0.0.1:{dev.env['REFUNDS_SANDBOX_PORT']}",
        "127.0.0.1:8233": f"127.0.0.1:{dev.env['REFUNDS_TEMPORAL_UI_PORT']}",
    }
    # a user's shell: the product's commands on PATH, no REFUNDS_* exported, dev's data in ./.refunds
    shell = {name: value for name, value in os.environ.items() if not name.startswith("REFUNDS_")}
    shell["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{shell.get('PATH', '')}"
    for document in DOCUMENTS:
        for example in examples(document):
            script = example.script
            for documented, actual in ports.items():
                script = script.replace(documented, actual)
            ran = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", script],
                cwd=tmp_path,
                env=shell,
                capture_output=True,
                text=True,
                timeout=120,
            )
            output = ran.stdout + ran.stderr
            assert ran.returncode == 0, f"{example.where} exited {ran.returncode}:\n{output}"
            missing = [word for word in example.expected if word not in output]
            assert not missing, f"{example.where} did not say {missing}:\n{output}"


def test_the_readmes_setup_makes_an_environment_where_python_is_its_own(tmp_path: Path) -> None:
    """The README's first lines, run in a fresh directory with only `python3` on the PATH: a virtual
    environment whose `python` (the name every later snippet calls) is its own."""
    [setup] = setup_scripts("README.md")
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "python3").symlink_to(Path(sys.executable))  # a system with python3 alone
    shell = {"PATH": f"{bare}{os.pathsep}/usr/bin{os.pathsep}/bin", "HOME": str(tmp_path)}
    ran = subprocess.run(
        ["bash", "-c", f"{setup}\ncommand -v python && python -c 'import sys; print(sys.prefix)'"],
        cwd=tmp_path,
        env=shell,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    where, prefix = ran.stdout.split()
    assert where == str(tmp_path / ".venv" / "bin" / "python") and prefix == str(tmp_path / ".venv")
