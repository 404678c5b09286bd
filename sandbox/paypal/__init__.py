"""The PayPal sandbox: REST API and its control API (`api`), state, rules and signed webhooks
(`engine`), the control API's client (`control`)."""
