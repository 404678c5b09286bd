"""Check objects against the PSPs' published schemas (the pinned subset in `specs/`, SOURCES.md).

The subsets are OpenAPI (3.0 for Stripe and PayPal, 3.1 for Adyen). JSON Schema 2020-12 reads them
once OpenAPI's `nullable: true` becomes "or null": Stripe writes it beside `anyOf`, which OpenAPI 3.0
validators read as "not null" (openapi-schema-validator 0.9 does), so we translate it ourselves.
Formats are checked (`date-time`); unknown ones (Stripe's `unix-time`) are not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

Psp = Literal["stripe", "adyen", "paypal"]

HERE = Path(__file__).resolve().parent
_REF_PREFIX = "#/components/schemas/"


_LITERALS = frozenset({"enum", "required", "const", "default"})
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "schemas"})


def _or_null(node: Any) -> Any:
    """A schema with OpenAPI's `nullable: true` spelled as JSON Schema's "or null"."""
    if isinstance(node, list):
        return [_or_null(item) for item in node]
    if not isinstance(node, Mapping):
        return node
    converted: dict[str, Any] = {}
    for key, value in node.items():
        if key == "nullable":
            continue
        if key in _SCHEMA_MAPS and isinstance(value, Mapping):
            converted[key] = {name: _or_null(schema) for name, schema in value.items()}
        else:
            converted[key] = value if key in _LITERALS else _or_null(value)
    return {"anyOf": [converted, {"type": "null"}]} if node.get("nullable") is True else converted


@cache
def spec(psp: Psp) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((HERE / "specs" / f"{psp}.json").read_text())
    return document


@cache
def _components(psp: Psp) -> dict[str, Any]:
    converted: dict[str, Any] = _or_null(spec(psp)["components"])
    return converted


def example(psp: Psp, name: str) -> dict[str, Any]:
    """A PSP's own example object, as regenerate.py copied it."""
    loaded: dict[str, Any] = json.loads((HERE / "examples" / psp / f"{name}.json").read_text())
    return loaded


def _validator(psp: Psp, schema: Mapping[str, Any]) -> Draft202012Validator:
    root = {**_or_null(schema), "components": _components(psp)}
    return Draft202012Validator(root, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _leaves(error: ValidationError) -> list[ValidationError]:
    """An anyOf/oneOf failure as the errors of its closest alternative: the one of the instance's
    type with the fewest errors (`{"type": "null"}` says nothing about an object that is wrong)."""
    if not error.context:
        return [error]
    alternatives: dict[Any, list[ValidationError]] = {}
    for inner in error.context:
        alternatives.setdefault(inner.relative_schema_path[0], []).append(inner)
    typed = [
        errors
        for errors in alternatives.values()
        if not all(e.validator == "type" and not e.relative_path for e in errors)
    ]
    closest = min(typed or list(alternatives.values()), key=len)
    return [leaf for inner in closest for leaf in _leaves(inner)]


def problems(psp: Psp, schema: Mapping[str, Any], instance: Any) -> list[str]:
    """Every way `instance` breaks `schema`, as `path: message` (path `$` is the object itself)."""
    found = set()
    for error in _validator(psp, schema).iter_errors(instance):
        for leaf in _leaves(error):
            where = "$" + "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in leaf.absolute_path)
            found.add(f"{where}: {leaf.message[:200]}")
    return sorted(found)


def assert_valid(psp: Psp, schema: Mapping[str, Any], instance: Any, what: str) -> None:
    found = problems(psp, schema, instance)
    assert not found, f"{psp} {what} breaks the published schema:\n  " + "\n  ".join(found)


def named(name: str) -> dict[str, str]:
    """The schema of that name in the subset."""
    return {"$ref": _REF_PREFIX + name}


def assert_schema(psp: Psp, name: str, instance: Any) -> None:
    if name not in spec(psp)["components"]["schemas"]:
        raise KeyError(f"{name} is not in specs/{psp}.json: add it to regenerate.py")
    assert_valid(psp, named(name), instance, name)


def assert_response(psp: Psp, operation: str, status: int, body: Any) -> None:
    """An answer of `operation` ("GET /v1/refunds/{refund}") with its HTTP status, or the spec's
    `default` answer when the spec names no schema for that status."""
    answers = spec(psp)["x-responses"][operation]
    schema = answers.get(str(status)) or answers.get("default")
    assert schema is not None, f"{psp} publishes no schema for {operation} answering {status}"
    assert_valid(psp, schema, body, f"{operation} -> {status}")


def assert_webhook(psp: Psp, key: str, payload: Any) -> None:
    """A webhook body by the spec's own key (Adyen: the eventCode)."""
    assert_valid(psp, spec(psp)["x-webhooks"][key], payload, f"webhook {key}")


def _resolve(psp: Psp, schema: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in schema:
        schema = spec(psp)["components"]["schemas"][schema["$ref"].removeprefix(_REF_PREFIX)]
    return schema


def _field_schemas(psp: Psp, schema: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    """The schemas `name` may have inside `schema`, through `$ref`, allOf/anyOf/oneOf and arrays."""
    schema = _resolve(psp, schema)
    if name == "[]":
        return [schema["items"]] if "items" in schema else []
    found = [schema["properties"][name]] if name in schema.get("properties", {}) else []
    for combinator in ("allOf", "anyOf", "oneOf"):
        for option in schema.get(combinator, []):
            found += _field_schemas(psp, option, name)
    return found


def published(psp: Psp, schema_name: str, path: str) -> bool:
    """Whether the PSP publishes the field at `path` (`a.b[].c`) in the named schema."""
    frontier: list[Mapping[str, Any]] = [named(schema_name)]
    for part in path.replace("[]", ".[]").split("."):
        frontier = [inner for schema in frontier for inner in _field_schemas(psp, schema, part)]
    return bool(frontier)
