"""The README's and the ops guide's shell examples, as `test_docs` runs them and others check them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tests.conftest import repo_root

DOCUMENTS = ("README.md", "docs/ops.md")
_BLOCK = re.compile(
    r"(?P<before>[^\n]*)\n```bash\n(?P<script>.*?)```\n(?:<!-- expect: (?P<expect>.*?) -->)?", re.S
)


@dataclass(frozen=True)
class Example:
    where: str
    script: str
    expected: list[str]


def examples(document: str) -> list[Example]:
    text = (repo_root() / document).read_text()
    found = []
    for match in _BLOCK.finditer(text):
        if match["before"].strip() in ("<!-- illustrative -->", SETUP):
            continue
        line = text[: match.start("script")].count("\n") + 1
        expected = [word.strip() for word in (match["expect"] or "").split(" | ") if word.strip()]
        found.append(Example(f"{document}:{line}", match["script"], expected))
    return found


SETUP = "<!-- setup -->"  # a block run once, on a fresh machine (`setup_scripts`), not beside dev


def setup_scripts(document: str) -> list[str]:
    text = (repo_root() / document).read_text()
    return [match["script"] for match in _BLOCK.finditer(text) if match["before"].strip() == SETUP]
