"""What a chaos run does, drawn from its seed before anything starts: the refunds (with what happens
to each), the refunds made by hand in a PSP's dashboard, and the schedule of faults, webhook replays
and kills. The same seed, the same run."""

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
    # psp_refund_update signals sent straight to Temporal, without the service's proof: while it
    # awaits the PSP's confirmation (its PSP refund held pending until then: Stripe, PayPal), or once
    # it succeeded while its goods are still on their way (its workflow open)
    forge: str | None = None  # confirming | open
    replay: bool = False  # a proven signal from its own history sent to another refund, and to itself
    again: bool = False  # after its late failure was reversed, a new request for the same amount
    warning: bool = False  # an early fraud warning after its partial refund (Stripe, Adyen)
    # once it succeeded, the hostile tenant signs events naming it and its payment (chaos_tenant.py)
    hostile: bool = False

    @property
    def reviewed(self) -> bool:
        return bool(self.approvers) or self.rejected_by is not None

    @property
    def held(self) -> bool:
        """Its PSP refund stays pending until the run settles it by hand (after the forged signals)."""
        return self.forge == "confirming"

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
    plans = _covered(rng, plans)
    # the PSP-truth faults from a stream of their own: the refunds above are drawn as they always were
    plans = _psp_truth(random.Random(f"{seed}:plans:psp-truth"), plans)
    return _hostile(random.Random(f"{seed}:plans:hostile"), plans)


def _hostile(rng: random.Random, plans: list[RefundPlan]) -> list[RefundPlan]:
    """The refunds the hostile tenant names: one in ten of those that simply succeed, and however few
    the refunds, one per PSP, one still open for its goods and one closed."""
    drawn = [replace(p, hostile=_targetable(p) and rng.random() < 0.1) for p in plans]
    wanted = [
        *(lambda p, psp=psp: p.provider == psp for psp in ("stripe", "adyen", "paypal")),
        lambda p: bool(p.items),
        lambda p: not p.items,
    ]
    for fits in wanted:
        if any(p.hostile and fits(p) for p in drawn):
            continue
        for index, plan in enumerate(drawn):
            if _targetable(plan) and fits(plan):
                drawn[index] = replace(plan, hostile=True)
                break
    return drawn


def _targetable(plan: RefundPlan) -> bool:
    """Succeeds at once, with nothing else aimed at it: the tenant's events are its only trouble."""
    return (
        plan.behavior == "ok"
        and plan.rejected_by is None
        and plan.forge is None
        and not (plan.replay or plan.again or plan.warning or plan.storm)
    )


def _psp_truth(rng: random.Random, plans: list[RefundPlan]) -> list[RefundPlan]:
    """Forged and replayed outcome signals, second refunds after reversed ones, fraud warnings after
    partial refunds; then, however few the refunds, each of them at least once where it can be."""
    drawn = []
    for plan in plans:
        forge = None
        succeeds = plan.behavior != "fails" and plan.rejected_by is None
        if plan.items and succeeds and rng.random() < 0.3:
            forge = "open"
        elif plan.provider != "adyen" and not plan.items and not plan.rejected_by and rng.random() < 0.08:
            forge = "confirming"
        replay = _replayable(plan) and rng.random() < 0.25
        # asked again without a reviewer, on a payment whose refunds settle by themselves
        again = plan.late_failure and not plan.reviewed and forge != "confirming" and rng.random() < 0.5
        warning = _warnable(plan, forge) and rng.random() < 0.12
        drawn.append(replace(plan, forge=forge, replay=replay, again=again, warning=warning))
    wanted: list[tuple[Any, dict[str, Any]]] = [
        (
            lambda p: p.provider != "adyen" and not p.items and p.rejected_by is None and not p.again,
            {"forge": "confirming"},
        ),
        (lambda p: p.provider == "adyen" and p.items and p.rejected_by is None, {"forge": "open"}),
        (_replayable, {"replay": True}),
        (
            lambda p: p.late_failure and not p.reviewed and not p.held and p.provider == "stripe",
            {"again": True},
        ),
        (
            lambda p: p.late_failure and not p.reviewed and not p.held and p.provider == "adyen",
            {"again": True},
        ),
        (lambda p: p.provider == "stripe" and _warnable(p, p.forge), {"warning": True}),
        (lambda p: p.provider == "adyen" and _warnable(p, p.forge), {"warning": True}),
    ]
    for fits, change in wanted:
        if any(fits(p) and all(getattr(p, k) == v for k, v in change.items()) for p in drawn):
            continue
        for index, plan in enumerate(drawn):
            if fits(plan):
                drawn[index] = replace(plan, **change)
                break
    return drawn


def _replayable(plan: RefundPlan) -> bool:
    """Succeeds and stays open for its goods, with a proven signal in its history: its PSP's success
    event (Adyen's REFUND, PayPal's PAYMENT.CAPTURE.REFUNDED, Stripe's refund.updated after pending;
    Stripe's refund.created of an instant refund is known from the create call and never signalled)."""
    signalled = plan.provider != "stripe" or plan.behavior == "pending"
    return bool(plan.items) and plan.behavior != "fails" and plan.rejected_by is None and signalled


def _warnable(plan: RefundPlan, forge: str | None) -> bool:
    """A partial refund that succeeds as it is (no review, no failure, no forged hold), on a PSP that
    warns of fraud (PayPal sends no early fraud warning)."""
    return (
        plan.provider in ("stripe", "adyen")
        and plan.amount is not None
        and plan.amount < plan.captured
        and plan.behavior == "ok"
        and not plan.reviewed
        and not plan.late_failure
        and forge is None
    )


@dataclass(frozen=True)
class DashboardPlan:
    """A refund made by hand in a PSP's dashboard, on a payment of its own: the PSP then fails it
    (and a refund of ours for the whole capture follows) or it stands."""

    key: str
    provider: str  # stripe | adyen
    captured: int
    amount: int
    fails_late: bool

    @property
    def after_id(self) -> str:
        """Our refund of the whole capture once the PSP failed the dashboard's."""
        return f"{self.key}-after"


def make_dashboards(seed: int, count: int, run_tag: str) -> list[DashboardPlan]:
    """One per 25 refunds, at least three: a Stripe and an Adyen one the PSP fails, one that stands."""
    rng = random.Random(f"{seed}:dashboards")
    dashboards = []
    for index in range(max(3, count // 25)):
        provider = ("stripe", "adyen", rng.choice(["stripe", "adyen"]))[index] if index < 3 else None
        provider = provider or rng.choice(["stripe", "adyen"])
        fails = index < 2 or (index > 2 and rng.random() < 0.6)
        captured = rng.randint(2_000, 50_000)
        amount = captured if rng.random() < 0.3 else rng.randint(500, captured - 1)
        dashboards.append(
            DashboardPlan(f"chaos-{run_tag}-dash-{index:02d}", provider, captured, amount, fails)
        )
    return dashboards


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
