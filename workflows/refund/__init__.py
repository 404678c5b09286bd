"""The refund workflow (workflow.py) and the parts it composes: the typed activity calls (steps.py),
the review (review.py), the refund at the PSP and its confirmation (confirmation.py), returned goods
(returns.py), ops' attention (attention.py), the refund's record (record.py) and its patches
(patches.py)."""

from workflows.refund.patches import EDGE_PATHS, PSP_TASK_QUEUES, REVIEW_DEADLINES
from workflows.refund.workflow import RefundWorkflow

__all__ = ["EDGE_PATHS", "PSP_TASK_QUEUES", "REVIEW_DEADLINES", "RefundWorkflow"]
