"""The Temporal UI decodes payloads from the reviewer's browser, which sends a cookie and not our
bearer token: a reviewer signs in at /codec/login and the UI's codec calls carry that session.
Only the installation's reviewers get one, nobody can forge one, and removing a reviewer's token
ends it."""

from __future__ import annotations

import json
from pathlib import Path

from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from domain.reviewer_tokens import new_reviewer_entry, token_digest
from tests.conftest import Stack, starter_for
from workers.codec import EncryptionCodec, new_key_entry, parse_keys
from workers.service import codec_session

KEYS = new_key_entry("k1")
FORM = {"content-type": "application/x-www-form-urlencoded"}
UI = "http://localhost:8080"


def test_a_session_is_the_reviewers_until_it_expires_or_their_token_goes() -> None:
    secrets = ["a-service-signing-secret-of-32-characters!"]
    reviewers = [("alice", token_digest("alice-token")), ("bob", token_digest("bob-token"))]
    session = codec_session.issue(secrets, "alice", token_digest("alice-token"), now=1_000)
    assert codec_session.holder(secrets, reviewers, session, now=1_001) == "alice"
    assert (
        codec_session.holder(secrets, reviewers, session, now=1_000 + codec_session.SESSION_SECONDS) is None
    )
    rotated = [("alice", token_digest("alice-new-token")), reviewers[1]]
    assert codec_session.holder(secrets, rotated, session, now=1_001) is None  # the token went
    assert (
        codec_session.holder(["another-secret-entirely-of-32-chars!!"], reviewers, session, now=1_001) is None
    )
    name, expires, seal = session.split(".")
    as_bob = f"{codec_session.issue(secrets, 'bob', 'x', 0).split('.')[0]}.{expires}.{seal}"
    later = f"{name}.{int(expires) + 3600}.{seal}"
    for forged in (as_bob, later, "", "a.b", "..", f"{name}.{expires}.{seal}0", f"{name}.²{expires}.{seal}"):
        assert codec_session.holder(secrets, reviewers, forged, now=1_001) is None


async def test_a_reviewer_signs_in_once_and_the_ui_decodes_with_the_session(stack: Stack) -> None:
    payload = (await EncryptionCodec(parse_keys(KEYS)).encode([Payload(data=b'{"customer": "cus-1"}')]))[0]
    request = json_format.MessageToJson(Payloads(payloads=[payload]))
    settings = {
        "payload_keys": KEYS,
        "codec_cors_origins": UI,
        "reviewer_tokens": "alice:alice-token",
    }
    async with starter_for(stack, **settings) as (_, http):
        anonymous = await http.post("/codec/decode", content=request)
        page = await http.get("/codec/login")
        wrong = await http.post("/codec/login", content="token=guess", headers=FORM)
        signed_in = await http.post("/codec/login", content="token=alice-token", headers=FORM)
        cookie = signed_in.cookies.get(codec_session.COOKIE)
        # the UI's call: cross-origin from the UI's page, with credentials
        preflight = await http.options(
            "/codec/decode",
            headers={
                "Origin": UI,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        opened = await http.post("/codec/decode", content=request, headers={"Origin": UI})
        await http.post("/codec/logout")
        after_logout = await http.post("/codec/decode", content=request)
        http.cookies.set(codec_session.COOKIE, (cookie or "")[:-1] + "0", path="/codec")
        forged = await http.post("/codec/decode", content=request)
    assert (anonymous.status_code, anonymous.json()["error"]["code"]) == (401, "unauthorized")
    assert page.status_code == 200 and 'name="token"' in page.text
    assert page.headers["x-frame-options"] == "DENY"  # no other page frames the sign-in
    assert wrong.status_code == 401 and codec_session.COOKIE not in wrong.cookies
    assert signed_in.status_code == 200 and "Signed in as alice" in signed_in.text
    set_cookie = signed_in.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie and "path=/codec" in set_cookie
    assert preflight.headers["access-control-allow-origin"] == UI
    assert preflight.headers["access-control-allow-credentials"] == "true"
    assert opened.status_code == 200, opened.text
    assert json.loads(opened.text)["payloads"][0]["data"]  # opened for the session's reviewer
    assert opened.headers["access-control-allow-credentials"] == "true"
    assert after_logout.status_code == forged.status_code == 401


async def test_only_the_installations_reviewers_get_a_session(stack: Stack, tmp_path: Path) -> None:
    """A merchant's reviewer reads its own merchant's refunds, never anyone's payloads."""
    carol_token, carol_entry = new_reviewer_entry("carol")
    merchants = tmp_path / "merchants.toml"
    merchants.write_text(
        f'[merchants.globex]\ninbound_webhook_secret = "globex-secret"\nreviewer_tokens = "{carol_entry}"\n'
    )
    async with starter_for(stack, payload_keys=KEYS, merchants_file=merchants) as (_, http):
        login = await http.post("/codec/login", content=f"token={carol_token}", headers=FORM)
        bearer = await http.post(
            "/codec/decode", content="{}", headers={"Authorization": f"Bearer {carol_token}"}
        )
    assert (login.status_code, bearer.status_code) == (401, 403)
    assert codec_session.COOKIE not in login.cookies
