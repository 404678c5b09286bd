"""The policy `refunds dev` runs when given none: the built-in one, with early fraud warnings refunded.

Built in, a warning is only recorded: a merchant turns refunds on warnings on deliberately, in its
policy file. On a development machine, where every PSP is the sandbox, seeing a warning become a
refund and what that saved is the point, so dev writes this file into its data directory at each
start and gives it to its children. It is written from the settings the built-in policy reads as
well (the review threshold, the shipping rule), so it differs from the built-in policy only in its
version and its `[early_fraud_warnings]`; a user can read it, and copy it to start their own.
"""

from __future__ import annotations

from pathlib import Path

from workers.settings import Settings

DEV_POLICY_FILE = "dev-policy.toml"
DEV_POLICY_VERSION = "dev"


def dev_policy_text(settings: Settings) -> str:
    return "\n".join(
        [
            "# Written by `refunds dev` at each start, because REFUNDS_POLICY_FILE is not set: the",
            "# built-in policy, except that early fraud warnings are refunded. Copy it to start your own.",
            f'version = "{DEV_POLICY_VERSION}"',
            "",
            "[review]",
            f"threshold_major = {settings.review_threshold_major}",
            "",
            "[early_fraud_warnings]",
            'mode = "refund"',
            "refund_up_to_major = 200",
            "# a typical dispute fee, for the demo: your PSP contract says what yours is",
            'chargeback_fee = { EUR = "15.00", USD = "15.00", GBP = "15.00" }',
            "",
            "[returns]",
            f'shipping = "{settings.shipping_policy.value}"',
            "",
        ]
    )


def write_dev_policy(settings: Settings, data_dir: Path) -> Path:
    path = data_dir / DEV_POLICY_FILE
    path.write_text(dev_policy_text(settings), encoding="utf-8")
    return path
