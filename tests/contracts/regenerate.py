"""Regenerate the pinned contract subset in `tests/contracts/specs/` and `tests/contracts/examples/`
from git checkouts of the PSPs' own specification repositories (SOURCES.md says which).

    python tests/contracts/regenerate.py --stripe ~/src/stripe-openapi --adyen ~/src/adyen-openapi \\
        --paypal ~/src/paypal-rest-api-specifications

Each checkout may be a work tree or a bare git directory: files are read with `git show
<commit>:<path>` at the pinned commit (the `--*-commit` options choose another). Only the schemas we
use are kept, with every schema they `$ref` (transitively); documentation-only keys (`description`,
`example`, `x-*`, ...) are dropped to keep the files small. The documents stay OpenAPI: the test
(`tests/contracts/validation.py`) reads their `nullable` the OpenAPI way.

Stripe: expandable fields (an id, or the object when expanded) keep only the expansions our sandbox
can answer with (charge, payment_intent, balance_transaction); any other expansion would fail, which
is what we want to hear about.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SPECS = HERE / "specs"
EXAMPLES = HERE / "examples"
LICENSES = HERE / "licenses"

# The commits SOURCES.md names. Stripe's spec comes from an older commit than its fixtures: see SOURCES.md.
STRIPE_SPEC_COMMIT = "63a674638635c68de26b9f3add13e58198f4df44"
STRIPE_FIXTURES_COMMIT = "f6c2a48fbac2819d1feba8143d942ffc65e1c0d2"
ADYEN_COMMIT = "aa014f0cbdb58ff5c44a2ff9d5fe734642210aff"
PAYPAL_COMMIT = "ec4d8f36a6ab0abcc3865e1072aaddc85ea14d5c"

STRIPE_SPEC_PATHS = ("openapi/spec3.json", "openapi/spec3.yaml")  # the first the commit holds
STRIPE_FIXTURES_PATH = "openapi/fixtures3.json"
# The operations the sandbox serves, as the spec names their paths.
STRIPE_OPERATIONS = (
    ("post", "/v1/payment_intents"),
    ("get", "/v1/payment_intents/{intent}"),
    ("post", "/v1/payment_intents/{intent}/cancel"),
    ("post", "/v1/payment_intents/{intent}/capture"),
    ("get", "/v1/charges/{charge}"),
    ("post", "/v1/refunds"),
    ("get", "/v1/refunds"),
    ("get", "/v1/refunds/{refund}"),
)
# Objects that ride in events (`data.object`) and that the tests check by name.
STRIPE_OBJECTS = ("refund", "charge", "payment_intent", "dispute", "radar.early_fraud_warning", "event")
STRIPE_EXPANSIONS = frozenset({"charge", "payment_intent", "balance_transaction"})
# Stripe's example objects we keep (the fixture event is a plan's: the tests wrap ours in events).
STRIPE_EXAMPLES = (
    "refund",
    "charge",
    "payment_intent",
    "dispute",
    "radar.early_fraud_warning",
    "balance_transaction",
)

# the Checkout version Adyen SDK 16 calls (adapters/psp/adyen.py)
ADYEN_CHECKOUT_PATH = "json/CheckoutService-v72.json"
ADYEN_WEBHOOKS_PATH = "json/Webhooks-v1.json"
ADYEN_OPERATIONS = (
    ("post", "/payments/{paymentPspReference}/refunds"),
    ("post", "/payments/{paymentPspReference}/cancels"),
    ("post", "/payments/{paymentPspReference}/reversals"),
)
# What our sandbox sends and our adapter reads (adapters/psp/adyen_transformers.py).
ADYEN_EVENT_CODES = (
    "AUTHORISATION",
    "CAPTURE",
    "REFUND",
    "REFUND_FAILED",
    "REFUNDED_REVERSED",
    "CANCELLATION",
    "CANCEL_OR_REFUND",
    "NOTIFICATION_OF_CHARGEBACK",
    "CHARGEBACK",
    "NOTIFICATION_OF_FRAUD",
)

PAYPAL_PAYMENTS_PATH = "openapi/payments_payment_v2.json"
PAYPAL_ORDERS_PATH = "openapi/checkout_orders_v2.json"
PAYPAL_WEBHOOKS_PATH = "openapi/notifications_webhooks_v1.json"
PAYPAL_DISPUTES_PATH = "openapi/customer_disputes_v1.json"
PAYPAL_REPORTING_PATH = "openapi/reporting_transactions_v1.json"
PAYPAL_REPORTING_OPERATIONS = (("get", "/v1/reporting/transactions"),)
PAYPAL_PAYMENTS_OPERATIONS = (
    ("get", "/v2/payments/captures/{capture_id}"),
    ("post", "/v2/payments/captures/{capture_id}/refund"),
    ("get", "/v2/payments/refunds/{refund_id}"),
    ("get", "/v2/payments/authorizations/{authorization_id}"),
    ("post", "/v2/payments/authorizations/{authorization_id}/void"),
)
PAYPAL_ORDERS_OPERATIONS = (("get", "/v2/checkout/orders/{id}"),)

_DOC_KEYS = frozenset({"description", "example", "examples", "externalDocs", "title", "deprecated"})
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions"})
_LITERALS = frozenset({"enum", "const", "default", "required"})
_REF_PREFIX = "#/components/schemas/"


# reading ----------------------------------------------------------------------------------------


def git_show(checkout: Path, commit: str, path: str) -> bytes | None:
    """The file at `commit`, or None when the commit (or this copy of the repository) lacks it."""
    done = subprocess.run(
        ["git", "-C", str(checkout), "show", f"{commit}:{path}"], capture_output=True, check=False
    )
    return done.stdout if done.returncode == 0 else None


def read_document(checkout: Path, commit: str, paths: Iterable[str]) -> tuple[str, Any]:
    for path in paths:
        raw = git_show(checkout, commit, path)
        if raw is None:
            continue
        if path.endswith((".yaml", ".yml")):
            import yaml  # the test extra has it; only Stripe's YAML spec needs it

            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            return path, yaml.load(raw, Loader=loader)
        return path, json.loads(raw)
    raise SystemExit(f"{checkout} has none of {list(paths)} at {commit}")


def commit_of(checkout: Path, commit: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", f"{commit}^{{commit}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


# schemas ----------------------------------------------------------------------------------------


def strip(node: Any, rename: Callable[[str], str] = lambda name: name) -> Any:
    """A schema without its documentation keys, `$ref`s renamed; property names are kept as they are."""
    if isinstance(node, list):
        return [strip(item, rename) for item in node]
    if not isinstance(node, Mapping):
        return node
    kept: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DOC_KEYS or key.startswith("x-"):
            continue
        if key == "$ref" and isinstance(value, str) and value.startswith(_REF_PREFIX):
            kept[key] = _REF_PREFIX + rename(value.removeprefix(_REF_PREFIX))
        elif key in _SCHEMA_MAPS and isinstance(value, Mapping):
            kept[key] = {name: strip(schema, rename) for name, schema in value.items()}
        elif key in _LITERALS:
            kept[key] = value
        else:
            kept[key] = strip(value, rename)
    return kept


def refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(_REF_PREFIX):
                found.add(value.removeprefix(_REF_PREFIX))
            elif key not in _LITERALS and not key.startswith("x-"):
                found |= refs(value)
    elif isinstance(node, list):
        for item in node:
            found |= refs(item)
    return found


def closure(
    schemas: Mapping[str, Any], roots: Iterable[Any], prune: Callable[[Any], Any] = lambda s: s
) -> dict[str, Any]:
    """Every schema `roots` need, by name, pruned (before stripping: pruning may read `x-` keys)."""
    kept: dict[str, Any] = {}
    todo = set().union(*(refs(prune(root)) for root in roots))
    while todo:
        name = todo.pop()
        if name in kept:
            continue
        kept[name] = prune(schemas[name])
        todo |= refs(kept[name]) - kept.keys()
    return kept


def response_schemas(document: Mapping[str, Any], operations: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """`{"GET /path": {"200": schema, "default": schema, ...}}` for the JSON answers of `operations`."""
    answers: dict[str, Any] = {}
    for method, path in operations:
        operation = document["paths"][path][method]
        by_status: dict[str, Any] = {}
        for status, response in operation.get("responses", {}).items():
            content = (response.get("content") or {}).get("application/json") or {}
            if "schema" in content:
                by_status[status] = content["schema"]
        answers[f"{method.upper()} {path}"] = by_status
    return answers


def _answer_schemas(responses: Mapping[str, Mapping[str, Any]]) -> list[Any]:
    return [schema for answers in responses.values() for schema in answers.values()]


def _strip_answers(
    responses: Mapping[str, Mapping[str, Any]], rename: Callable[[str], str] = lambda name: name
) -> dict[str, Any]:
    """By operation and status (a status may be `default`, which `strip` would take for a literal)."""
    return {
        operation: {status: strip(schema, rename) for status, schema in answers.items()}
        for operation, answers in responses.items()
    }


def _stripe_prune(schema: Any) -> Any:
    """Expandable fields keep the id, and the object only where the sandbox can expand it."""
    if isinstance(schema, list):
        return [_stripe_prune(item) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    pruned = {key: _stripe_prune(value) for key, value in schema.items()}
    if "x-expansionResources" in schema and isinstance(pruned.get("anyOf"), list):
        pruned["anyOf"] = [
            option
            for option in pruned["anyOf"]
            if "$ref" not in option or option["$ref"].removeprefix(_REF_PREFIX) in STRIPE_EXPANSIONS
        ]
    return pruned


def _document(info: Mapping[str, Any], sources: list[dict[str, str]], **parts: Any) -> dict[str, Any]:
    return {
        "openapi": info["openapi"],
        "info": {"title": info["title"], "version": info["version"]},
        "x-generated-by": "tests/contracts/regenerate.py (do not edit by hand)",
        "x-sources": sources,
        **parts,
    }


def copy_license(checkout: Path, commit: str, name: str) -> None:
    """The repository's licence beside what we copied from it (MIT and Apache 2.0 both ask for it)."""
    raw = git_show(checkout, commit, "LICENSE")
    if raw is None:
        raise SystemExit(f"{checkout} has no LICENSE at {commit}")
    LICENSES.mkdir(parents=True, exist_ok=True)
    (LICENSES / f"{name}.LICENSE").write_bytes(raw)


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False) + "\n")


def write_spec(path: Path, document: Mapping[str, Any]) -> None:
    """One line per top-level entry and per schema: small files, and diffs that name the schema."""
    head = [
        f" {_compact(key)}: {_compact(value)}"
        for key, value in sorted(document.items())
        if key != "components"
    ]
    schemas = document["components"]["schemas"]
    body = ",\n".join(f"  {_compact(name)}: {_compact(schema)}" for name, schema in sorted(schemas.items()))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{\n" + ",\n".join(head) + ',\n "components": {"schemas": {\n' + body + "\n }}\n}\n")


# per PSP ----------------------------------------------------------------------------------------


def stripe(checkout: Path, spec_commit: str, fixtures_commit: str) -> None:
    spec_path, spec = read_document(checkout, spec_commit, STRIPE_SPEC_PATHS)
    copy_license(checkout, fixtures_commit, "stripe-openapi")
    schemas = spec["components"]["schemas"]
    responses = {
        operation: {status: _stripe_prune(schema) for status, schema in answers.items()}
        for operation, answers in response_schemas(spec, STRIPE_OPERATIONS).items()
    }
    roots = [{"$ref": _REF_PREFIX + name} for name in STRIPE_OBJECTS]
    kept = closure(schemas, [*roots, *_answer_schemas(responses)], _stripe_prune)
    sources = [
        {"repository": "stripe/openapi", "commit": commit_of(checkout, spec_commit), "path": spec_path}
    ]
    info = {"openapi": spec["openapi"], "title": spec["info"]["title"], "version": spec["info"]["version"]}
    write_spec(
        SPECS / "stripe.json",
        _document(
            info,
            sources,
            **{
                "x-responses": _strip_answers(responses),
                "components": {"schemas": {name: strip(schema) for name, schema in sorted(kept.items())}},
            },
        ),
    )
    raw = git_show(checkout, fixtures_commit, STRIPE_FIXTURES_PATH)
    if raw is None:
        raise SystemExit(f"{checkout} has no {STRIPE_FIXTURES_PATH} at {fixtures_commit}")
    resources = json.loads(raw)["resources"]
    for name in STRIPE_EXAMPLES:
        write_json(EXAMPLES / "stripe" / f"{name}.json", resources[name])
    write_json(
        EXAMPLES / "stripe" / "SOURCE.json",
        {
            "repository": "stripe/openapi",
            "commit": commit_of(checkout, fixtures_commit),
            "path": STRIPE_FIXTURES_PATH,
        },
    )


def _prefixed(schemas: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {prefix + name: strip(schema, lambda ref: prefix + ref) for name, schema in schemas.items()}


def adyen(checkout: Path, commit: str) -> None:
    _, checkout_api = read_document(checkout, commit, [ADYEN_CHECKOUT_PATH])
    copy_license(checkout, commit, "adyen-openapi")
    _, webhooks = read_document(checkout, commit, [ADYEN_WEBHOOKS_PATH])
    responses = response_schemas(checkout_api, ADYEN_OPERATIONS)
    requests: dict[str, Any] = {}
    examples: dict[str, Any] = {}
    for code in ADYEN_EVENT_CODES:
        body = webhooks["webhooks"][f"/{code}"]["post"]["requestBody"]["content"]["application/json"]
        requests[code] = body["schema"]
        for example in (body.get("examples") or {}).values():
            ref = example.get("$ref", "").removeprefix("#/components/examples/")
            examples[code] = webhooks["components"]["examples"][ref]["value"] if ref else example["value"]
    checkout_kept = closure(checkout_api["components"]["schemas"], _answer_schemas(responses))
    webhook_kept = closure(webhooks["components"]["schemas"], list(requests.values()))
    resolved = commit_of(checkout, commit)
    sources = [
        {"repository": "Adyen/adyen-openapi", "commit": resolved, "path": path}
        for path in (ADYEN_CHECKOUT_PATH, ADYEN_WEBHOOKS_PATH)
    ]
    info = {
        "openapi": checkout_api["openapi"],
        "title": "Adyen Checkout (modifications) and Webhooks (notifications)",
        "version": f"checkout {checkout_api['info']['version']}, webhooks {webhooks['info']['version']}",
    }
    schemas = {**_prefixed(checkout_kept, "checkout."), **_prefixed(webhook_kept, "webhooks.")}
    write_spec(
        SPECS / "adyen.json",
        _document(
            info,
            sources,
            **{
                "x-responses": _strip_answers(responses, lambda ref: "checkout." + ref),
                "x-webhooks": strip(requests, lambda ref: "webhooks." + ref),
                "components": {"schemas": dict(sorted(schemas.items()))},
            },
        ),
    )
    for code, example in examples.items():
        write_json(EXAMPLES / "adyen" / f"{code}.json", example)
    write_json(
        EXAMPLES / "adyen" / "SOURCE.json",
        {"repository": "Adyen/adyen-openapi", "commit": resolved, "path": ADYEN_WEBHOOKS_PATH},
    )


def paypal(checkout: Path, commit: str) -> None:
    _, payments = read_document(checkout, commit, [PAYPAL_PAYMENTS_PATH])
    copy_license(checkout, commit, "paypal-rest-api-specifications")
    _, orders = read_document(checkout, commit, [PAYPAL_ORDERS_PATH])
    _, webhooks = read_document(checkout, commit, [PAYPAL_WEBHOOKS_PATH])
    _, disputes = read_document(checkout, commit, [PAYPAL_DISPUTES_PATH])
    _, reporting = read_document(checkout, commit, [PAYPAL_REPORTING_PATH])
    payment_answers = response_schemas(payments, PAYPAL_PAYMENTS_OPERATIONS)
    order_answers = response_schemas(orders, PAYPAL_ORDERS_OPERATIONS)
    reporting_answers = response_schemas(reporting, PAYPAL_REPORTING_OPERATIONS)
    # webhook resources by `resource_type`: the payments objects and a dispute
    payment_roots = [
        *_answer_schemas(payment_answers),
        *({"$ref": _REF_PREFIX + name} for name in ("capture-2", "refund", "authorization-2")),
    ]
    parts = [
        ("payments.", payments, payment_roots),
        ("orders.", orders, _answer_schemas(order_answers)),
        ("webhooks.", webhooks, [{"$ref": _REF_PREFIX + "event"}]),
        ("disputes.", disputes, [{"$ref": _REF_PREFIX + "dispute"}]),
        ("reporting.", reporting, _answer_schemas(reporting_answers)),
    ]
    schemas: dict[str, Any] = {}
    for prefix, document, roots in parts:
        schemas |= _prefixed(closure(document["components"]["schemas"], roots), prefix)
    resolved = commit_of(checkout, commit)
    sources = [
        {"repository": "paypal/paypal-rest-api-specifications", "commit": resolved, "path": path}
        for path in (
            PAYPAL_PAYMENTS_PATH,
            PAYPAL_ORDERS_PATH,
            PAYPAL_WEBHOOKS_PATH,
            PAYPAL_DISPUTES_PATH,
            PAYPAL_REPORTING_PATH,
        )
    ]
    info = {
        "openapi": payments["openapi"],
        "title": "PayPal Payments v2, Orders v2 (read), Webhooks v1 (event), Disputes v1 (dispute), "
        "Transaction Search v1 (transactions)",
        "version": f"payments {payments['info']['version']}",
    }
    responses = {
        **_strip_answers(payment_answers, lambda ref: "payments." + ref),
        **_strip_answers(order_answers, lambda ref: "orders." + ref),
        **_strip_answers(reporting_answers, lambda ref: "reporting." + ref),
    }
    write_spec(
        SPECS / "paypal.json",
        _document(
            info,
            sources,
            **{"x-responses": responses, "components": {"schemas": dict(sorted(schemas.items()))}},
        ),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--stripe", type=Path, help="a checkout (or bare git dir) of stripe/openapi")
    parser.add_argument("--stripe-spec-commit", default=STRIPE_SPEC_COMMIT)
    parser.add_argument("--stripe-fixtures-commit", default=STRIPE_FIXTURES_COMMIT)
    parser.add_argument("--adyen", type=Path, help="a checkout of Adyen/adyen-openapi")
    parser.add_argument("--adyen-commit", default=ADYEN_COMMIT)
    parser.add_argument("--paypal", type=Path, help="a checkout of paypal/paypal-rest-api-specifications")
    parser.add_argument("--paypal-commit", default=PAYPAL_COMMIT)
    args = parser.parse_args()
    if not (args.stripe or args.adyen or args.paypal):
        parser.error("name at least one checkout")
    if args.stripe:
        stripe(args.stripe, args.stripe_spec_commit, args.stripe_fixtures_commit)
    if args.adyen:
        adyen(args.adyen, args.adyen_commit)
    if args.paypal:
        paypal(args.paypal, args.paypal_commit)


if __name__ == "__main__":
    main()
