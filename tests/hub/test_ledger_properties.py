"""Ledger invariants under any sequence of operations (hypothesis state machine): spent +
reserved never exceeds the total, refusals charge nothing, and the figures match a model
that applies the protocol by hand."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, initialize, invariant, rule
from sqlalchemy import create_engine
from sqlalchemy.pool import StaticPool

from flute.hub.ledger import BudgetExceeded, BudgetNotSet, LedgerError, PrivacyLedger, Reservation, ReservationNotPending
from flute.hub.store import upgrade_schema

from .ledger_support import cost

STUDIES = ("study-a", "study-b")
DATASET = "dataset"
# Amounts in thousandths of epsilon and ten-millionths of delta: exact decimals, so the model can
# use integers while the ledger sees ordinary floats.
EPSILON_STEPS = st.integers(min_value=0, max_value=600)
DELTA_STEPS = st.integers(min_value=0, max_value=40)


@dataclass
class ModelBudget:
    epsilon_total: int
    delta_total: int
    spent: list[tuple[int, int]] = field(default_factory=list)
    pending: dict[int, tuple[int, int]] = field(default_factory=dict)

    def charged(self) -> tuple[int, int]:
        charges = [*self.spent, *self.pending.values()]
        return sum(e for e, _ in charges), sum(d for _, d in charges)


class LedgerMachine(RuleBasedStateMachine):
    reservations = Bundle("reservations")

    @initialize()
    def open_ledger(self) -> None:
        engine = create_engine("sqlite://", poolclass=StaticPool)
        upgrade_schema(engine)  # the whole hub schema: budget changes and charges are audited too
        self.ledger = PrivacyLedger(engine)
        self.model: dict[str, ModelBudget] = {}

    @rule(study=st.sampled_from(STUDIES), epsilon=st.integers(1, 2000), delta=DELTA_STEPS)
    def set_budget(self, study: str, epsilon: int, delta: int) -> None:
        budget = self.model.get(study)
        charged = budget.charged() if budget else (0, 0)
        try:
            self.ledger.set_budget(study, DATASET, epsilon / 1000, delta / 10**7)
        except LedgerError:
            assert charged[0] > epsilon or charged[1] > delta
            return
        assert charged[0] <= epsilon and charged[1] <= delta
        if budget is None:
            self.model[study] = ModelBudget(epsilon, delta)
        else:
            budget.epsilon_total, budget.delta_total = epsilon, delta

    @rule(target=reservations, study=st.sampled_from(STUDIES), epsilon=EPSILON_STEPS, delta=DELTA_STEPS)
    def reserve(self, study: str, epsilon: int, delta: int) -> Reservation | None:
        budget = self.model.get(study)
        try:
            reservation = self.ledger.reserve(study, DATASET, cost(epsilon / 1000, delta / 10**7), "operation")
        except BudgetNotSet:
            assert budget is None
            return None
        except BudgetExceeded:
            assert budget is not None
            charged = budget.charged()
            assert charged[0] + epsilon > budget.epsilon_total or charged[1] + delta > budget.delta_total
            return None
        assert budget is not None
        charged = budget.charged()
        assert charged[0] + epsilon <= budget.epsilon_total and charged[1] + delta <= budget.delta_total
        budget.pending[reservation.charge_id] = (epsilon, delta)
        return reservation

    @rule(reservation=consumes(reservations), commit=st.booleans())
    def settle(self, reservation: Reservation | None, commit: bool) -> None:
        if reservation is None:
            return
        budget = self.model[reservation.study]
        (self.ledger.commit if commit else self.ledger.release)(reservation)
        amounts = budget.pending.pop(reservation.charge_id)
        if commit:
            budget.spent.append(amounts)
        try:
            self.ledger.commit(reservation)
        except ReservationNotPending:
            pass
        else:
            raise AssertionError("a settled reservation was settled again")

    @invariant()
    def figures_match_the_model_and_never_overspend(self) -> None:
        if not hasattr(self, "ledger"):
            return
        for status in self.ledger.budgets():
            budget = self.model[status.study]
            assert status.epsilon_remaining >= 0 and status.delta_remaining >= 0
            assert status.epsilon_total == budget.epsilon_total / 1000
            assert status.epsilon_spent == sum(e for e, _ in budget.spent) / 1000
            assert status.epsilon_reserved == sum(e for e, _ in budget.pending.values()) / 1000
            assert status.delta_spent == sum(d for _, d in budget.spent) / 10**7
            assert status.delta_remaining == (budget.delta_total - budget.charged()[1]) / 10**7


LedgerMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
test_ledger_invariants = LedgerMachine.TestCase
