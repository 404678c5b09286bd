"""A reviewer's session for the codec server: the Temporal UI calls /codec from the browser, which
can send a cookie (TEMPORAL_CODEC_INCLUDE_CREDENTIALS) but not our bearer token.

The cookie names the reviewer and when it expires, sealed with an HMAC keyed by the service's review
signing secret and bound to the digest of the token the reviewer signed in with: a token removed from
REFUNDS_REVIEWER_TOKENS ends every session it opened, and nobody without the service's secret can
make one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

COOKIE = "refunds_codec_session"
SESSION_SECONDS = 8 * 3600


def _seal(secret: str, name: str, expires: int, token_digest: str) -> str:
    key = hashlib.sha256(f"refunds codec session:{secret}".encode()).digest()
    return hmac.new(key, f"{name}\n{expires}\n{token_digest}".encode(), hashlib.sha256).hexdigest()


def issue(secrets: list[str], name: str, token_digest: str, now: int) -> str:
    expires = now + SESSION_SECONDS
    encoded = base64.urlsafe_b64encode(name.encode()).decode()
    return f"{encoded}.{expires}.{_seal(secrets[0], name, expires, token_digest)}"


def holder(secrets: list[str], reviewers: list[tuple[str, str]], cookie: str, now: int) -> str | None:
    """The installation reviewer whose live session `cookie` is; None for anything else."""
    parts = cookie.split(".")
    if len(parts) != 3 or not parts[1].isascii() or not parts[1].isdigit() or len(parts[1]) > 12:
        return None
    try:
        name = base64.urlsafe_b64decode(parts[0].encode("ascii")).decode()
    except (UnicodeError, ValueError, binascii.Error):
        return None
    expires = int(parts[1])
    if expires <= now:
        return None
    found = None
    for reviewer, digest in reviewers:
        if reviewer != name:
            continue
        for secret in secrets:  # every signing secret while rotating
            if hmac.compare_digest(_seal(secret, name, expires, digest), parts[2]):
                found = name
    return found
