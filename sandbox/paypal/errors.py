"""PayPal's error answers: `{"name", "message", "debug_id", "details": [{"issue", "description"}], "links"}`.

PayPal publishes one message per error name, and for many issues the one description it gives
(payments v2's `error_4xx` and per-operation error schemas, tests/contracts/specs/paypal.json): the
sandbox answers with those texts, and with its own description only where PayPal publishes none.
"""

from __future__ import annotations

from typing import Any

MESSAGES: dict[str, str] = {
    "INVALID_REQUEST": "Request is not well-formed, syntactically incorrect, or violates schema.",
    "AUTHENTICATION_FAILURE": (
        "Authentication failed due to missing authorization header, or invalid authentication credentials."
    ),
    "RESOURCE_NOT_FOUND": "The specified resource does not exist.",
    "RESOURCE_CONFLICT": "The server has detected a conflict while processing this request.",
    "UNPROCESSABLE_ENTITY": (
        "The requested action could not be performed, semantically incorrect, or failed business validation."
    ),
    "INTERNAL_SERVER_ERROR": "An internal server error occurred.",
}
DESCRIPTIONS: dict[str, str] = {
    "INVALID_RESOURCE_ID": (
        "Specified resource ID does not exist. Please check the resource ID and try again."
    ),
    "CAPTURE_FULLY_REFUNDED": "The capture has already been fully refunded",
    "REFUND_NOT_ALLOWED": "Capture cannot be refunded.",
    "REFUND_AMOUNT_EXCEEDED": (
        "The refund amount must be less than or equal to the capture amount that has not yet been refunded."
    ),
    "PREVIOUSLY_CAPTURED": "Authorization has been previously captured and hence cannot be voided.",
    "PREVIOUSLY_VOIDED": "Authorization has been previously voided and hence cannot be voided again.",
    "CANNOT_BE_VOIDED": "A reauthorization cannot be voided. Please void the original parent authorization.",
    "PREVIOUS_REQUEST_IN_PROGRESS": (
        "A previous request on this resource is currently in progress. Please wait for sometime and try"
        " again. It is best to space out the initial and the subsequent request(s) to avoid receiving"
        " this error."
    ),
}


class PayPalApiError(Exception):
    """A PayPal-shaped error answer. `message` is what went wrong in our words: the answer's
    `details[].description` where PayPal publishes no text of its own for the issue."""

    def __init__(self, status: int, name: str, message: str, issue: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.name = name
        self.message = message
        self.issue = issue

    def body(self, debug_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name, "message": MESSAGES.get(self.name, self.message)}
        body["debug_id"] = debug_id
        if self.issue is not None:
            body["details"] = [
                {"issue": self.issue, "description": DESCRIPTIONS.get(self.issue, self.message)}
            ]
        body["links"] = [
            {
                "href": f"https://developer.paypal.com/docs/api/payments/v2/#error-{self.issue or self.name}",
                "rel": "information_link",
            }
        ]
        return body


def unprocessable(issue: str, message: str) -> PayPalApiError:
    return PayPalApiError(422, "UNPROCESSABLE_ENTITY", message, issue)


def not_found(what: str) -> PayPalApiError:
    return PayPalApiError(404, "RESOURCE_NOT_FOUND", f"No {what}.", "INVALID_RESOURCE_ID")


def invalid_request(issue: str, message: str) -> PayPalApiError:
    return PayPalApiError(400, "INVALID_REQUEST", message, issue)


def authentication_failure() -> dict[str, Any]:
    """The 401 body: no debug id, as PayPal answers a request it could not authenticate."""
    return {
        "name": "AUTHENTICATION_FAILURE",
        "message": MESSAGES["AUTHENTICATION_FAILURE"],
        "links": [
            {"href": "https://developer.paypal.com/docs/api/overview/#error", "rel": "information_link"}
        ],
    }
