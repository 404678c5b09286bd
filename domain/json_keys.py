"""A signed JSON body names each key once: parsers differ on a key given twice (the last, the first,
or an error), so a body read one way by whoever signed it and another by us is refused outright."""

from __future__ import annotations

import json
from typing import Any


class DuplicateKey(ValueError):
    pass


def _once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise DuplicateKey(f"the key {key!r} is given twice in one object")
        seen[key] = value
    return seen


def duplicate_key(raw: bytes) -> str | None:
    """Why `raw` (JSON another parser already read) names a key twice in one object; None if not."""
    try:
        json.loads(raw, object_pairs_hook=_once)
    except DuplicateKey as err:
        return str(err)
    except (ValueError, RecursionError):
        return None  # not for this check to judge: the request's own parser has read it
    return None
