"""The refund workflow's patches: what this release schedules differently from recorded histories.

Each is decided in the workflow's first task, before any local activity: a patch first checked right
after one can replay differently when the original run finished that activity's task early
(docs/architecture.md, "Changing workflow code"). A refund started on this release decides all of
them at its start; refunds started before keep the old placement of the older two.
"""

from __future__ import annotations

from temporalio import workflow

# - a step that fails for good hands the refund to ops (`needs_attention`) instead of failing it;
# - a PSP failure after success is reversed by the refund's own workflow while it is still open;
# - a refund awaiting returned goods shows its final status in the search attributes at once.
EDGE_PATHS = "edge-paths-2026-11"
REVIEW_DEADLINES = "review-deadlines"  # reviews escalate and are decided by policy at their deadlines
PSP_TASK_QUEUES = "psp-task-queues"  # PSP calls run on the PSP's rate-limited task queue
# A PSP outcome signalled to the refund counts only with the service's proof, and is read back at
# the PSP (where it can be) before it books or reverses anything.
OUTCOME_PROOFS = "outcome-proofs-2026-12"
# While a refund waits for its reviewers, the steps taken so far (its risk score, a first approval of
# four eyes, a refused Temporal UI signal, a voided approval) are written to its trail as they happen.
AUDIT_AS_IT_HAPPENS = "audit-as-it-happens-2026-12"


class Patches:
    """Which patches this run takes. `decide` runs first in `run`; the others are asked where the
    commands they guard are scheduled (for a refund started on this release, that only reads the
    answer recorded at its start)."""

    def __init__(self) -> None:
        self.edge_paths = False
        # None until `decide`: a signal handled before the run starts is held to the proof
        self.outcome_proofs: bool | None = None
        self.audit_as_it_happens = False

    def decide(self) -> None:
        self.edge_paths = workflow.patched(EDGE_PATHS)
        self.outcome_proofs = workflow.patched(OUTCOME_PROOFS)
        self.audit_as_it_happens = workflow.patched(AUDIT_AS_IT_HAPPENS)
        if self.edge_paths:
            for older in (REVIEW_DEADLINES, PSP_TASK_QUEUES):
                workflow.patched(older)

    def review_deadlines(self) -> bool:
        return workflow.patched(REVIEW_DEADLINES)

    def psp_task_queues(self) -> bool:
        return workflow.patched(PSP_TASK_QUEUES)
