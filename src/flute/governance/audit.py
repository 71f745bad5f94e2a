"""The append-only, hash-chained audit log of a node (F-SRS-8, URS-10, F-PIL-21).

Every entry is hashed (SHA-256 over canonical JSON of seq, time, actor, action, target, details
and the previous entry's hash), so changing, removing, inserting or reordering entries breaks
the chain at a place `verify` names. A single head row holds the last seq and hash: appends
serialise on it, and a removed tail shows as a head that points past the end of the log.

What the hash chain alone protects against: accidental corruption and edits by anyone who does
not recompute every later hash. Someone with write access to the database CAN recompute the
chain; the node's audit key (a 0600 file outside the database, see `flute.governance.keys`)
closes that gap: each entry and the head also carry HMAC-SHA256(key, hash), which cannot be
recomputed without the key. What neither protects against: an attacker who holds the key as
well, or who truncates the log back to an earlier state together with its head; exported chain
heads (`export`), kept elsewhere by auditors, are anchors that `verify(anchor=...)` checks.

`append` takes the caller's connection, so the entry commits or rolls back with the action it
records (an import, a withdrawal, a budget charge).
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, Row, select, update

from flute.governance.models import AuditEntryRecord, AuditHeadRecord
from flute.governance.schema_0001 import GENESIS_HASH

HEAD_ID: Final[int] = 1
#: How far from its position `verify` looks for the seq a moved entry was hashed with.
MOVE_SEARCH: Final[int] = 16


def local_actor() -> str:
    """The actor of an action taken on the node itself (CLI), by its operating-system user."""
    return f"local:{getpass.getuser()}"


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    recorded_at: str
    actor: str
    action: str
    target: str
    details: Mapping[str, Any]
    prev_hash: str
    hash: str
    mac: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq, "recorded_at": self.recorded_at, "actor": self.actor, "action": self.action,
            "target": self.target, "details": dict(self.details), "prev_hash": self.prev_hash, "hash": self.hash, "mac": self.mac,
        }


@dataclass(frozen=True)
class ChainHead:
    seq: int
    hash: str

    def anchor(self) -> str:
        """SEQ:HASH, the form `verify --anchor` takes."""
        return f"{self.seq}:{self.hash}"

    @classmethod
    def parse(cls, text: str) -> ChainHead:
        seq, sep, digest = text.partition(":")
        if not sep or not seq.isdigit() or len(digest) != 64:
            raise ValueError(f"anchor {text!r} is not SEQ:HASH (64 hex digits), as printed by `flute audit export`")
        return cls(seq=int(seq), hash=digest.lower())


@dataclass(frozen=True)
class AuditProblem:
    """One broken link: the entry (seq) and why."""

    seq: int
    reason: str

    def __str__(self) -> str:
        return f"entry {self.seq}: {self.reason}"


@dataclass(frozen=True)
class AuditVerification:
    entries: int
    head: ChainHead
    keyed: bool
    problems: list[AuditProblem] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


def canonical_details(details: Mapping[str, Any] | None) -> str:
    """Details as canonical JSON (sorted keys, no spaces); values JSON cannot hold are
    written as their str(), so nothing is silently dropped."""
    return json.dumps(dict(details or {}), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def entry_hash(*, seq: int, recorded_at: str, actor: str, action: str, target: str, details: str, prev_hash: str) -> str:
    document = {"seq": seq, "recorded_at": recorded_at, "actor": actor, "action": action, "target": target, "details": details, "prev_hash": prev_hash}
    return hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")).hexdigest()


def _mac(key: bytes | None, message: str) -> str | None:
    return None if key is None else hmac.new(key, message.encode("ascii"), hashlib.sha256).hexdigest()


def _head_message(seq: int, digest: str) -> str:
    return f"head:{seq}:{digest}"


def append(
    connection: Connection, *, actor: str, action: str, target: str, details: Mapping[str, Any] | None = None,
    key: bytes | None = None, now: datetime | None = None,
) -> AuditEntry:
    """Record one event in the caller's transaction. `action` names the event as AREA.VERB
    (an `Action` value, or e.g. `auth.login`, `data.import`, `training.round`); `target` is
    what it was done to (a user, a dataset, a study, a patient pseudonym)."""
    # Claim the next seq first: the UPDATE takes the head's row lock (PostgreSQL) or the write
    # lock (SQLite) before anything is read, so concurrent appends queue instead of forking.
    connection.execute(update(AuditHeadRecord).where(AuditHeadRecord.id == HEAD_ID).values(seq=AuditHeadRecord.seq + 1))
    head = connection.execute(select(AuditHeadRecord.seq, AuditHeadRecord.hash).where(AuditHeadRecord.id == HEAD_ID)).one()
    recorded_at = (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="microseconds")
    text = canonical_details(details)
    digest = entry_hash(seq=head.seq, recorded_at=recorded_at, actor=actor, action=action, target=target, details=text, prev_hash=head.hash)
    entry = AuditEntry(
        seq=head.seq, recorded_at=recorded_at, actor=actor, action=action, target=target,
        details=json.loads(text), prev_hash=head.hash, hash=digest, mac=_mac(key, digest),
    )
    connection.execute(
        AuditEntryRecord.__table__.insert().values(
            seq=entry.seq, recorded_at=recorded_at, actor=actor, action=action, target=target,
            details=text, prev_hash=entry.prev_hash, hash=digest, mac=entry.mac,
        )
    )
    connection.execute(
        update(AuditHeadRecord).where(AuditHeadRecord.id == HEAD_ID).values(hash=digest, mac=_mac(key, _head_message(entry.seq, digest)))
    )
    return entry


@dataclass(frozen=True)
class AuditTrail:
    """A node's audit log handle: its key (None: hash chain only) and the default actor for
    actions taken on the node itself."""

    key: bytes | None
    actor: str = field(default_factory=local_actor)

    def append(self, connection: Connection, action: str, target: str, details: Mapping[str, Any] | None = None, *, actor: str | None = None) -> AuditEntry:
        return append(connection, actor=actor or self.actor, action=action, target=target, details=details, key=self.key)

    def verify(self, connection: Connection, anchor: ChainHead | None = None) -> AuditVerification:
        return verify(connection, key=self.key, anchor=anchor)


#: The trail of each node database opened through its home (`bind_trail`), so code that only
#: holds a connection (an import, a withdrawal, a budget charge) records with the node's key.
_BOUND_TRAILS: WeakKeyDictionary[Engine, AuditTrail] = WeakKeyDictionary()


def bind_trail(engine: Engine, trail: AuditTrail) -> None:
    """Make `trail` the one `record` uses for connections of `engine`."""
    _BOUND_TRAILS[engine] = trail


def record(connection: Connection, action: str, target: str, details: Mapping[str, Any] | None = None, *, actor: str | None = None) -> AuditEntry:
    """Append with the trail bound to the connection's engine; a database opened without its
    home (an embedded, in-memory hub) gets entries without HMAC, chained all the same."""
    trail = _BOUND_TRAILS.get(connection.engine) or AuditTrail(key=None)
    return trail.append(connection, action, target, details, actor=actor)


def iter_entries(connection: Connection) -> Iterator[AuditEntry]:
    """Every stored entry in seq order, as stored (details parsed; unparsable details kept as
    {"unparsable": TEXT} so an export never hides a damaged entry)."""
    for row in connection.execute(select(AuditEntryRecord).order_by(AuditEntryRecord.seq)):
        try:
            details = json.loads(row.details)
        except ValueError:
            details = {"unparsable": row.details}
        yield AuditEntry(
            seq=row.seq, recorded_at=row.recorded_at, actor=row.actor, action=row.action, target=row.target,
            details=details if isinstance(details, dict) else {"value": details}, prev_hash=row.prev_hash, hash=row.hash, mac=row.mac,
        )


def chain_head(connection: Connection) -> ChainHead:
    row = connection.execute(select(AuditHeadRecord.seq, AuditHeadRecord.hash).where(AuditHeadRecord.id == HEAD_ID)).one()
    return ChainHead(seq=row.seq, hash=row.hash)


def verify(connection: Connection, *, key: bytes | None, anchor: ChainHead | None = None) -> AuditVerification:
    """Check the whole chain; every problem names the entry and why: content altered, entry
    moved (its content hashes as another seq), entries missing, a broken link, an HMAC that
    does not verify, a head that does not match the log, or an anchor the log no longer holds."""
    rows = list(connection.execute(select(AuditEntryRecord).order_by(AuditEntryRecord.seq)))
    head_row = connection.execute(select(AuditHeadRecord).where(AuditHeadRecord.id == HEAD_ID)).one()
    seq_of_hash = {row.hash: row.seq for row in rows}
    problems: list[AuditProblem] = []
    previous_seq, previous_hash = 0, GENESIS_HASH
    for row in rows:
        if row.seq != previous_seq + 1:
            missing = f"{previous_seq + 1}" if row.seq == previous_seq + 2 else f"{previous_seq + 1}..{row.seq - 1}"
            problems.append(AuditProblem(previous_seq + 1, f"entries {missing} are missing (removed from the log)"))
        problems.extend(_entry_problems(row, previous_hash, seq_of_hash, key))
        previous_seq, previous_hash = row.seq, row.hash
    problems.extend(_head_problems(head_row, previous_seq, previous_hash, key))
    if anchor is not None:
        held = next((row.hash for row in rows if row.seq == anchor.seq), None)
        if held != anchor.hash:
            problems.append(AuditProblem(anchor.seq, f"does not match the exported anchor {anchor.anchor()} (the log was rewritten or truncated since)"))
    return AuditVerification(entries=len(rows), head=ChainHead(head_row.seq, head_row.hash), keyed=key is not None, problems=problems)


def _entry_problems(row: Row[Any], previous_hash: str, seq_of_hash: Mapping[str, int], key: bytes | None) -> list[AuditProblem]:
    fields = {"recorded_at": row.recorded_at, "actor": row.actor, "action": row.action, "target": row.target, "details": row.details, "prev_hash": row.prev_hash}
    if entry_hash(seq=row.seq, **fields) != row.hash:
        original = _original_seq(row.seq, row.hash, fields, 1 if row.prev_hash == GENESIS_HASH else seq_of_hash.get(row.prev_hash, -1) + 1)
        if original is not None:
            return [AuditProblem(row.seq, f"holds the original entry {original} (entries were reordered, or one was inserted or removed before it)")]
        return [AuditProblem(row.seq, "content altered: the stored hash does not match the entry's content")]
    problems = []
    if row.prev_hash != previous_hash:
        problems.append(AuditProblem(row.seq, "prev_hash does not match the previous entry's hash (an entry before it was altered, removed or inserted)"))
    if key is not None and not (row.mac and hmac.compare_digest(row.mac, _mac(key, row.hash) or "")):
        problems.append(AuditProblem(row.seq, "HMAC does not verify with this node's audit key (written or re-chained without the key)"))
    return problems


def _original_seq(seq: int, digest: str, fields: Mapping[str, str], linked_guess: int) -> int | None:
    """The seq an entry's content was hashed with, when it is not `seq`: the one after its
    predecessor's current position, or a nearby one (local reorders, inserts and removals)."""
    candidates = [linked_guess, *(seq + d for d in range(-MOVE_SEARCH, MOVE_SEARCH + 1) if d)]
    return next((c for c in candidates if c > 0 and c != seq and entry_hash(seq=c, **fields) == digest), None)


def _head_problems(head: Row[Any], last_seq: int, last_hash: str, key: bytes | None) -> list[AuditProblem]:
    if (head.seq, head.hash) != (last_seq, last_hash):
        return [AuditProblem(max(head.seq, last_seq), f"the chain head records entry {head.seq} but the log ends at entry {last_seq} "
                             "with another hash (entries were removed from the end or added outside the log)")]
    if key is not None and head.seq > 0 and not (head.mac and hmac.compare_digest(head.mac, _mac(key, _head_message(head.seq, head.hash)) or "")):
        return [AuditProblem(head.seq, "the chain head's HMAC does not verify with this node's audit key")]
    return []
