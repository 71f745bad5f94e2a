"""Brute-force throttling of logins (NF-SRS-1, URS-3): consecutive failures per account and
per source address, with exponential back-off, stored in the node's database so every worker
process of a service sees the same counts."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, select

from flute.governance.models import ThrottleRecord
from flute.governance.policy import SecurityPolicy
from flute.governance.timeutil import as_utc


def user_key(username: str) -> str:
    return f"user:{username.lower()}"


def address_key(address: str) -> str:
    return f"addr:{address}"


def locked_for(connection: Connection, keys: list[str], now: datetime) -> timedelta | None:
    """How much longer the longest lock among `keys` lasts (None: none is locked)."""
    rows = connection.execute(select(ThrottleRecord.locked_until).where(ThrottleRecord.key.in_(keys))).scalars()
    remaining = [as_utc(until) - now for until in rows if until is not None and as_utc(until) > now]
    return max(remaining, default=None)


def record_failure(connection: Connection, policy: SecurityPolicy, key: str, threshold: int, now: datetime) -> None:
    row = connection.execute(select(ThrottleRecord).where(ThrottleRecord.key == key)).one_or_none()
    if row is not None and now - as_utc(row.last_failure_at) > policy.lockout_max * 4:
        connection.execute(delete(ThrottleRecord).where(ThrottleRecord.key == key))  # an old streak, forgotten
        row = None
    failures = 1 if row is None else row.failures + 1
    back_off = policy.back_off(failures, threshold)
    values = {"failures": failures, "last_failure_at": now, "locked_until": None if back_off is None else now + back_off}
    if row is None:
        connection.execute(ThrottleRecord.__table__.insert().values(key=key, **values))
    else:
        connection.execute(ThrottleRecord.__table__.update().where(ThrottleRecord.key == key).values(**values))


def clear(connection: Connection, key: str) -> None:
    connection.execute(delete(ThrottleRecord).where(ThrottleRecord.key == key))
