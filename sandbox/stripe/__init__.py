"""The Stripe sandbox: `/v1/` (`api`), its rules (`engine`), wire shapes (`objects`), the control
API's client (`control`) and the demo payments `refunds dev` seeds (`demo`)."""
