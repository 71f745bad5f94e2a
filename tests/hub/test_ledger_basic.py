"""The ledger's protocol on SQLite and PostgreSQL: reserve before computing, commit or release
after, refusal with the full picture, crash safety (study protocol 5.2.6, NF-HUF-1/2)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from flute.hub.ledger import BudgetExceeded, BudgetNotSet, LedgerError, PrivacyLedger, ReservationNotPending
from flute.hub.ledger_models import ChargeStatus

from .ledger_support import DATASET, STUDY, cost, ledger  # noqa: F401  (fixture)


def test_reserve_commit_release_move_the_figures(ledger: PrivacyLedger) -> None:
    ledger.set_budget(STUDY, DATASET, 1.0, 1e-5)
    spent, refunded, pending = (ledger.reserve(STUDY, DATASET, cost(0.25, 1e-6), f"release {i}") for i in range(3))
    ledger.commit(spent)
    ledger.release(refunded)
    status = ledger.budget(STUDY, DATASET)
    assert (status.epsilon_spent, status.epsilon_reserved, status.epsilon_remaining) == (0.25, 0.25, 0.5)
    assert (status.delta_spent, status.delta_reserved, status.delta_remaining) == (1e-6, 1e-6, 8e-6)
    charges = {charge.charge_id: charge for charge in ledger.recent_charges()}
    assert charges[spent.charge_id].status is ChargeStatus.COMMITTED
    assert charges[refunded.charge_id].status is ChargeStatus.RELEASED
    assert charges[pending.charge_id].status is ChargeStatus.RESERVED and charges[pending.charge_id].settled_at is None
    assert charges[pending.charge_id].holder.endswith(f":{os.getpid()}")


def test_decimal_budgets_split_exactly(ledger: PrivacyLedger) -> None:
    ledger.set_budget(STUDY, DATASET, 1.0, 1e-4)
    for step in range(10):
        ledger.reserve(STUDY, DATASET, cost(0.1, 1e-5), f"step {step}")
    status = ledger.budget(STUDY, DATASET)
    assert status.epsilon_remaining == 0 and status.delta_remaining == 0
    with pytest.raises(BudgetExceeded):
        ledger.reserve(STUDY, DATASET, cost(1e-12), "one unit too many")


def test_refusal_states_spent_reserved_remaining_and_requested(ledger: PrivacyLedger) -> None:
    ledger.set_budget(STUDY, DATASET, 2.0, 1e-5)
    ledger.commit(ledger.reserve(STUDY, DATASET, cost(1.25, 2e-6), "descriptive statistics"))
    ledger.reserve(STUDY, DATASET, cost(0.5, 1e-6), "round 1")
    with pytest.raises(BudgetExceeded) as refused:
        ledger.reserve(STUDY, DATASET, cost(0.5, 1e-6), "round 2")
    message = str(refused.value)
    for expected in (
        f"study '{STUDY}' on dataset '{DATASET}'", "'round 2' requests epsilon=0.5, delta=1e-06", "total epsilon=2, delta=1e-05",
        "spent epsilon=1.25, delta=2e-06", "reserved (pending, counted as spent) epsilon=0.5, delta=1e-06",
        "remaining epsilon=0.25, delta=7e-06", f"flute hub budget set {STUDY} --dataset {DATASET}",
    ):
        assert expected in message
    assert refused.value.status.epsilon_remaining == 0.25
    assert ledger.budget(STUDY, DATASET).epsilon_reserved == 0.5  # the refusal charged nothing


def test_delta_alone_can_exhaust_the_budget(ledger: PrivacyLedger) -> None:
    ledger.set_budget(STUDY, DATASET, 10.0, 1e-6)
    with pytest.raises(BudgetExceeded, match="requests epsilon=0.1, delta=2e-06"):
        ledger.reserve(STUDY, DATASET, cost(0.1, 2e-6), "too much delta")


def test_no_budget_means_no_release(ledger: PrivacyLedger) -> None:
    with pytest.raises(BudgetNotSet, match=f"flute hub budget set {STUDY} --dataset {DATASET}"):
        ledger.reserve(STUDY, DATASET, cost(0.1), "statistics")


def test_a_reservation_settles_once(ledger: PrivacyLedger) -> None:
    ledger.set_budget(STUDY, DATASET, 1.0, 0.0)
    reservation = ledger.reserve(STUDY, DATASET, cost(0.5), "statistics")
    ledger.commit(reservation)
    with pytest.raises(ReservationNotPending, match="already committed"):
        ledger.release(reservation)
    with pytest.raises(ReservationNotPending, match="already committed"):
        ledger.commit(reservation)
    assert ledger.budget(STUDY, DATASET).epsilon_spent == 0.5


def test_owner_may_raise_but_not_lower_below_charges(ledger: PrivacyLedger) -> None:
    ledger.set_budget(STUDY, DATASET, 1.0, 1e-5)
    ledger.reserve(STUDY, DATASET, cost(0.75), "training")
    with pytest.raises(LedgerError, match="already charged epsilon=0.75"):
        ledger.set_budget(STUDY, DATASET, 0.5, 1e-5)
    assert ledger.set_budget(STUDY, DATASET, 3.0, 1e-5).epsilon_remaining == 2.25
    with pytest.raises(LedgerError, match="budget epsilon"):
        ledger.set_budget(STUDY, DATASET, float("nan"), 1e-5)


@pytest.mark.slow
def test_a_killed_hub_never_loses_a_charge(ledger: PrivacyLedger, hub_db_url_or_sqlite: str) -> None:
    ledger.set_budget(STUDY, DATASET, 1.0, 1e-5)
    script = textwrap.dedent(
        """
        import sys, time
        from flute.hub.ledger import PrivacyLedger
        from flute.hub.store import HubStore
        from flute.privacy.dp.cost import DpCost

        ledger = PrivacyLedger(HubStore.open(sys.argv[1]).engine)
        reservation = ledger.reserve(sys.argv[2], sys.argv[3], DpCost(0.5, 1e-6, "record", "gaussian"), "training, killed")
        print(reservation.charge_id, flush=True)
        time.sleep(120)  # computing the release; killed before it commits
        """
    )
    worker = subprocess.Popen([sys.executable, "-c", script, hub_db_url_or_sqlite, STUDY, DATASET], stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout is not None
        charge_id = int(worker.stdout.readline())
    finally:
        worker.send_signal(signal.SIGKILL)
        assert worker.wait(timeout=30) == -signal.SIGKILL
    status = ledger.budget(STUDY, DATASET)
    assert status.epsilon_reserved == 0.5 and status.epsilon_remaining == 0.5
    with pytest.raises(BudgetExceeded):
        ledger.reserve(STUDY, DATASET, cost(0.75), "after the crash")
    abandoned = ledger.pending_reservation(charge_id)
    assert abandoned.operation == "training, killed" and abandoned.cost.epsilon == 0.5
    ledger.release(abandoned)  # the data owner's explicit decision
    assert ledger.budget(STUDY, DATASET).epsilon_remaining == 1.0
