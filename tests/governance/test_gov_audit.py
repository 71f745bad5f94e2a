"""The hash-chained audit log (F-SRS-8, URS-10, F-PIL-21): intact chains verify; altering,
removing, inserting or reordering entries (directly in the database) is detected and the
entry named; without the node key a re-chained log is caught by the HMAC; concurrent appends
on PostgreSQL never fork the chain."""

from __future__ import annotations

import hashlib
import hmac as hmac_module
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pg import PostgresServer
from sqlalchemy import Connection, Engine, text

from flute.coordinator.home import write_config
from flute.coordinator.store import open_coordinator_engine
from flute.governance.audit import ChainHead, append, chain_head, entry_hash, iter_entries, verify

KEY = b"k" * 32


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    home = tmp_path / "node"
    write_config(home, None if request.param == "sqlite" else request.getfixturevalue("postgres_server").create_database())
    made = open_coordinator_engine(home, create=True)
    yield made
    made.dispose()


def _fill(engine: Engine, count: int = 6) -> None:
    for i in range(1, count + 1):
        with engine.begin() as connection:
            append(connection, actor=f"user:u{i}", action="stats.query", target=f"dataset:d{i}", details={"n": i, "note": "ü"}, key=KEY)


def _problems(engine: Engine, key: bytes | None = KEY) -> list[str]:
    with engine.connect() as connection:
        return [str(problem) for problem in verify(connection, key=key).problems]


def test_an_untouched_log_verifies_and_links_every_entry(engine: Engine) -> None:
    _fill(engine)
    with engine.connect() as connection:
        result = verify(connection, key=KEY)
        entries = list(iter_entries(connection))
    assert result.intact and result.entries == 6 and result.head == ChainHead(6, entries[-1].hash)
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5, 6]
    assert all(later.prev_hash == earlier.hash for earlier, later in zip(entries, entries[1:]))
    assert entries[0].details == {"n": 1, "note": "ü"}


def test_an_altered_entry_is_named(engine: Engine) -> None:
    _fill(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE gov_audit_entry SET actor = 'user:mallory' WHERE seq = 3"))
    assert _problems(engine) == ["entry 3: content altered: the stored hash does not match the entry's content"]


def test_altered_details_are_detected(engine: Engine) -> None:
    _fill(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE gov_audit_entry SET details = :d WHERE seq = 2"), {"d": '{"n":99,"note":"ü"}'})
    assert _problems(engine) == ["entry 2: content altered: the stored hash does not match the entry's content"]


def test_a_removed_entry_is_named(engine: Engine) -> None:
    _fill(engine)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM gov_audit_entry WHERE seq = 4"))
    problems = _problems(engine)
    assert problems[0] == "entry 4: entries 4 are missing (removed from the log)"
    assert problems[1].startswith("entry 5: prev_hash does not match")


def test_a_removed_tail_is_caught_by_the_head(engine: Engine) -> None:
    _fill(engine)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM gov_audit_entry WHERE seq = 6"))
    assert _problems(engine) == [
        "entry 6: the chain head records entry 6 but the log ends at entry 5 with another hash "
        "(entries were removed from the end or added outside the log)"
    ]


def test_reordered_entries_are_named(engine: Engine) -> None:
    _fill(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE gov_audit_entry SET seq = 100 WHERE seq = 2"))
        connection.execute(text("UPDATE gov_audit_entry SET seq = 2 WHERE seq = 3"))
        connection.execute(text("UPDATE gov_audit_entry SET seq = 3 WHERE seq = 100"))
    assert _problems(engine) == [
        "entry 2: holds the original entry 3 (entries were reordered, or one was inserted or removed before it)",
        "entry 3: holds the original entry 2 (entries were reordered, or one was inserted or removed before it)",
        "entry 4: prev_hash does not match the previous entry's hash (an entry before it was altered, removed or inserted)",
    ]


def _insert_forged(connection: Connection, position: int, key: bytes | None) -> None:
    """What an attacker with database access but without the key can do best: shift the later
    entries and insert a correctly hashed, correctly linked entry."""
    rows = connection.execute(text("SELECT seq FROM gov_audit_entry WHERE seq >= :p ORDER BY seq DESC"), {"p": position}).all()
    for (seq,) in rows:
        connection.execute(text("UPDATE gov_audit_entry SET seq = :new WHERE seq = :old"), {"new": seq + 1, "old": seq})
    previous = connection.execute(text("SELECT hash FROM gov_audit_entry WHERE seq = :s"), {"s": position - 1}).scalar_one()
    fields = {"recorded_at": "2026-11-22T12:00:00.000000+00:00", "actor": "user:mallory", "action": "access.decide", "target": "x", "details": "{}", "prev_hash": previous}
    digest = entry_hash(seq=position, **fields)
    mac = hmac_module.new(key, digest.encode(), hashlib.sha256).hexdigest() if key else None
    connection.execute(
        text("INSERT INTO gov_audit_entry (seq, recorded_at, actor, action, target, details, prev_hash, hash, mac) "
             "VALUES (:seq, :recorded_at, :actor, :action, :target, :details, :prev_hash, :hash, :mac)"),
        {"seq": position, **fields, "hash": digest, "mac": mac},
    )


def test_an_inserted_entry_is_named(engine: Engine) -> None:
    _fill(engine)
    with engine.begin() as connection:
        _insert_forged(connection, 3, key=None)
    problems = _problems(engine)
    assert problems[0] == "entry 3: HMAC does not verify with this node's audit key (written or re-chained without the key)"
    assert problems[1] == "entry 4: holds the original entry 3 (entries were reordered, or one was inserted or removed before it)"


def test_a_full_rechain_without_the_key_is_caught_only_by_the_hmac(engine: Engine) -> None:
    """The limit of a bare hash chain, and why the node key exists: an attacker who rewrites
    an entry and recomputes every later hash and the head passes a keyless verification."""
    _fill(engine, 4)
    with engine.begin() as connection:
        rows = connection.execute(text("SELECT seq, recorded_at, actor, action, target, details FROM gov_audit_entry ORDER BY seq")).all()
        previous = "0" * 64
        for row in rows:
            actor = "user:mallory" if row.seq == 2 else row.actor
            digest = entry_hash(seq=row.seq, recorded_at=row.recorded_at, actor=actor, action=row.action, target=row.target, details=row.details, prev_hash=previous)
            connection.execute(text("UPDATE gov_audit_entry SET actor = :a, prev_hash = :p, hash = :h WHERE seq = :s"), {"a": actor, "p": previous, "h": digest, "s": row.seq})
            previous = digest
        connection.execute(text("UPDATE gov_audit_head SET hash = :h WHERE id = 1"), {"h": previous})
    assert _problems(engine, key=None) == []
    problems = _problems(engine)
    assert problems[0] == "entry 2: HMAC does not verify with this node's audit key (written or re-chained without the key)"
    assert problems[-1] == "entry 4: the chain head's HMAC does not verify with this node's audit key"


def test_an_exported_anchor_catches_a_rollback(engine: Engine) -> None:
    _fill(engine, 3)
    with engine.connect() as connection:
        anchor = chain_head(connection)
    assert ChainHead.parse(anchor.anchor()) == anchor
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM gov_audit_entry WHERE seq = 3"))
        previous = connection.execute(text("SELECT hash, mac FROM gov_audit_entry WHERE seq = 2")).one()
        connection.execute(text("UPDATE gov_audit_head SET seq = 2, hash = :h, mac = NULL WHERE id = 1"), {"h": previous.hash})
    with engine.connect() as connection:
        problems = [str(p) for p in verify(connection, key=None, anchor=anchor).problems]
    assert problems == [f"entry 3: does not match the exported anchor {anchor.anchor()} (the log was rewritten or truncated since)"]
    with pytest.raises(ValueError, match="SEQ:HASH"):
        ChainHead.parse("3:abc")


def test_an_entry_rolls_back_with_the_action_it_records(engine: Engine) -> None:
    _fill(engine, 2)
    with pytest.raises(RuntimeError), engine.begin() as connection:
        append(connection, actor="user:u", action="data.import", target="batch:9", key=KEY)
        raise RuntimeError("the import failed")
    with engine.connect() as connection:
        assert verify(connection, key=KEY).entries == 2


@pytest.mark.postgres
def test_concurrent_appends_never_fork_the_chain(tmp_path: Path, postgres_server: PostgresServer) -> None:
    home = tmp_path / "node"
    write_config(home, postgres_server.create_database())
    engine = open_coordinator_engine(home, create=True)

    def worker(n: int) -> None:
        for i in range(15):
            with engine.begin() as connection:
                append(connection, actor=f"user:w{n}", action="stats.query", target=f"t{i}", key=KEY)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with engine.connect() as connection:
        result = verify(connection, key=KEY)
    engine.dispose()
    assert result.intact and result.entries == 60 and result.head.seq == 60


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    details=st.lists(st.dictionaries(st.text(max_size=8), st.one_of(st.integers(), st.text(max_size=12), st.none(), st.floats(allow_nan=False))), min_size=2, max_size=6),
    victim=st.integers(min_value=0, max_value=5),
    column=st.sampled_from(["actor", "action", "target", "recorded_at"]),
)
def test_any_single_edit_of_any_entry_is_detected(tmp_path_factory: pytest.TempPathFactory, details: list[dict[str, object]], victim: int, column: str) -> None:
    home = tmp_path_factory.mktemp("prop")
    engine = open_coordinator_engine(home, create=True)
    try:
        for i, item in enumerate(details, start=1):
            with engine.begin() as connection:
                append(connection, actor="user:p", action="stats.query", target=f"t{i}", details=item, key=KEY)
        assert _problems(engine) == []
        seq = victim % len(details) + 1
        with engine.begin() as connection:
            connection.execute(text(f"UPDATE gov_audit_entry SET {column} = {column} || 'x' WHERE seq = :s"), {"s": seq})
        assert _problems(engine)[0] == f"entry {seq}: content altered: the stored hash does not match the entry's content"
    finally:
        engine.dispose()
