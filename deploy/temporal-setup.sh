#!/bin/sh
# Runs in Temporal's admin-tools image once Temporal's port is open: waits until the cluster answers
# healthy, makes sure the namespace exists, then registers our search attributes (the names and
# types of domain/naming.py's SEARCH_ATTRIBUTES). Safe to run again: an existing namespace or
# attribute of the same type is left as it is. Anything that still fails after the retries stops
# the job with a non-zero exit, so the worker and the service never start on a half-made namespace.
set -eu

ADDRESS=${TEMPORAL_ADDRESS:-temporal:7233}
NAMESPACE=${TEMPORAL_NAMESPACE:-default}
ATTEMPTS=${SETUP_ATTEMPTS:-30}
PAUSE=${SETUP_PAUSE_SECONDS:-2}

# A retry setting that is not a number would make the attempt test an error, which `until`/`if` read
# as "not yet": the job would retry for ever instead of failing. Refuse it at once.
case $ATTEMPTS in
  '' | *[!0-9]* | 0 | 00*)
    echo "temporal-setup: SETUP_ATTEMPTS must be a whole number of attempts, not '$ATTEMPTS'" >&2
    exit 1
    ;;
esac
case $PAUSE in
  '' | .* | *. | *[!0-9.]* | *.*.*)
    echo "temporal-setup: SETUP_PAUSE_SECONDS must be a number of seconds, not '$PAUSE'" >&2
    exit 1
    ;;
esac

retry() {
  what=$1
  shift
  attempt=1
  until "$@"; do
    if [ "$attempt" -ge "$ATTEMPTS" ]; then
      echo "temporal-setup: $what failed after $ATTEMPTS attempts" >&2
      exit 1
    fi
    attempt=$((attempt + 1))
    sleep "$PAUSE"
  done
}

namespace_exists() {
  temporal operator namespace describe -n "$NAMESPACE" --address "$ADDRESS" >/dev/null 2>&1 ||
    temporal operator namespace create -n "$NAMESPACE" --address "$ADDRESS"
}

retry "waiting for a healthy Temporal at $ADDRESS" temporal operator cluster health --address "$ADDRESS"
retry "making namespace $NAMESPACE" namespace_exists
retry "registering search attributes in $NAMESPACE" \
  temporal operator search-attribute create --address "$ADDRESS" -n "$NAMESPACE" \
  --name RefundStatus --type Keyword \
  --name RefundProvider --type Keyword \
  --name RefundPaymentReference --type Keyword \
  --name RefundAmount --type Int \
  --name RefundCurrency --type Keyword \
  --name RefundRiskScore --type Int \
  --name RefundMerchant --type Keyword \
  --name RefundAwaitingReviewSince --type Datetime \
  --name RefundReviewEscalated --type Bool \
  --name RefundRequestedBy --type Keyword
echo "temporal-setup: namespace $NAMESPACE and its search attributes are ready"
