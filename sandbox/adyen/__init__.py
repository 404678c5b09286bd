"""The Adyen sandbox: Checkout and its control API (`api`), state and notifications (`engine`), the
control API's client (`control`)."""
