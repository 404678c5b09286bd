"""Schemathesis fuzzing of the service's own OpenAPI: every documented operation gets positive and
negative cases generated from its schema, sent in-process to the app, and every answer is checked
by schemathesis' built-in checks (no 5xx, documented status codes, content types and bodies) and by
ours: a 4xx body is `{"error": {"code", "message"}}`, and nothing a fuzzed request carries starts,
signals or steers a workflow (no request here is signed: each must be refused before Temporal).

Generation is derandomized Hypothesis with a small budget per operation, so a run is the same run
every time; a failure prints the operation, the check and a curl line that reproduces it."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from hypothesis.strategies import SearchStrategy
from pydantic import BaseModel
from schemathesis import Case, CheckContext, GenerationMode, Response
from schemathesis.core.result import Err
from schemathesis.specs.openapi.schemas import OpenApiSchema
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    SignalWorkflowInput,
    StartWorkflowInput,
    StartWorkflowUpdateInput,
    StartWorkflowUpdateWithStartInput,
)

from domain.requests import RefundRequest
from tests.conftest import Stack
from tests.flows import assert_not_started
from workers.psps import build_directory
from workers.service.app import create_app
from workers.service.deps import Services
from workers.service.openapi import json_body
from workers.settings import DEV_REVIEWER_TOKEN

MAX_EXAMPLES = 30  # per operation and generation mode: the module stays well under a minute on 2 cores
OPERATIONS = {
    "POST /v1/refund-requests",
    "GET /v1/refunds/{request_id}",
    "POST /v1/refunds/{request_id}/approve",
    "POST /v1/refunds/{request_id}/reject",
    "POST /v1/refunds/{request_id}/goods-received",
    "GET /v1/reviewers/me",
    "GET /v1/client",
    "GET /v1/client/refunds",
    "POST /webhooks/{provider}",
    "POST /webhooks/{provider}/{merchant_id}",
    "POST /codec/decode",
    "POST /codec/encode",
    "GET /healthz",
    "GET /metrics",
}
NOTHING_TO_SEND = {"GET /healthz", "GET /metrics"}  # no parameters, no body: one request says it all
# no request to these can break their schema: no body, and parameters any string satisfies
NOTHING_TO_NEGATE = {
    "GET /v1/refunds/{request_id}",
    "GET /v1/reviewers/me",
    "GET /v1/client",
    *NOTHING_TO_SEND,
}

# A forged PSP delivery is refused with 400 (the PSPs' own convention for a bad signature), which no
# schema can tell from a well-formed body: for these routes 400 joins schemathesis' default answers
# to valid data (401 and 403 are there for the same reason on routes that take credentials).
_CONFIG = schemathesis.Config.from_dict(
    {
        "operations": [
            {
                "include-path-regex": "^/webhooks/",
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]
                    }
                },
            }
        ]
    }
)


class _Recorder(Interceptor):
    """Every client call that could start, signal or steer a workflow, as `kind workflow-id`."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _Recording(next, self.calls)


class _Recording(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, calls: list[str]) -> None:
        super().__init__(next)
        self._calls = calls

    async def start_workflow(self, input: StartWorkflowInput) -> Any:
        self._calls.append(f"start {input.id}")
        return await super().start_workflow(input)

    async def signal_workflow(self, input: SignalWorkflowInput) -> None:
        self._calls.append(f"signal {input.id}")
        await super().signal_workflow(input)

    async def start_workflow_update(self, input: StartWorkflowUpdateInput) -> Any:
        self._calls.append(f"update {input.id}")
        return await super().start_workflow_update(input)

    async def start_update_with_start_workflow(self, input: StartWorkflowUpdateWithStartInput) -> Any:
        self._calls.append(f"update-with-start {input.start_workflow_input.id}")
        return await super().start_update_with_start_workflow(input)


@dataclass
class Fuzzed:
    """The service as fuzzed: its app on a task queue no worker polls, behind a recording client."""

    schema: OpenApiSchema
    task_queue: str
    calls: list[str]
    refund_request_ids: set[str] = field(default_factory=set)


@pytest.fixture(scope="module")
async def fuzzed(stack: Stack) -> Fuzzed:
    recorder = _Recorder()
    config = stack.client.config()
    config["interceptors"] = [recorder]
    client = Client(**config)
    payload_key = base64.b64encode(bytes(range(32))).decode()
    settings_ = stack.settings.model_copy(
        update={
            "task_queue": f"fuzz-{uuid.uuid4().hex[:8]}",
            "reviewer_tokens": f"{stack.settings.reviewer_tokens},ops:{DEV_REVIEWER_TOKEN}",
            "payload_keys": f"fuzz:{payload_key}",  # the codec routes answer, not just 404
        }
    )
    services = Services(settings_, stack.database, client, build_directory(settings_, stack.database))
    # schemathesis runs the app on an event loop of its own; Temporal's client answers on any loop
    app = create_app(services)
    schema = await asyncio.to_thread(schemathesis.openapi.from_asgi, "/openapi.json", app, config=_CONFIG)
    return Fuzzed(schema=schema, task_queue=settings_.task_queue, calls=recorder.calls)


def error_body_shape(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """Every error leaves as `{"error": {"code": str, "message": str}}` (and optional details)."""
    if response.status_code < 400:
        return None
    payload = json.loads(response.content)
    assert isinstance(payload, dict) and set(payload) == {"error"}, f"not an error body: {payload!r}"
    error = payload["error"]
    assert isinstance(error, dict) and set(error) <= {"code", "message", "details"}, error
    assert isinstance(error.get("code"), str) and isinstance(error.get("message"), str), error
    return None


@dataclass
class Run:
    sent: Counter[tuple[str, GenerationMode]] = field(default_factory=Counter)  # by operation and mode
    failures: list[str] = field(default_factory=list)
    nothing_to_negate: set[str] = field(default_factory=set)  # operations whose every value is valid

    def operations(self) -> set[str]:
        return {label for label, _ in self.sent}


def _fuzz(fuzzed: Fuzzed, include: Callable[[str], bool], headers: dict[str, str] | None = None) -> Run:
    """Every included operation, positive then negative cases; all failures are collected, so one
    operation failing does not hide another's."""
    run = Run()
    for result in fuzzed.schema.get_all_operations():
        if isinstance(result, Err):  # an operation schemathesis cannot read is a broken document
            run.failures.append(f"unreadable operation: {result.err()}")
            continue
        operation = result.ok()
        if not include(operation.label):
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _cases(fuzzed, run, operation.as_strategy(generation_mode=mode, headers=headers), mode)()
            except Unsatisfiable:
                if mode is GenerationMode.POSITIVE:
                    raise
                run.nothing_to_negate.add(operation.label)
            except (Exception, BaseExceptionGroup) as err:  # schemathesis' FailureGroup is the latter
                run.failures.append(f"{operation.label} ({mode.value}): {err}")
    return run


def _cases(
    fuzzed: Fuzzed, run: Run, cases: SearchStrategy[Case[Any]], mode: GenerationMode
) -> Callable[[], None]:
    """A derandomized Hypothesis test sending `cases`: the same cases, in the same order, every run."""

    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(case=cases)
    def send(case: Case[Any]) -> None:
        run.sent[case.operation.label, mode] += 1
        if case.operation.path == "/v1/refund-requests" and isinstance(case.body, dict):
            request_id = case.body.get("request_id")
            if isinstance(request_id, str):
                fuzzed.refund_request_ids.add(request_id)
        case.call_and_validate(additional_checks=[error_body_shape])

    return send


async def _assert_nothing_started(stack: Stack, fuzzed: Fuzzed) -> None:
    for request_id in sorted(fuzzed.refund_request_ids):
        await assert_not_started(stack, request_id)
    # and Temporal agrees: nothing ever landed on the fuzzed service's task queue
    listed = await stack.client.count_workflows(f"TaskQueue = '{fuzzed.task_queue}'")
    assert listed.count == 0


def test_every_reference_in_the_document_resolves(fuzzed: Fuzzed) -> None:
    """The refund request's body once carried pydantic's `#/$defs/...` references, which point at
    nothing in an OpenAPI document: schemathesis (like any client generator) dropped the body."""

    def references(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return own + [ref for value in node.values() for ref in references(value)]
        if isinstance(node, list):
            return [ref for item in node for ref in references(item)]
        return []

    document = fuzzed.schema.raw_schema
    found = references(document)
    assert found, "the document references no component: nothing was checked"
    for ref in found:
        target: Any = document
        for part in ref.removeprefix("#/").split("/"):
            assert isinstance(target, dict) and part in target, f"{ref} resolves to nothing"
            target = target[part]


class _Tree(BaseModel):
    children: list[_Tree] = []


def test_a_body_schema_is_written_in_whole_or_refused() -> None:
    assert "$defs" in json.dumps(RefundRequest.model_json_schema())
    [body] = json_body(RefundRequest)["requestBody"]["content"].values()
    assert "$defs" not in json.dumps(body) and "$ref" not in json.dumps(body)
    assert body["schema"]["properties"]["provider"]["enum"] == ["stripe", "adyen", "paypal"]
    with pytest.raises(ValueError, match="refers to itself"):
        json_body(_Tree)  # written in, it would never end


async def test_every_operation_fuzzed_without_credentials_is_refused_or_harmless(
    stack: Stack, fuzzed: Fuzzed
) -> None:
    started = time.monotonic()
    run = await asyncio.to_thread(_fuzz, fuzzed, lambda _: True)
    assert not run.failures, "\n\n".join(run.failures)
    assert run.operations() == OPERATIONS, "the schema's operations changed: update OPERATIONS"
    assert run.nothing_to_negate == NOTHING_TO_NEGATE
    for label in OPERATIONS - NOTHING_TO_SEND:
        assert run.sent[label, GenerationMode.POSITIVE] >= MAX_EXAMPLES, (label, run.sent)
        if label not in NOTHING_TO_NEGATE:
            assert run.sent[label, GenerationMode.NEGATIVE] >= MAX_EXAMPLES, (label, run.sent)
    assert fuzzed.calls == [], "a fuzzed request reached a workflow"
    assert fuzzed.refund_request_ids, "no fuzzed refund request carried a request id"
    await _assert_nothing_started(stack, fuzzed)
    print(f"fuzzed {sum(run.sent.values())} cases in {time.monotonic() - started:.1f}s")


async def test_reader_and_reviewer_routes_fuzzed_with_the_dev_reviewer_token(
    stack: Stack, fuzzed: Fuzzed
) -> None:
    """With a valid token the routes get past authentication; the refunds named do not exist, so
    a decision is tried and refused (404), and still nothing starts or is signalled."""
    with_token = {
        "GET /v1/refunds/{request_id}",
        "POST /v1/refunds/{request_id}/approve",
        "POST /v1/refunds/{request_id}/reject",
        "GET /v1/reviewers/me",
        "POST /codec/decode",
        "POST /codec/encode",
    }
    before = len(fuzzed.calls)
    run = await asyncio.to_thread(
        _fuzz, fuzzed, with_token.__contains__, {"Authorization": f"Bearer {DEV_REVIEWER_TOKEN}"}
    )
    assert not run.failures, "\n\n".join(run.failures)
    assert run.operations() == with_token
    calls = fuzzed.calls[before:]
    assert calls, "no decision got past the token"
    assert all(call.startswith("update ") for call in calls), calls
    await _assert_nothing_started(stack, fuzzed)
