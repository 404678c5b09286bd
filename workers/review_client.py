"""`refunds approve` / `reject`: a decision goes through the service, which proves the reviewer by
their token and signs the decision; the CLI never puts a name on an approval itself."""

from __future__ import annotations

from typing import Any

import httpx

from workers.settings import DEV_REVIEWER_TOKEN, Settings

TIMEOUT_SECONDS = 30.0


class ReviewError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def reviewer_token(settings: Settings, given: str | None) -> str:
    """The option, else REFUNDS_REVIEWER_TOKEN, else (in dev only) the dev reviewer's token."""
    token = (given or settings.reviewer_token).strip()
    if not token and settings.environment == "dev":
        token = DEV_REVIEWER_TOKEN
    if not token:
        raise ReviewError("unauthorized", "pass --token or set REFUNDS_REVIEWER_TOKEN")
    return token


def decide(
    settings: Settings,
    request_id: str,
    verdict: str,
    reason: str,
    token: str,
    expected_reviewer: str | None = None,
) -> dict[str, Any]:
    """Approve or reject as the token's reviewer; `expected_reviewer` (the `--reviewer` option) must
    be who the token names, so a mix-up of tokens is refused before anything is decided."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=settings.service_base, headers=headers, timeout=TIMEOUT_SECONDS) as http:
        if expected_reviewer:
            me = _answer(_call(http, "GET", "/v1/reviewers/me"))
            if me["reviewer"] != expected_reviewer:
                raise ReviewError(
                    "unauthorized", f"the token is {me['reviewer']}'s, not {expected_reviewer}'s"
                )
        body = {"reason": reason}
        return _answer(_call(http, "POST", f"/v1/refunds/{request_id}/{verdict}", json=body))


def _call(http: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    try:
        return http.request(method, path, **kwargs)
    except httpx.HTTPError as err:
        raise ReviewError(
            "service_unavailable",
            f"no refunds service answers at {http.base_url} ({err}): run this where `refunds dev` runs, "
            "or set REFUNDS_SERVICE_URL",
        ) from err


def _answer(response: httpx.Response) -> dict[str, Any]:
    try:
        payload: dict[str, Any] = response.json()
    except ValueError as err:
        raise ReviewError("service_error", f"HTTP {response.status_code}") from err
    if response.is_success:
        return payload
    error = payload.get("error") or {}
    message = str(error.get("message", payload))
    if response.status_code == 401:
        # the token given, or the dev reviewer's default, is none of the configured reviewers'
        message += (
            ": pass your own --token (or set REFUNDS_REVIEWER_TOKEN); the dev reviewer's default "
            "token works only while REFUNDS_REVIEWER_TOKENS is unset"
        )
    raise ReviewError(str(error.get("code", "service_error")), message)
