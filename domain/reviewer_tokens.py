"""Reviewer tokens, kept hashed at rest: configuration holds `name:sha256:<hex>`, never the token."""

from __future__ import annotations

import hashlib
import hmac
import secrets

HASHED = "sha256:"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_reviewer_entry(name: str) -> tuple[str, str]:
    """A fresh token for `name` and the configuration entry that recognises it."""
    token = secrets.token_urlsafe(24)
    return token, f"{name}:{HASHED}{token_digest(token)}"


def parse_entries(configured: str) -> list[tuple[str, str]]:
    """`name:sha256:<hex>` (or, in dev only, `name:token`) pairs, comma-separated."""
    entries = []
    for raw in configured.split(","):
        name, _, secret = raw.strip().partition(":")
        if name and secret:
            entries.append((name, secret))
    return entries


def entry_digests(entries: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Each reviewer with the digest of the token that proves them."""
    return [
        (name, secret.removeprefix(HASHED) if secret.startswith(HASHED) else token_digest(secret))
        for name, secret in entries
    ]


def reviewer_for(token: str, entries: list[tuple[str, str]]) -> str | None:
    """Whose token this is; compared in constant time against every entry."""
    digest = token_digest(token)
    found = None
    for name, expected in entry_digests(entries):
        if hmac.compare_digest(digest, expected):
            found = name
    return found
