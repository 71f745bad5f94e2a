"""The hub's privacy budget ledger: the hub, not the coordinator, enforces that a study's privacy
budget on its data never runs out (study protocol 5.2.6; URS-6/7/8, NF-HUF-1/2).

Protocol for every differentially private release computed on this hub's data:
1. `reserve(study, dataset, cost, operation)` BEFORE computing anything. It either charges the
   cost atomically or raises `BudgetExceeded` and nothing may be computed.
2. compute and send the release;
3. `commit(reservation)` once sent, or `release(reservation)` if nothing left the hub.
A reservation that is neither committed nor released (the process was killed) stays charged:
the result may have left the hub before the crash, so the charge is never lost. Only an explicit
`release` refunds it.

Composition: the ledger enforces BASIC composition - the epsilons and the deltas of all charges
add up, and both sums must stay within the totals. Basic composition is valid for any sequence
of mechanisms, adaptively chosen and mixed, which is why the enforcer uses it; a tighter
accountant (PLD) belongs inside a single operation, whose DpCost then already reflects it.
Units: a hub-level cost implies the same record-level guarantee, so both charge a record-level
budget as stated (see `flute.privacy.dp.cost`).

Atomicity: one row per budget holds `charged` (committed + reserved). A reservation is ONE
conditional UPDATE (`charged + requested <= total`) in the same transaction as the insert of its
charge row. PostgreSQL row-locks the budget and re-checks the condition on the newest row
version (READ COMMITTED), SQLite serialises writers on the database lock: on both, concurrent
reservations can never over-spend. Amounts are fixed-point integers (epsilon in 1e-12, delta in
1e-18 units), requested costs rounded UP and totals rounded DOWN, so rounding never favours a
release.
"""

from __future__ import annotations

import json
import math
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from sqlalchemy import BigInteger, Engine, cast, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from flute.governance.audit import record
from flute.hub.ledger_models import ChargeStatus, PrivacyBudgetRecord, PrivacyChargeRecord
from flute.privacy.dp.cost import DpCost, PrivacyUnit

EPSILON_SCALE = 10**12
DELTA_SCALE = 10**18
#: The largest budget epsilon a data owner may set (keeps every sum far inside 64 bits).
MAX_EPSILON = 1_000_000.0
RECENT_CHARGES = 20


class LedgerError(RuntimeError):
    """The ledger cannot do what was asked; the message says why and what to do."""


class BudgetNotSet(LedgerError):
    """No budget exists for this study on this dataset: nothing may be released."""


class BudgetExceeded(LedgerError):
    """The requested cost does not fit the remaining budget; nothing was charged."""

    def __init__(self, status: BudgetStatus, requested: DpCost, operation: str) -> None:
        self.status, self.requested, self.operation = status, requested, operation
        super().__init__(
            f"privacy budget of study {status.study!r} on dataset {status.dataset!r} would run out: "
            f"{operation!r} requests epsilon={requested.epsilon:.6g}, delta={requested.delta:.3g} ({requested.unit}-level, "
            f"{requested.mechanism}); total epsilon={status.epsilon_total:.6g}, delta={status.delta_total:.3g}; "
            f"spent epsilon={status.epsilon_spent:.6g}, delta={status.delta_spent:.3g}; "
            f"reserved (pending, counted as spent) epsilon={status.epsilon_reserved:.6g}, delta={status.delta_reserved:.3g}; "
            f"remaining epsilon={status.epsilon_remaining:.6g}, delta={status.delta_remaining:.3g}. "
            f"Request less (more noise, fewer steps), or the data owner may raise the budget with "
            f"`flute hub budget set {status.study} --dataset {status.dataset} --epsilon E --delta D`."
        )


class ReservationNotPending(LedgerError):
    """A reservation can be committed or released once only."""


@dataclass(frozen=True)
class BudgetStatus:
    """One study x dataset budget. `reserved` counts pending reservations, including those of
    processes that died before committing: they count against `remaining` exactly as spent."""

    study: str
    dataset: str
    epsilon_total: float
    delta_total: float
    epsilon_spent: float
    delta_spent: float
    epsilon_reserved: float
    delta_reserved: float
    epsilon_remaining: float
    delta_remaining: float

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Reservation:
    """A charge made before computing; hand it back to `commit` or `release`."""

    charge_id: int
    study: str
    dataset: str
    operation: str
    cost: DpCost
    reserved_at: datetime


@dataclass(frozen=True)
class Charge:
    """A row of the ledger's history, as `flute hub budget` shows it."""

    charge_id: int
    study: str
    dataset: str
    operation: str
    epsilon: float
    delta: float
    unit: str
    mechanism: str
    status: ChargeStatus
    holder: str
    reserved_at: datetime
    settled_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "status": self.status.value}


class PrivacyLedger:
    """The budget ledger on the hub store's engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def set_budget(self, study: str, dataset: str, epsilon: float, delta: float) -> BudgetStatus:
        """Create or change the total budget (the data owner's decision). A total below what is
        already charged is refused: charges cannot be undone by lowering the budget."""
        _check_names(study, dataset)
        if not (math.isfinite(epsilon) and 0 < epsilon <= MAX_EPSILON):
            raise LedgerError(f"budget epsilon must be a number in (0, {MAX_EPSILON:g}], got {epsilon!r}")
        if not (math.isfinite(delta) and 0 <= delta < 1):
            raise LedgerError(f"budget delta must lie in [0, 1), got {delta!r}")
        epsilon_total, delta_total = _units(epsilon, EPSILON_SCALE, ROUND_FLOOR), _units(delta, DELTA_SCALE, ROUND_FLOOR)
        now = datetime.now(UTC)
        budget = PrivacyBudgetRecord.__table__.c
        try:
            with self._engine.begin() as connection:
                changed = connection.execute(
                    update(PrivacyBudgetRecord)
                    .where(budget.study == study, budget.dataset == dataset)
                    .where(budget.epsilon_charged <= epsilon_total, budget.delta_charged <= delta_total)
                    .values(epsilon_total=epsilon_total, delta_total=delta_total, updated_at=now)
                ).rowcount
                below_charges = bool(
                    not changed
                    and connection.execute(select(budget.id).where(budget.study == study, budget.dataset == dataset)).first()
                )
                if not changed and not below_charges:
                    connection.execute(
                        insert(PrivacyBudgetRecord).values(
                            study=study, dataset=dataset, epsilon_total=epsilon_total, delta_total=delta_total,
                            epsilon_charged=0, delta_charged=0, created_at=now, updated_at=now,
                        )
                    )
                if not below_charges:
                    record(connection, "budget.set", f"study:{study}", {"dataset": dataset, "epsilon": epsilon, "delta": delta})
        except IntegrityError as exc:
            raise LedgerError(f"the budget of study {study!r} on dataset {dataset!r} was created concurrently; run the command again") from exc
        if below_charges:
            current = self.budget(study, dataset)
            raise LedgerError(
                f"cannot set the budget of study {study!r} on dataset {dataset!r} to epsilon={epsilon:g}, delta={delta:g}: "
                f"already charged epsilon={current.epsilon_spent + current.epsilon_reserved:.6g}, "
                f"delta={current.delta_spent + current.delta_reserved:.3g} (spent + reserved); a total must cover its charges"
            )
        return self.budget(study, dataset)

    def reserve(self, study: str, dataset: str, cost: DpCost, operation: str) -> Reservation:
        """Charge `cost` atomically before computing, or raise BudgetExceeded / BudgetNotSet."""
        _check_names(study, dataset)
        if not operation.strip():
            raise LedgerError("a reservation must name its operation (e.g. 'dp-sgd round 3 of study S')")
        if cost.epsilon > MAX_EPSILON:
            raise BudgetExceeded(self.budget(study, dataset), cost, operation)
        epsilon, delta = _units(cost.epsilon, EPSILON_SCALE, ROUND_CEILING), _units(cost.delta, DELTA_SCALE, ROUND_CEILING)
        now = datetime.now(UTC)
        budget = PrivacyBudgetRecord.__table__.c
        with self._engine.begin() as connection:
            budget_id = connection.execute(
                update(PrivacyBudgetRecord)
                .where(budget.study == study, budget.dataset == dataset)
                .where(budget.epsilon_charged + epsilon <= budget.epsilon_total)
                .where(budget.delta_charged + delta <= budget.delta_total)
                .values(epsilon_charged=budget.epsilon_charged + epsilon, delta_charged=budget.delta_charged + delta, updated_at=now)
                .returning(budget.id)
            ).scalar_one_or_none()
            if budget_id is not None:
                charge_id = connection.execute(
                    insert(PrivacyChargeRecord)
                    .values(
                        budget_id=budget_id, operation=operation, epsilon=epsilon, delta=delta, unit=cost.unit,
                        mechanism=cost.mechanism, details=json.dumps(dict(cost.details), sort_keys=True, default=str),
                        status=ChargeStatus.RESERVED.value, holder=f"{socket.gethostname()}:{os.getpid()}", reserved_at=now,
                    )
                    .returning(PrivacyChargeRecord.id)
                ).scalar_one()
        if budget_id is None:
            raise BudgetExceeded(self.budget(study, dataset), cost, operation)
        return Reservation(charge_id, study, dataset, operation, cost, now)

    def commit(self, reservation: Reservation) -> None:
        """The release was sent: the reservation becomes spent for good."""
        charge = PrivacyChargeRecord.__table__.c
        with self._engine.begin() as connection:
            settled = connection.execute(
                update(PrivacyChargeRecord)
                .where(charge.id == reservation.charge_id, charge.status == ChargeStatus.RESERVED.value)
                .values(status=ChargeStatus.COMMITTED.value, settled_at=datetime.now(UTC))
            ).rowcount
            if settled:
                record(connection, "privacy.charge.commit", f"study:{reservation.study}", {
                    "dataset": reservation.dataset, "operation": reservation.operation, "charge": reservation.charge_id,
                    "epsilon": reservation.cost.epsilon, "delta": reservation.cost.delta, "mechanism": reservation.cost.mechanism,
                })
        if not settled:
            raise self._not_pending(reservation)

    def release(self, reservation: Reservation) -> None:
        """Nothing computed under this reservation left the hub: refund it."""
        charge, budget = PrivacyChargeRecord.__table__.c, PrivacyBudgetRecord.__table__.c
        now = datetime.now(UTC)
        with self._engine.begin() as connection:
            refunded = connection.execute(
                update(PrivacyChargeRecord)
                .where(charge.id == reservation.charge_id, charge.status == ChargeStatus.RESERVED.value)
                .values(status=ChargeStatus.RELEASED.value, settled_at=now)
                .returning(charge.budget_id, charge.epsilon, charge.delta)
            ).first()
            if refunded is not None:
                connection.execute(
                    update(PrivacyBudgetRecord)
                    .where(budget.id == refunded.budget_id)
                    .values(
                        epsilon_charged=budget.epsilon_charged - refunded.epsilon,
                        delta_charged=budget.delta_charged - refunded.delta,
                        updated_at=now,
                    )
                )
        if refunded is None:
            raise self._not_pending(reservation)

    def pending_reservation(self, charge_id: int) -> Reservation:
        """A reservation still pending, looked up by its charge id: how the data owner settles
        one whose process died (after checking that its result never left the hub)."""
        charge, budget = PrivacyChargeRecord.__table__.c, PrivacyBudgetRecord.__table__.c
        with self._engine.connect() as connection:
            row = connection.execute(
                select(charge, budget.study, budget.dataset).join(PrivacyBudgetRecord, budget.id == charge.budget_id).where(charge.id == charge_id)
            ).first()
        if row is None or row.status != ChargeStatus.RESERVED.value:
            state = "does not exist" if row is None else f"is {row.status}"
            raise ReservationNotPending(f"charge {charge_id} {state}, not reserved; see `flute hub budget` for pending charges")
        unit: PrivacyUnit = row.unit
        cost = DpCost(row.epsilon / EPSILON_SCALE, row.delta / DELTA_SCALE, unit, row.mechanism, json.loads(row.details))
        return Reservation(row.id, row.study, row.dataset, row.operation, cost, row.reserved_at)

    def budget(self, study: str, dataset: str) -> BudgetStatus:
        found = self._statuses(study, dataset)
        if not found:
            raise BudgetNotSet(
                f"no privacy budget is set for study {study!r} on dataset {dataset!r}, so nothing may be released; the data "
                f"owner sets one with `flute hub budget set {study} --dataset {dataset} --epsilon E --delta D`"
            )
        return found[0]

    def budgets(self) -> list[BudgetStatus]:
        return self._statuses(None, None)

    def recent_charges(self, limit: int = RECENT_CHARGES) -> list[Charge]:
        """The latest charges, newest first."""
        charge, budget = PrivacyChargeRecord.__table__.c, PrivacyBudgetRecord.__table__.c
        query = (
            select(charge, budget.study, budget.dataset)
            .join(PrivacyBudgetRecord, budget.id == charge.budget_id)
            .order_by(charge.id.desc())
            .limit(limit)
        )
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        return [
            Charge(
                charge_id=row.id, study=row.study, dataset=row.dataset, operation=row.operation,
                epsilon=row.epsilon / EPSILON_SCALE, delta=row.delta / DELTA_SCALE, unit=row.unit, mechanism=row.mechanism,
                status=ChargeStatus(row.status), holder=row.holder, reserved_at=row.reserved_at, settled_at=row.settled_at,
            )
            for row in rows
        ]

    def _statuses(self, study: str | None, dataset: str | None) -> list[BudgetStatus]:
        """All figures of each budget from ONE statement, so they are mutually consistent."""
        budget, charge = PrivacyBudgetRecord.__table__.c, PrivacyChargeRecord.__table__.c

        def charged(column: Any, status: ChargeStatus) -> Any:
            # PostgreSQL sums BIGINT into NUMERIC: cast back so every figure is an exact int.
            return (
                select(cast(func.coalesce(func.sum(column), 0), BigInteger))
                .where(charge.budget_id == budget.id, charge.status == status.value)
                .scalar_subquery()
            )

        query = select(
            budget.study, budget.dataset, budget.epsilon_total, budget.delta_total, budget.epsilon_charged, budget.delta_charged,
            charged(charge.epsilon, ChargeStatus.COMMITTED).label("epsilon_spent"),
            charged(charge.delta, ChargeStatus.COMMITTED).label("delta_spent"),
        ).order_by(budget.study, budget.dataset)
        if study is not None:
            query = query.where(budget.study == study, budget.dataset == dataset)
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        return [
            BudgetStatus(
                study=row.study, dataset=row.dataset,
                epsilon_total=row.epsilon_total / EPSILON_SCALE, delta_total=row.delta_total / DELTA_SCALE,
                epsilon_spent=row.epsilon_spent / EPSILON_SCALE, delta_spent=row.delta_spent / DELTA_SCALE,
                epsilon_reserved=(row.epsilon_charged - row.epsilon_spent) / EPSILON_SCALE,
                delta_reserved=(row.delta_charged - row.delta_spent) / DELTA_SCALE,
                epsilon_remaining=(row.epsilon_total - row.epsilon_charged) / EPSILON_SCALE,
                delta_remaining=(row.delta_total - row.delta_charged) / DELTA_SCALE,
            )
            for row in rows
        ]

    def _not_pending(self, reservation: Reservation) -> ReservationNotPending:
        charge = PrivacyChargeRecord.__table__.c
        with self._engine.connect() as connection:
            status = connection.execute(select(charge.status).where(charge.id == reservation.charge_id)).scalar_one_or_none()
        state = "does not exist in this hub's ledger" if status is None else f"is already {status}"
        return ReservationNotPending(f"charge {reservation.charge_id} ({reservation.operation!r}) {state}; it can be settled only once")


def _units(value: float, scale: int, rounding: str) -> int:
    """Exact fixed-point amount: the float's shortest decimal form (0.1 -> 0.1, not
    0.1000000000000000055...) times `scale`, rounded in the direction that favours privacy."""
    return int((Decimal(repr(float(value))) * scale).to_integral_value(rounding=rounding))


def _check_names(study: str, dataset: str) -> None:
    if not study.strip() or not dataset.strip():
        raise LedgerError(f"study and dataset must be named, got study={study!r}, dataset={dataset!r}")
