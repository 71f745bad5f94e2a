"""The coordinator's catalogue and access-request registry (NF-PIL-6/7/8/9, F-PIL-16/18).

Hubs publish their datasets' metadata here; researchers search it, accept the platform's terms
and privacy policy (current versions, NF-PIL-7) and ask for access; each hub fetches the requests
for its datasets and returns its owner's decisions. The coordinator only relays decisions: the
hubs keep and enforce them (`flute.hub.consent`). Every change is audited in its transaction.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, delete, insert, select, update

from flute.governance.access import AccessDecision, AccessError, AccessRequest, RequestStatus
from flute.governance.audit import AuditTrail
from flute.governance.catalogue import CatalogueError, CatalogueQuery, DatasetMetadata, search
from flute.governance.documents import PolicyKind, current_policy, policy_version
from flute.coordinator.registry_models import AccessRequestRecord, CatalogueEntryRecord, PolicyAcceptanceRecord


class PoliciesNotAccepted(PermissionError):
    """The user must accept the current terms and privacy policy first (NF-PIL-7)."""


class Registry:
    def __init__(self, engine: Engine, audit: AuditTrail | None) -> None:
        self._engine = engine
        self._audit = audit

    # -- catalogue -------------------------------------------------------------------------------

    def publish(self, hub: str, entries: Sequence[DatasetMetadata], by: str) -> None:
        """Replace everything `hub` publishes with `entries` (a dataset it no longer lists is
        withdrawn from the catalogue)."""
        strays = [entry.key for entry in entries if entry.hub != hub]
        if strays:
            raise CatalogueError(f"hub {hub!r} cannot publish entries of other hubs: {strays}")
        table = CatalogueEntryRecord.__table__
        with self._engine.begin() as connection:
            connection.execute(delete(table).where(table.c.hub == hub))
            for entry in entries:
                connection.execute(
                    insert(table).values(
                        hub=hub, dataset=entry.declaration.dataset, metadata_json=json.dumps(entry.to_json()), published_at=entry.published_at
                    )
                )
            self._record(connection, by, "catalogue.publish", hub, {"datasets": [entry.declaration.dataset for entry in entries]})

    def entries(self) -> list[DatasetMetadata]:
        table = CatalogueEntryRecord.__table__.c
        with self._engine.connect() as connection:
            rows = connection.execute(select(table.hub, table.dataset, table.metadata_json).order_by(table.hub, table.dataset)).all()
        return [DatasetMetadata.from_json(json.loads(row.metadata_json), source=f"catalogue entry {row.hub}/{row.dataset}") for row in rows]

    def entry(self, hub: str, dataset: str) -> DatasetMetadata:
        for entry in self.entries():
            if entry.key == (hub, dataset):
                return entry
        raise CatalogueError(f"the catalogue has no dataset {dataset!r} of hub {hub!r}; search with GET /catalogue")

    def search(self, query: CatalogueQuery) -> list[DatasetMetadata]:
        return search(self.entries(), query)

    # -- policies (NF-PIL-7) -----------------------------------------------------------------------

    def accept_policy(self, user: str, kind: PolicyKind, version: int) -> None:
        policy_version(kind, version)
        table = PolicyAcceptanceRecord.__table__
        with self._engine.begin() as connection:
            exists = connection.execute(
                select(table.c.user_id).where(table.c.user_id == user, table.c.kind == kind.value, table.c.version == version)
            ).first()
            if not exists:
                connection.execute(insert(table).values(user_id=user, kind=kind.value, version=version, accepted_at=datetime.now(UTC)))
                self._record(connection, user, "policy.accept", f"{kind.value}-{version}", {})

    def accepted_versions(self, user: str) -> dict[PolicyKind, int]:
        table = PolicyAcceptanceRecord.__table__.c
        with self._engine.connect() as connection:
            rows = connection.execute(select(table.kind, table.version).where(table.user_id == user)).all()
        accepted: dict[PolicyKind, int] = {}
        for row in rows:
            kind = PolicyKind(row.kind)
            accepted[kind] = max(accepted.get(kind, 0), row.version)
        return accepted

    def policies_to_accept(self, user: str) -> list[PolicyKind]:
        accepted = self.accepted_versions(user)
        return [kind for kind in PolicyKind if accepted.get(kind, 0) < current_policy(kind).version]

    # -- access requests (NF-PIL-9) ------------------------------------------------------------------

    def request_access(
        self, *, study: str, researcher: str, researcher_org: str, hub: str, dataset: str,
        fields: Sequence[str], purpose: str, epsilon: float, delta: float,
    ) -> AccessRequest:
        """File a request; refused before the current policies are accepted or for a dataset
        that is not in the catalogue."""
        missing = self.policies_to_accept(researcher)
        if missing:
            raise PoliciesNotAccepted(
                f"accept the current {' and '.join(kind.value for kind in missing)} first "
                f"(GET /policies/{missing[0].value}, then POST /policies/{missing[0].value}/{current_policy(missing[0]).version}/accept)"
            )
        self.entry(hub, dataset)
        request = AccessRequest(
            request_id=secrets.token_hex(16), study=study, researcher=researcher, researcher_org=researcher_org, hub=hub,
            dataset=dataset, fields=tuple(fields), purpose=purpose, epsilon=epsilon, delta=delta,
            status=RequestStatus.PENDING, created_at=datetime.now(UTC),
        )
        with self._engine.begin() as connection:
            connection.execute(
                insert(AccessRequestRecord).values(
                    id=request.request_id, study=study, researcher=researcher, researcher_org=researcher_org, hub=hub, dataset=dataset,
                    fields=json.dumps(list(request.fields)), purpose=purpose, epsilon=epsilon, delta=delta,
                    status=request.status.value, created_at=request.created_at,
                )
            )
            self._record(connection, researcher, "access.request", f"{hub}/{dataset}", {"request": request.request_id, "study": study, "fields": list(fields)})
        return request

    def requests(self, *, hub: str | None = None, researcher: str | None = None, status: RequestStatus | None = None) -> list[AccessRequest]:
        table = AccessRequestRecord.__table__.c
        query = select(AccessRequestRecord.__table__).order_by(table.created_at)
        if hub is not None:
            query = query.where(table.hub == hub)
        if researcher is not None:
            query = query.where(table.researcher == researcher)
        if status is not None:
            query = query.where(table.status == status.value)
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        return [_request(row) for row in rows]

    def pending_requests(self, hub: str) -> list[AccessRequest]:
        """What a hub's owner has still to decide (`CoordinatorLink`)."""
        return self.requests(hub=hub, status=RequestStatus.PENDING)

    def request(self, request_id: str) -> AccessRequest:
        table = AccessRequestRecord.__table__.c
        with self._engine.connect() as connection:
            row = connection.execute(select(AccessRequestRecord.__table__).where(table.id == request_id)).first()
        if row is None:
            raise AccessError(f"no access request {request_id!r}")
        return _request(row)

    def decision(self, request_id: str) -> AccessDecision | None:
        table = AccessRequestRecord.__table__.c
        with self._engine.connect() as connection:
            text = connection.execute(select(table.decision_json).where(table.id == request_id)).scalar_one_or_none()
        return AccessDecision.from_json(json.loads(text)) if text else None

    def record_decision(self, hub: str, decision: AccessDecision) -> AccessRequest:
        """The hub's answer; only the hub the request was made to may give it, once."""
        request = self.request(decision.request_id)
        if request.hub != hub:
            raise AccessError(f"request {request.request_id} was made to hub {request.hub!r}; {hub!r} cannot decide it")
        status = RequestStatus.APPROVED if decision.approved else RequestStatus.REJECTED
        table = AccessRequestRecord.__table__.c
        with self._engine.begin() as connection:
            changed = connection.execute(
                update(AccessRequestRecord)
                .where(table.id == request.request_id, table.status == RequestStatus.PENDING.value)
                .values(status=status.value, decision_json=json.dumps(decision.to_json()))
            ).rowcount
            if not changed:
                raise AccessError(f"request {request.request_id} was already decided")
            self._record(connection, decision.decided_by, "access.decide", request.request_id, {"hub": hub, "approved": decision.approved})
        return self.request(request.request_id)

    def _record(self, connection: Connection, actor: str, action: str, target: str, details: dict[str, object]) -> None:
        if self._audit is not None:
            self._audit.append(connection, action, target, details, actor=actor)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _request(row: Row[Any]) -> AccessRequest:
    return AccessRequest(
        request_id=row.id, study=row.study, researcher=row.researcher, researcher_org=row.researcher_org,
        hub=row.hub, dataset=row.dataset, fields=tuple(json.loads(row.fields)), purpose=row.purpose,
        epsilon=row.epsilon, delta=row.delta, status=RequestStatus(row.status), created_at=_utc(row.created_at),
    )
