"""Ingest on two cores (F-PIL-5, NF-PIL-3): a forked helper process reads and prepares the input
(`flute.hub.prepare`: parsing, IG validation, canonical body, content hash) while the importing
process decides against the store and writes; afterwards both re-derive study rows, sharing the
stale patients.

Why this split: one SQLite database has one writer, and the writes (with the decisions that
need the store) are about half of an import's CPU; preparing is most of the other half and
needs no database. Deriving study rows reads and parses each patient's stored resources, so it
is shared: the pseudonym space is cut into DERIVE_RANGES ranges, and each process claims the
next unclaimed one (a counter in shared memory) until none is left, each chunk in its own
transaction. The helper, ahead of the importer, also checkpoints SQLite's write-ahead log after
each chunk it sends: copying the log into the database is otherwise left to the store's close,
serially after the import (~5 us a resource of wall time).

Streaming and backpressure: prepared chunks go through a pipe one at a time, as plain tuples
(pickling named tuples costs several times more), so the helper is at most one chunk ahead and
memory stays flat. Failure: an error in the helper is raised in the
importer with the helper's traceback; if the importer dies (even by SIGKILL), the helper's
next send or receive fails, or the kernel kills it (Linux parent-death signal), so it never
outlives the import it serves.

Every store-level guarantee of `flute.hub.ingest` is unchanged: the helper never writes input
data, and each of its derivation chunks is one transaction like the importer's.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import traceback
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from itertools import accumulate, pairwise
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from types import TracebackType
from typing import Protocol, TypeVar

from sqlalchemy import Engine

from flute.fhir.extract import InclusionRule
from flute.fhir.source import ImportUnit
from flute.hub.derive import PseudonymRange, derive_stale_rows
from flute.hub.prepare import PreparedEntry, PreparedUnit, prepare_units
from flute.hub.pseudonym import Pseudonymizer
from flute.hub.store import checkpoint_wal, create_store_engine

#: Widths, in 256ths of the pseudonym space, of the ranges the two processes claim in turn. They
#: shrink (guided scheduling): with equal ranges the process that finished first waited up to a
#: whole range for the other (5-15 ms on the simulated cohort); narrow last ranges even that out.
DERIVE_WIDTHS = (32, 32, 24, 24, 20, 20, 16, 16, 12, 12, 10, 10, 8, 8, 4, 4, 2, 2)


def _derive_ranges(widths: Sequence[int]) -> tuple[PseudonymRange, ...]:
    """Consecutive pseudonym ranges of these widths by the first two hex digits (pseudonyms are
    hex HMACs, so a range holds a share of the stale patients in proportion to its width)."""
    bounds = list(accumulate(widths, initial=0))
    if bounds[-1] != 256:
        raise ValueError(f"derive range widths must add up to 256, got {bounds[-1]}")
    return tuple(PseudonymRange(low=None if low == 0 else f"{low:02x}", high=None if high == 256 else f"{high:02x}") for low, high in pairwise(bounds))


DERIVE_RANGES: tuple[PseudonymRange, ...] = _derive_ranges(DERIVE_WIDTHS)
#: Below this much input a second process costs more (fork, pipe) than it saves.
TWO_PROCESSES_MIN_BYTES = 1 << 20
#: The helper's first chunk: small, so the importer does not wait long for its first work.
FIRST_CHUNK_ENTRIES = 250
_PR_SET_PDEATHSIG = 1


class _HasEntries(Protocol):
    @property
    def entries(self) -> Sequence[object]: ...


UnitT = TypeVar("UnitT", bound=_HasEntries)


def chunks_of(units: Iterable[UnitT], max_entries: int, first_entries: int | None = None) -> Iterator[list[UnitT]]:
    """Groups units into chunks of about `max_entries` entries (a unit is never split). With
    `first_entries`, the first chunk is that small and each next one twice as large, up to
    `max_entries`: the importer starts writing sooner while its helper prepares the rest."""
    limit = min(first_entries or max_entries, max_entries)
    chunk: list[UnitT] = []
    size = 0
    for unit in units:
        chunk.append(unit)
        size += max(1, len(unit.entries))
        if size >= limit:
            yield chunk
            chunk, size, limit = [], 0, min(2 * limit, max_entries)
    if chunk:
        yield chunk


def prepared_chunks(
    units: Iterable[ImportUnit], pseudonymizer: Pseudonymizer, max_entries: int, first_entries: int | None = None
) -> Iterator[list[PreparedUnit]]:
    """Prepared units in chunks (see `chunks_of`), in this process."""
    return chunks_of(prepare_units(units, pseudonymizer), max_entries, first_entries)


def usable_cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def second_core_idle() -> bool:
    """Whether another core is free for a helper: at least two cores, and the 1-minute load
    average leaves one of them idle. On a machine already busy two processes only add the cost
    of the hand-over (~15 us of CPU per resource) and finish later than one."""
    cores = usable_cores()
    return cores >= 2 and os.getloadavg()[0] <= cores - 1


def large_input(files: Sequence[Path]) -> bool:
    return sum(file.stat().st_size for file in files if file.is_file()) >= TWO_PROCESSES_MIN_BYTES


def worth_two_processes(files: Sequence[Path]) -> bool:
    """Whether to import `files` with a helper process: fork available, large input, a free core."""
    return "fork" in multiprocessing.get_all_start_methods() and large_input(files) and second_core_idle()


class HelperFailed(RuntimeError):
    """The preparing helper process failed or ended unexpectedly; the message carries its traceback."""


@dataclass(frozen=True)
class DeriveTask:
    """What the helper needs to derive its share of the stale study rows (sent when the
    importer has stored everything: the helper starts before the batch is recorded)."""

    batch_id: int
    rule: InclusionRule


class PreparingProcess:
    """A forked helper that prepares `units` in chunks, then derives study rows alongside the
    importer. Use as a context manager: `chunks()`, then `derive()`."""

    def __init__(self, units: Iterable[ImportUnit], pseudonymizer: Pseudonymizer, max_entries: int, database_url: str) -> None:
        context = multiprocessing.get_context("fork")
        self._connection, helper_end = context.Pipe(duplex=True)
        self._helper_end = helper_end
        self._claims = _RangeClaims(context.Value("i", 0))
        self._process = context.Process(
            target=_serve,
            args=(helper_end, self._connection, os.getpid(), units, pseudonymizer, max_entries, database_url, self._claims),
            name="flute-ingest-prepare",
            daemon=True,
        )

    def __enter__(self) -> PreparingProcess:
        self._process.start()
        self._helper_end.close()
        return self

    def __exit__(self, error: type[BaseException] | None, _value: BaseException | None, _tb: TracebackType | None) -> None:
        self._connection.close()  # a helper still sending or waiting sees the pipe closed and ends
        if error is not None:
            self.stop()
        self._process.join(timeout=30)
        if self._process.is_alive():
            self.stop()

    def stop(self) -> None:
        """Kill the helper and wait for its end: the import failed, its work is moot (a killed
        chunk rolls back)."""
        self._process.kill()
        self._process.join()

    def chunks(self) -> Iterator[list[PreparedUnit]]:
        while True:
            message = self._receive()
            if message[0] == "end":
                return
            yield _from_wire(message[1])

    def derive(self, engine: Engine, task: DeriveTask) -> tuple[int, Counter[str]]:
        """Derive the stale rows together with the helper; the totals of both."""
        self._connection.send(("derive", task))
        derived, findings = self._claims.derive(engine, task)
        message = self._receive()
        if message[0] != "derived":
            raise HelperFailed(f"the ingest helper answered {message[0]!r} instead of its derivation result")
        findings.update(message[2])
        return derived + message[1], findings

    def _receive(self) -> tuple:  # type: ignore[type-arg]
        try:
            message: tuple = self._connection.recv()  # type: ignore[type-arg]
        except EOFError as exc:
            raise HelperFailed(f"the ingest helper process ended unexpectedly (exit code {self._process.exitcode})") from exc
        if message[0] == "failed":
            raise HelperFailed(f"the ingest helper process failed:\n{message[1]}")
        return message


def _serve(
    connection: Connection, importer_end: Connection, importer: int, units: Iterable[ImportUnit], pseudonymizer: Pseudonymizer,
    max_entries: int, database_url: str, claims: _RangeClaims,
) -> None:
    """The helper's whole life (in the forked child)."""
    importer_end.close()
    _die_with_parent()
    if os.getppid() != importer:
        return  # the importer died before the signal was armed
    try:
        engine = create_store_engine(database_url)
        try:
            _send_prepared(connection, prepared_chunks(units, pseudonymizer, max_entries, FIRST_CHUNK_ENTRIES), engine)
            message = connection.recv()
            if message[0] != "derive":
                return
            task: DeriveTask = message[1]
            derived, findings = claims.derive(engine, task)
        finally:
            engine.dispose()
        connection.send(("derived", derived, findings))
    except (BrokenPipeError, ConnectionResetError, EOFError):
        return  # the importer is gone or gave up: nothing to report to
    except BaseException:
        with suppress(BrokenPipeError, ConnectionResetError):
            connection.send(("failed", traceback.format_exc()))


def _send_prepared(connection: Connection, chunks: Iterable[list[PreparedUnit]], engine: Engine) -> None:
    """Send the prepared chunks, checkpointing the store's write-ahead log after each: the
    importer writes that chunk meanwhile and this process, ahead of it, would only wait, while
    copying the log when the store closes (~5 us a resource) is on the critical path."""
    for chunk in chunks:
        connection.send(("chunk", _to_wire(chunk)))
        checkpoint_wal(engine)
    connection.send(("end",))


@dataclass(frozen=True)
class _RangeClaims:
    """The next unclaimed index into DERIVE_RANGES, shared by the importer and its helper."""

    next_index: Synchronized[int]

    def derive(self, engine: Engine, task: DeriveTask) -> tuple[int, Counter[str]]:
        """Claim ranges and derive their stale rows until every range is claimed."""
        derived, findings = 0, Counter[str]()
        while (shard := self._claim()) is not None:
            count, found = derive_stale_rows(engine, task.batch_id, task.rule, shard)
            derived += count
            findings.update(found)
        return derived, findings

    def _claim(self) -> PseudonymRange | None:
        with self.next_index.get_lock():
            index = self.next_index.value
            self.next_index.value = index + 1
        return DERIVE_RANGES[index] if index < len(DERIVE_RANGES) else None


_WireUnit = tuple[str, bool, tuple[tuple[object, ...], ...]]


def _to_wire(chunk: list[PreparedUnit]) -> list[_WireUnit]:
    return [(unit.source, unit.atomic, tuple(map(tuple, unit.entries))) for unit in chunk]


def _from_wire(chunk: list[_WireUnit]) -> list[PreparedUnit]:
    """The named tuples back, built from their fields in order without their Python-level
    constructors (mapped in C: this runs on the importer, the critical path)."""
    new = tuple.__new__
    entry = partial(new, PreparedEntry)
    return [new(PreparedUnit, (source, atomic, tuple(map(entry, entries)))) for source, atomic, entries in chunk]


def _die_with_parent() -> None:
    """Ask Linux to kill this helper when the importer dies, even by SIGKILL (elsewhere the
    broken pipe ends it at its next send or receive)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
