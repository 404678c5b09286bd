"""Request bodies for the OpenAPI document of routes that read their raw body (a signature is
verified over its exact bytes before anything is parsed), so FastAPI cannot infer them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def json_body(schema: type[BaseModel] | dict[str, Any], description: str = "") -> dict[str, Any]:
    """`openapi_extra=` documenting a required JSON body: a model's schema, or a schema as given."""
    resolved = _inlined(schema.model_json_schema() if isinstance(schema, type) else dict(schema))
    body: dict[str, Any] = {"required": True, "content": {"application/json": {"schema": resolved}}}
    if description:
        body["description"] = description
    return {"requestBody": body}


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with pydantic's `$defs` written in where they are referenced: in the OpenAPI
    document a `#/$defs/...` reference would be resolved against the document's root, and miss."""
    definitions = schema.pop("$defs", {})

    def inline(node: Any, within: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [inline(item, within) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            name = ref.removeprefix("#/$defs/")
            if name in within:
                raise ValueError(f"{name} refers to itself: it cannot be written in")
            siblings = {key: inline(value, within) for key, value in node.items() if key != "$ref"}
            return {**inline(definitions[name], (*within, name)), **siblings}
        return {key: inline(value, within) for key, value in node.items()}

    inlined: dict[str, Any] = inline(schema, ())
    return inlined
