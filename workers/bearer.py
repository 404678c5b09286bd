"""`Authorization: Bearer <token>`, read one way by the service and by `refunds mcp --http`."""

from __future__ import annotations


def bearer_token(authorization: str | None) -> str:
    """The token of `Authorization: Bearer <token>` (the scheme in any case, RFC 7235); "" for none."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""
