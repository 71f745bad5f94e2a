"""The hub's consent register: the data owner's dataset declarations, decisions on access
requests, and the guard every use of the hub's rows passes (NF-PIL-9, F-SRS-7/9, NF-PIL-10).

`guard(study, dataset, fields, operation)` is the one check the hub's handlers call before
computing anything on its rows: without an active grant for the study on the dataset, or with a
field the grant does not include, it raises `ConsentRefused` and nothing is computed (F-SRS-9).
Every call, allowed or refused, is logged as a data use and audited (F-SRS-8); the misuse rules
(`flute.governance.misuse`) run over that log and the ledger, and their findings become alerts
for the data owner.

Approving a request sets the study's budget in the hub's `PrivacyLedger` (the decision and the
budget are the owner's one act), audited in the same transaction as the decision. The ledger's
dataset is the hub's name, as for every release on this hub (`flute.engine.stats_steps`): all
datasets a hub declares are views of the same patients' rows, so a study's budget must cover the
rows, however many catalogue entries it was granted - per-entry budgets would add up.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Connection, Engine, insert, select, update

from flute.cohort.variables import VARIABLE_NAMES
from flute.governance import misuse
from flute.governance.access import AccessDecision, AccessRequest, Grant, check_decision
from flute.governance.audit import AuditTrail
from flute.governance.catalogue import DatasetDeclaration, DatasetMetadata, compute_metadata
from flute.hub.consent_models import AccessDecisionRecord, DataUseRecord, DatasetDeclarationRecord, MisuseAlertRecord
from flute.hub.ledger import BudgetNotSet, PrivacyLedger
from flute.hub.ledger_models import ChargeStatus
from flute.hub.models import BatchStatus, ImportBatch
from flute.hub.store import HubStore

RECENT_USES: Final[int] = 500


class ConsentRefused(PermissionError):
    """The data owner has not consented to this use; nothing may be computed."""


class ConsentError(ValueError):
    """A declaration or decision the register cannot accept; the message says why."""


@dataclass(frozen=True)
class Alert:
    id: int
    rule: str
    study: str
    dataset: str
    message: str
    raised_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None


@dataclass(frozen=True)
class Decision:
    """A stored decision (approved or rejected), as the owner's pages list them."""

    request_id: str
    study: str
    dataset: str
    researcher: str
    researcher_org: str
    decision: AccessDecision
    revoked_at: datetime | None


class ConsentRegister:
    """The register of one hub (`hub` is its name), on its store; `audit` records every decision
    and data use in the same transaction (None only where the hub has no audit key yet)."""

    def __init__(self, store: HubStore, hub: str, audit: AuditTrail | None) -> None:
        self._engine: Engine = store.engine
        self._store = store
        self.hub = hub
        self._audit = audit
        self.ledger = PrivacyLedger(store.engine)

    # -- datasets ------------------------------------------------------------------------------

    def declare(self, declaration: DatasetDeclaration, by: str) -> None:
        """Create or replace a dataset's declaration (what the owner states in the catalogue)."""
        now = datetime.now(UTC)
        body = json.dumps(declaration.to_json(), sort_keys=True)
        table = DatasetDeclarationRecord.__table__
        with self._engine.begin() as connection:
            exists = connection.execute(select(table.c.dataset).where(table.c.dataset == declaration.dataset)).first()
            if exists:
                connection.execute(update(table).where(table.c.dataset == declaration.dataset).values(declaration=body, updated_at=now, updated_by=by))
            else:
                connection.execute(insert(table).values(dataset=declaration.dataset, declaration=body, updated_at=now, updated_by=by))
            self._record(connection, by, "catalogue.declare", declaration.dataset, {"title": declaration.title, "open_access": declaration.open_access})

    def declarations(self) -> list[DatasetDeclaration]:
        table = DatasetDeclarationRecord.__table__
        with self._engine.connect() as connection:
            rows = connection.execute(select(table.c.dataset, table.c.declaration).order_by(table.c.dataset)).all()
        return [DatasetDeclaration.from_json(json.loads(row.declaration), source=f"declaration of dataset {row.dataset}") for row in rows]

    def declaration(self, dataset: str) -> DatasetDeclaration:
        for declaration in self.declarations():
            if declaration.dataset == dataset:
                return declaration
        raise ConsentError(f"hub {self.hub!r} has no dataset {dataset!r}; declared: {[d.dataset for d in self.declarations()]}")

    def governed(self) -> bool:
        """Whether this hub takes part in the catalogue: once it has declared a dataset, every
        use of its rows needs a grant."""
        with self._engine.connect() as connection:
            return connection.execute(select(DatasetDeclarationRecord.dataset).limit(1)).first() is not None

    def catalogue_entries(self, now: datetime | None = None) -> list[DatasetMetadata]:
        """The catalogue entries of every declared dataset, computed from the store now (sizes
        bucketed unless the owner allowed exact counts, NF-PIL-6)."""
        table = self._store.study_table(VARIABLE_NAMES, included_only=True)
        batch = ImportBatch.__table__.c
        with self._engine.connect() as connection:
            as_of = connection.execute(
                select(batch.finished_at).where(batch.status == BatchStatus.COMPLETED.value).order_by(batch.finished_at.desc()).limit(1)
            ).scalar_one_or_none()
        published = now or datetime.now(UTC)
        return [
            compute_metadata(self.hub, declaration, table, data_as_of=_utc(as_of) if as_of else None, published_at=published)
            for declaration in self.declarations()
        ]

    # -- decisions -----------------------------------------------------------------------------

    def decide(self, request: AccessRequest, decision: AccessDecision) -> Grant | None:
        """Store the owner's decision; an approval also sets the study's budget on this hub's
        rows (ledger dataset = hub name). Returns the grant of an approval."""
        check_decision(request, decision)
        if request.hub != self.hub:
            raise ConsentError(f"request {request.request_id} is for hub {request.hub!r}, not this hub {self.hub!r}")
        self.declaration(request.dataset)
        if request.request_id in self.decided_requests():
            raise ConsentError(f"request {request.request_id} was already decided on this hub")
        if decision.approved:
            assert decision.epsilon is not None and decision.delta is not None  # check_decision
            self.ledger.set_budget(request.study, self.hub, decision.epsilon, decision.delta)
        with self._engine.begin() as connection:
            connection.execute(
                insert(AccessDecisionRecord).values(
                    request_id=request.request_id, study=request.study, dataset=request.dataset, researcher=request.researcher,
                    researcher_org=request.researcher_org, approved=decision.approved, fields=json.dumps(list(decision.fields)),
                    epsilon=decision.epsilon, delta=decision.delta, reason=decision.reason, decided_by=decision.decided_by,
                    decided_at=decision.decided_at,
                )
            )
            self._record(
                connection, decision.decided_by, "access.decide", f"{request.study}/{request.dataset}",
                {"request": request.request_id, "approved": decision.approved, "fields": list(decision.fields),
                 "epsilon": decision.epsilon, "delta": decision.delta, "reason": decision.reason},
            )
        return self._grant(request.request_id) if decision.approved else None

    def revoke(self, request_id: str, by: str) -> None:
        """Withdraw consent: later uses under this grant are refused (results already released
        stay released)."""
        table = AccessDecisionRecord.__table__.c
        with self._engine.begin() as connection:
            changed = connection.execute(
                update(AccessDecisionRecord)
                .where(table.request_id == request_id, table.approved.is_(True), table.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            ).rowcount
            if not changed:
                raise ConsentError(f"request {request_id} has no active grant on this hub to revoke")
            self._record(connection, by, "consent.revoke", request_id, {})

    def decisions(self) -> list[Decision]:
        with self._engine.connect() as connection:
            rows = connection.execute(select(AccessDecisionRecord.__table__).order_by(AccessDecisionRecord.decided_at.desc())).all()
        return [
            Decision(
                row.request_id, row.study, row.dataset, row.researcher, row.researcher_org,
                AccessDecision(row.request_id, row.approved, tuple(json.loads(row.fields)), row.epsilon, row.delta, row.reason,
                               row.decided_by, _utc(row.decided_at)),
                _utc(row.revoked_at) if row.revoked_at else None,
            )
            for row in rows
        ]

    def decided_requests(self) -> set[str]:
        return {decision.request_id for decision in self.decisions()}

    def grants(self, *, active_only: bool = False) -> list[Grant]:
        grants = [
            Grant(
                d.request_id, self.hub, d.study, d.dataset, d.researcher, d.researcher_org, d.decision.fields,
                float(d.decision.epsilon or 0.0), float(d.decision.delta or 0.0), d.decision.decided_by, d.decision.decided_at, d.revoked_at,
            )
            for d in self.decisions()
            if d.decision.approved
        ]
        return [g for g in grants if g.active] if active_only else grants

    def _grant(self, request_id: str) -> Grant:
        return next(g for g in self.grants() if g.request_id == request_id)

    def active_grant(self, study: str, dataset: str) -> Grant | None:
        return next((g for g in self.grants(active_only=True) if g.study == study and g.dataset == dataset), None)

    # -- the guard -----------------------------------------------------------------------------

    def guard(self, study: str, dataset: str, fields: Sequence[str], operation: str, *, cohort_size: int | None = None) -> Grant:
        """Allow a use of `fields` of `dataset` by `study`, or raise ConsentRefused. Logged,
        audited and checked by the misuse rules either way."""
        grant = self.active_grant(study, dataset)
        reason = None
        if grant is None:
            reason = f"the data owner of hub {self.hub!r} has not approved study {study!r} on dataset {dataset!r} (request access first)"
        else:
            outside = sorted(set(fields) - set(grant.fields))
            if outside:
                reason = f"field(s) {outside} are not granted to study {study!r} on {self.hub}/{dataset}; granted: {list(grant.fields)}"
        use = misuse.DataUse(study, dataset, operation, tuple(fields), cohort_size, reason is None, datetime.now(UTC))
        findings = [misuse.outside_grant(use, reason)] if reason else self._usage_findings(use)
        with self._engine.begin() as connection:
            connection.execute(
                insert(DataUseRecord).values(
                    study=study, dataset=dataset, operation=operation, fields=json.dumps(list(fields)),
                    cohort_size=cohort_size, allowed=reason is None, used_at=use.used_at,
                )
            )
            for finding in findings:
                connection.execute(
                    insert(MisuseAlertRecord).values(
                        rule=finding.rule.value, study=finding.study, dataset=finding.dataset, message=finding.message, raised_at=use.used_at
                    )
                )
            self._record(
                connection, f"study:{study}", "data.use" if reason is None else "data.use.refused", f"{study}/{dataset}",
                {"operation": operation, "fields": list(fields), "cohort_size": cohort_size, **({"reason": reason} if reason else {})},
            )
        if reason is not None:
            raise ConsentRefused(reason)
        assert grant is not None
        return grant

    def guard_study(self, study: str, fields: Sequence[str], operation: str, *, cohort_size: int | None = None) -> Grant:
        """The guard for a federated study step, which names no dataset: the study must hold an
        active grant on one of this hub's datasets covering `fields` (every dataset of a hub is a
        view of the same study rows). Refusals are logged against the study's granted dataset,
        or the hub's first declared dataset when the study holds no grant here."""
        grants = self.grants(active_only=True)
        covering = next((g for g in grants if g.study == study and set(fields) <= set(g.fields)), None)
        if covering is not None:
            return self.guard(study, covering.dataset, fields, operation, cohort_size=cohort_size)
        own = next((g for g in grants if g.study == study), None)
        dataset = own.dataset if own else self.declarations()[0].dataset
        return self.guard(study, dataset, fields, operation, cohort_size=cohort_size)

    def _usage_findings(self, use: misuse.DataUse) -> list[misuse.Finding]:
        findings = []
        differencing = misuse.differencing(self.recent_uses(use.dataset), use)
        if differencing:
            findings.append(differencing)
        burn = self.budget_burn(use.study, use.used_at)
        if burn:
            findings.append(burn)
        return findings

    def budget_burn(self, study: str, now: datetime) -> misuse.Finding | None:
        """The budget-burn rule over the ledger's recent charges of the study on this hub."""
        try:
            budget = self.ledger.budget(study, self.hub)
        except BudgetNotSet:
            return None
        spends = [
            misuse.Spend(_utc(charge.reserved_at), charge.epsilon)
            for charge in self.ledger.recent_charges(limit=RECENT_USES)
            if charge.study == study and charge.dataset == self.hub and charge.status is not ChargeStatus.RELEASED
        ]
        return misuse.budget_burn(spends, budget.epsilon_total, now, study=study, dataset=self.hub)

    def recent_uses(self, dataset: str, limit: int = RECENT_USES) -> list[misuse.DataUse]:
        table = DataUseRecord.__table__.c
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(DataUseRecord.__table__).where(table.dataset == dataset).order_by(table.id.desc()).limit(limit)
            ).all()
        return [
            misuse.DataUse(row.study, row.dataset, row.operation, tuple(json.loads(row.fields)), row.cohort_size, row.allowed, _utc(row.used_at))
            for row in rows
        ]

    # -- alerts --------------------------------------------------------------------------------

    def alerts(self, *, open_only: bool = False) -> list[Alert]:
        table = MisuseAlertRecord.__table__.c
        query = select(MisuseAlertRecord.__table__).order_by(table.id.desc())
        if open_only:
            query = query.where(table.acknowledged_at.is_(None))
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        return [
            Alert(row.id, row.rule, row.study, row.dataset, row.message, _utc(row.raised_at),
                  _utc(row.acknowledged_at) if row.acknowledged_at else None, row.acknowledged_by)
            for row in rows
        ]

    def acknowledge(self, alert_id: int, by: str) -> None:
        table = MisuseAlertRecord.__table__.c
        with self._engine.begin() as connection:
            changed = connection.execute(
                update(MisuseAlertRecord).where(table.id == alert_id, table.acknowledged_at.is_(None)).values(acknowledged_at=datetime.now(UTC), acknowledged_by=by)
            ).rowcount
            if not changed:
                raise ConsentError(f"alert {alert_id} does not exist or was already acknowledged")
            self._record(connection, by, "alerts.acknowledge", str(alert_id), {})

    def _record(self, connection: Connection, actor: str, action: str, target: str, details: dict[str, Any]) -> None:
        if self._audit is not None:
            self._audit.append(connection, action, target, details, actor=actor)


def _utc(moment: datetime) -> datetime:
    """SQLite returns naive datetimes for timezone-aware columns; everything here is stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def consent_guard(home: Path, study: str, fields: Sequence[str], operation: str, *, cohort_size: int | None = None) -> Grant | None:
    """F-SRS-9 for the engine's hub handlers: before a study step computes on the rows of the
    hub at `home`, require the owner's grant for `study` covering `fields`; raises ConsentRefused.
    A hub that has declared no dataset (not in the catalogue, so no owner governs it through
    FLUTE) is not checked and None is returned."""
    from flute.governance.keys import load_node_keys
    from flute.hub.node import open_hub

    with open_hub(home) as hub:
        if not ConsentRegister(hub.store, hub.config.name, None).governed():
            return None
        register = ConsentRegister(hub.store, hub.config.name, AuditTrail(load_node_keys(home).audit_key, actor="hub"))
        return register.guard_study(study, fields, operation, cohort_size=cohort_size)
