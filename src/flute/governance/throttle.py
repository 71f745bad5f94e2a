"""Brute-force throttling of logins (NF-SRS-1, URS-3): consecutive failures per account and
per source address, with exponential back-off, stored in the node's database so every worker
process of a service sees the same counts."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.exc import IntegrityError

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
    """Count one more failure for `key` and lock it when the streak reaches `threshold`.
    Writes come first (forget an old streak, increment), so concurrent failures serialise on
    the row (PostgreSQL) or the database (SQLite) and none is lost."""
    table = ThrottleRecord.__table__
    connection.execute(delete(table).where(table.c.key == key, table.c.last_failure_at < now - policy.lockout_max * 4))
    if not _increment(connection, key, now):
        try:
            with connection.begin_nested():
                connection.execute(table.insert().values(key=key, failures=1, last_failure_at=now, locked_until=None))
        except IntegrityError:  # a concurrent failure created the row first
            _increment(connection, key, now)
    failures = connection.execute(select(table.c.failures).where(table.c.key == key)).scalar_one()
    back_off = policy.back_off(failures, threshold)
    if back_off is not None:
        connection.execute(update(table).where(table.c.key == key).values(locked_until=now + back_off))


def _increment(connection: Connection, key: str, now: datetime) -> bool:
    table = ThrottleRecord.__table__
    return connection.execute(update(table).where(table.c.key == key).values(failures=table.c.failures + 1, last_failure_at=now)).rowcount == 1


def clear(connection: Connection, key: str) -> None:
    connection.execute(delete(ThrottleRecord).where(ThrottleRecord.key == key))
