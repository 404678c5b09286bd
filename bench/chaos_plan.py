"""What a chaos run does, drawn from its seed before anything starts: the refunds (with what happens
to each) and the schedule of faults, webhook replays and kills. The same seed, the same run."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any

from bench.chaos_psps import FAULT_PATHS, PROVIDERS
from bench.chaos_stack import KILLABLE
from sandbox.faults import FaultKind

CURRENCY = "EUR"
REVIEW_FROM = 100_000  # 1,000.00 EUR: the policy's review threshold
FOUR_EYES_FROM = 500_000  # 5,000.00 EUR: two reviewers


@dataclass(frozen=True)
class RefundPlan:
    request_id: str
    provider: str
    captured: int  # the payment, minor units
    amount: int | None  # None: everything still refundable
    behavior: str  # at the PSP: ok | pending (settles later) | fails (settles later as failed)
    approvers: tuple[str, ...] = ()  # who approves over HTTP, in order
    rejected_by: str | None = None
    items: tuple[dict[str, Any], ...] = ()  # returned goods (restock=true): a receipt follows
    sellable: tuple[int, ...] = ()  # per item, how many units the warehouse can sell again
    resend: str | None = None  # early | late: the same request sent again
    late_failure: bool = False  # the PSP fails the refund after it succeeded (Adyen, Stripe)
    storm: int = 0  # its own signed PSP notifications replayed this many times once it settled
    ui_names: tuple[str, ...] = ()  # names typed into the Temporal UI's approve signal, no proof

    @property
    def reviewed(self) -> bool:
        return bool(self.approvers) or self.rejected_by is not None

    @property
    def booked(self) -> int:
        return self.captured if self.amount is None else self.amount

    def body(self, payment: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "request_id": self.request_id,
            "provider": self.provider,
            "payment_reference": payment,
            "reason_code": "changed_mind" if self.items else "damaged",
            "order_id": f"order-{self.request_id}",
            "customer_id": f"cus-{self.request_id}",  # one customer each: no velocity between refunds
        }
        if self.amount is not None:
            body["amount"] = {"value": self.amount, "currency": CURRENCY}
        if self.items:
            body["items"] = list(self.items)
        return body


@dataclass(frozen=True)
class ChaosEvent:
    at: float  # fires once the run has come this far (0: the start, 1: every refund settled)
    action: str  # fault | replay | kill
    target: str  # a provider, or a process
    detail: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        extra = ",".join(f"{k}={v}" for k, v in self.detail.items())
        return f"{self.action}:{self.target}" + (f"({extra})" if extra else "")


# names a Temporal UI user may type: strangers, and the real reviewers' names without their tokens
UI_NAMES = ("mallory", "trent", "carol", "Alice", "bob", "ui.eve")


def make_plans(seed: int, count: int, run_tag: str) -> list[RefundPlan]:
    rng = random.Random(f"{seed}:plans")
    plans = []
    for index in range(count):
        provider = PROVIDERS[index % 3] if index < 3 else rng.choice(PROVIDERS)
        plans.append(_plan(rng, f"chaos-{run_tag}-{index:04d}", provider))
    return _covered(rng, plans)


def _covered(rng: random.Random, plans: list[RefundPlan]) -> list[RefundPlan]:
    """However few the refunds, one Adyen refund is stormed and then failed late, and one Stripe
    refund fails late: the paths a small run would otherwise draw only by luck."""
    plans = list(plans)
    if not any(p.storm and p.late_failure and p.provider == "adyen" for p in plans):
        for index, plan in enumerate(plans):
            if plan.provider == "adyen" and plan.rejected_by is None:
                plans[index] = replace(plan, late_failure=True, storm=rng.randint(50, 200))
                break
    if not any(p.late_failure and p.provider == "stripe" for p in plans):
        for index, plan in enumerate(plans):
            if plan.provider == "stripe" and plan.rejected_by is None and plan.behavior == "ok":
                plans[index] = replace(plan, late_failure=True)
                break
    return plans


def _plan(rng: random.Random, request_id: str, provider: str) -> RefundPlan:
    roll = rng.random()
    approvers: tuple[str, ...] = ()
    rejected_by = None
    if roll < 0.06:
        amount = rng.randint(FOUR_EYES_FROM, 800_000)
        approvers = tuple(rng.sample(["alice", "bob"], 2))
    elif roll < 0.16:
        amount = rng.randint(REVIEW_FROM, 450_000)
        if rng.random() < 0.3:
            rejected_by = rng.choice(["alice", "bob"])
        else:
            approvers = (rng.choice(["alice", "bob"]),)
    else:
        amount = rng.randint(1_000, 60_000)
    items: tuple[dict[str, Any], ...] = ()
    sellable: tuple[int, ...] = ()
    if rng.random() < 0.2 and not approvers and rejected_by is None:  # small: never reviewed
        lines: list[dict[str, Any]] = []
        for line in range(rng.randint(1, 2)):
            quantity = rng.randint(1, 3)
            unit = rng.randint(500, 9_000)
            lines.append(
                {
                    "sku": f"SKU-{rng.randint(1, 40)}-{line}",
                    "quantity": quantity,
                    "unit_amount": unit,
                    "tax_amount": unit * quantity // 5,
                    "restock": True,
                }
            )
        items = tuple(lines)
        sellable = tuple(rng.randint(0, line["quantity"]) for line in lines)
        amount = sum(line["quantity"] * line["unit_amount"] + line["tax_amount"] for line in lines)
    full = rng.random() < 0.3
    captured = amount if full else amount + rng.randint(100, amount)
    explicit = None if full and not items and rng.random() < 0.5 else amount
    behavior = "ok"
    late_failure = False
    if provider == "adyen":
        late_failure = rng.random() < (0.5 if items else 0.12)
    else:
        behavior = rng.choices(["ok", "pending", "fails"], weights=[70, 20, 10])[0]
    resend = rng.choice(["early", "late"]) if rng.random() < 0.15 else None
    if provider == "stripe" and behavior != "fails":  # PayPal has no failure after COMPLETED
        late_failure = rng.random() < (0.4 if items else 0.1)
    storm = rng.randint(50, 200) if rng.random() < 0.06 else 0
    ui_names: tuple[str, ...] = ()
    if len(approvers) > 1:  # four eyes: two typed names, neither may count
        ui_names = tuple(rng.sample(UI_NAMES, 2))
    elif approvers and rng.random() < 0.5:  # one typed name: it may decide alone, as ui:<name>
        ui_names = (rng.choice(UI_NAMES),)
    return RefundPlan(
        request_id=request_id,
        provider=provider,
        captured=captured,
        amount=explicit,
        behavior=behavior,
        approvers=approvers,
        rejected_by=rejected_by,
        items=items,
        sellable=sellable,
        resend=resend,
        late_failure=late_failure and not rejected_by,
        storm=storm,
        ui_names=ui_names,
    )


FAULT_KINDS: tuple[FaultKind, ...] = ("error_500", "rate_limit", "lose_response", "slow", "error_500_stored")


def make_schedule(seed: int, count: int, kills: int) -> list[ChaosEvent]:
    """Faults and replays throughout; kills at random points, every process at least once when
    there are enough kills."""
    rng = random.Random(f"{seed}:chaos")
    events = []
    for _ in range(max(count // 3, 2)):
        provider = rng.choice(PROVIDERS)
        kind = rng.choice(FAULT_KINDS if provider == "stripe" else FAULT_KINDS[:4])
        path = rng.choice(FAULT_PATHS[provider])
        detail = {
            "kind": kind,
            "path": path,
            "method": rng.choice(["POST", None]),
            "count": rng.randint(1, 3),
            # `slow` past the 5 s PSP timeout now and then: the call is retried while the first runs
            "millis": rng.choice([300, 1_500, 4_000, 7_000]) if kind == "slow" else rng.choice([200, 1_000]),
        }
        events.append(ChaosEvent(rng.uniform(0.0, 1.0), "fault", provider, detail))
    for _ in range(max(count // 8, 2)):
        pick = rng.random()
        events.append(
            ChaosEvent(rng.uniform(0.1, 1.0), "replay", rng.choice(PROVIDERS), {"pick": round(pick, 4)})
        )
    victims = list(KILLABLE)
    rng.shuffle(victims)
    for number in range(kills):
        victim = victims[number] if number < len(victims) else rng.choice(KILLABLE)
        events.append(ChaosEvent(rng.uniform(0.05, 1.0), "kill", victim))
    return sorted(events, key=lambda event: event.at)
