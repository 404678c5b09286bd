"""Who acted on a refund, as its audit trail names them: a typed party, never a guessed string.

`str(actor)` is the audit row's `actor` column, in the form the trail has always had: `system`,
`reviewer:<name>`, `ui:<name>`, `operator:<name>`, `policy:<version>`, `psp:<provider>`. Code that
needs to know who acted asks the actor's kind; nothing parses the rendered string back.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ActorKind(StrEnum):
    SYSTEM = "system"  # the workflow itself
    REVIEWER = "reviewer"  # a person deciding a review: proven, or under the rule the refund started with
    UI = "ui"  # a name typed into the Temporal UI, which proves nothing
    OPERATOR = "operator"  # ops asking a refund in needs_attention to try again
    POLICY = "policy"  # the review policy, deciding at its deadline
    PSP = "psp"  # the payment service provider's own word


@dataclass(frozen=True)
class Actor:
    kind: ActorKind
    name: str = ""

    @classmethod
    def system(cls) -> Actor:
        return cls(ActorKind.SYSTEM)

    @classmethod
    def reviewer(cls, name: str) -> Actor:
        return cls(ActorKind.REVIEWER, name)

    @classmethod
    def ui(cls, typed_name: str) -> Actor:
        return cls(ActorKind.UI, typed_name)

    @classmethod
    def operator(cls, name: str) -> Actor:
        return cls(ActorKind.OPERATOR, name)

    @classmethod
    def policy(cls, version: str) -> Actor:
        return cls(ActorKind.POLICY, version)

    @classmethod
    def psp(cls, provider: str) -> Actor:
        return cls(ActorKind.PSP, provider)

    def __str__(self) -> str:
        if self.kind is ActorKind.SYSTEM:
            return self.kind.value
        return f"{self.kind.value}:{self.name}"


SYSTEM = Actor.system()
