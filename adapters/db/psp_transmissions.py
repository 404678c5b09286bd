"""PSP transmissions taken and the digest of each one's body: the durable `TransmissionBook` of the
PayPal adapter (adapters/psp/paypal.py), shared by every service process. A transmission id comes
back with another body only when someone padded that body to the first one's CRC."""

from __future__ import annotations

import hashlib
import itertools
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlmodel import col

from adapters.db.dialect import insert_ignoring_conflicts
from adapters.db.engine import Database
from adapters.db.models import PspTransmissionRow, utcnow
from domain.status import Provider

_KEY_LIMIT = 200
KEPT_FOR = timedelta(days=1)  # PayPal's signature is refused after 15 minutes: a day is plenty
PRUNE_EVERY = 500  # transmissions taken by this process between two prunings (and at the first)


def _key(value: str) -> str:
    """A transmission id or account, hashed only when longer than its column."""
    if len(value) <= _KEY_LIMIT:
        return value
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def prune(db: Database, before: datetime) -> int:
    with db.transaction() as session:
        gone = session.execute(delete(PspTransmissionRow).where(col(PspTransmissionRow.received_at) < before))
        return int(getattr(gone, "rowcount", 0) or 0)


class DatabaseTransmissionBook:
    def __init__(self, db: Database, provider: Provider) -> None:
        self._db = db
        self._provider = provider
        self._taken = itertools.count()

    def admit(self, account: str, transmission_id: str, body_sha256: str) -> bool:
        """The first body under an id is kept; the same body again (PayPal's redelivery) is admitted,
        another refused. Two deliveries at once agree: the key is unique, the loser reads the winner."""
        key = (self._provider.value, _key(account), _key(transmission_id))
        row = {"provider": key[0], "account": key[1], "transmission_key": key[2], "body_sha256": body_sha256}
        with self._db.transaction() as session:
            if insert_ignoring_conflicts(session, PspTransmissionRow, [row]):
                admitted = True
            else:
                kept = session.get(PspTransmissionRow, key)
                admitted = kept is None or kept.body_sha256 == body_sha256
        if next(self._taken) % PRUNE_EVERY == 0:
            prune(self._db, utcnow() - KEPT_FOR)
        return admitted
