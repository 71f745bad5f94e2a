"""50 reservations racing for one budget, from threads and from processes, on SQLite and
PostgreSQL: the budget is never over-spent and exactly the requests that fit succeed."""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.synchronize import Barrier

import pytest

from flute.hub.ledger import BudgetExceeded, PrivacyLedger
from flute.hub.store import HubStore, create_store_engine

from .ledger_support import DATASET, STUDY, cost, ledger  # noqa: F401  (fixture)

REQUESTS = 50
FITTING = 10  # epsilon 1.0 / 0.1 per request; the delta total fits 12, so epsilon binds


def _set_up(ledger: PrivacyLedger) -> None:
    ledger.set_budget(STUDY, DATASET, 1.0, 1.2e-5)


def _assert_exactly_full(ledger: PrivacyLedger, outcomes: list[str]) -> None:
    assert outcomes.count("reserved") == FITTING and outcomes.count("refused") == REQUESTS - FITTING
    status = ledger.budget(STUDY, DATASET)
    assert status.epsilon_remaining == 0 and status.epsilon_spent + status.epsilon_reserved == 1.0
    assert abs(status.delta_spent + status.delta_reserved - FITTING * 1e-6) < 1e-18
    assert len(ledger.recent_charges(limit=REQUESTS)) == FITTING


def _reserve_and_commit_half(ledger: PrivacyLedger, index: int) -> str:
    try:
        reservation = ledger.reserve(STUDY, DATASET, cost(0.1, 1e-6), f"request {index}")
    except BudgetExceeded:
        return "refused"
    if index % 2:
        ledger.commit(reservation)
    return "reserved"


@pytest.mark.slow
def test_threads_never_overspend(ledger: PrivacyLedger) -> None:
    _set_up(ledger)
    start = threading.Barrier(REQUESTS)

    def request(index: int) -> str:
        start.wait()
        return _reserve_and_commit_half(ledger, index)

    with ThreadPoolExecutor(max_workers=REQUESTS) as pool:
        outcomes = list(pool.map(request, range(REQUESTS)))
    _assert_exactly_full(ledger, outcomes)


def _process_request(url: str, index: int, start: Barrier, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    engine = create_store_engine(url)  # a connection of its own, as a separate hub process has
    try:
        ledger = PrivacyLedger(engine)
        start.wait()
        results.put(_reserve_and_commit_half(ledger, index))
    finally:
        engine.dispose()


@pytest.mark.slow
def test_processes_never_overspend(ledger: PrivacyLedger, hub_db_url_or_sqlite: str) -> None:
    _set_up(ledger)
    context = multiprocessing.get_context("fork")  # cheap: 50 interpreters would cost minutes on 2 cores
    start, results = context.Barrier(REQUESTS), context.Queue()
    workers = [context.Process(target=_process_request, args=(hub_db_url_or_sqlite, i, start, results)) for i in range(REQUESTS)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    _assert_exactly_full(ledger, outcomes)


def test_a_fresh_store_engine_sees_the_same_ledger(ledger: PrivacyLedger, hub_db_url_or_sqlite: str) -> None:
    _set_up(ledger)
    ledger.reserve(STUDY, DATASET, cost(0.3), "from the first connection")
    other = HubStore.open(hub_db_url_or_sqlite)
    try:
        assert PrivacyLedger(other.engine).budget(STUDY, DATASET).epsilon_reserved == 0.3
    finally:
        other.close()
