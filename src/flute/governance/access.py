"""Access requests and the data owner's decisions on them (NF-PIL-9, F-SRS-7/9).

A researcher asks for one dataset of one hub for one study: the fields (study variables) the
study needs, its purpose and the privacy budget it asks for. The hub's data owner approves -
possibly fewer fields and a smaller budget than asked - or rejects. An approved decision is a
`Grant`; the hub enforces it (`flute.hub.consent.ConsentRegister.guard`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Final

from flute.cohort.variables import VARIABLE_NAMES

STUDY_ID_PATTERN: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class AccessError(ValueError):
    """A request or decision that cannot be accepted; the message says what and how to fix it."""


class RequestStatus(str, Enum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


def check_fields(fields: tuple[str, ...], where: str) -> tuple[str, ...]:
    """Fields must be known study variables, named once each, at least one."""
    if not fields:
        raise AccessError(f"{where}: name at least one field (study variable) of {list(VARIABLE_NAMES)}")
    unknown = [name for name in fields if name not in VARIABLE_NAMES]
    if unknown:
        raise AccessError(f"{where}: unknown field(s) {unknown}; the study variables are {list(VARIABLE_NAMES)}")
    if len(set(fields)) != len(fields):
        raise AccessError(f"{where}: fields listed more than once: {list(fields)}")
    return fields


def check_budget(epsilon: float, delta: float, where: str) -> None:
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise AccessError(f"{where}: epsilon must be a positive number, got {epsilon!r}")
    if not (math.isfinite(delta) and 0 <= delta < 1):
        raise AccessError(f"{where}: delta must lie in [0, 1), got {delta!r}")


@dataclass(frozen=True)
class AccessRequest:
    """What a researcher asks of one hub's dataset for one study."""

    request_id: str
    study: str
    researcher: str
    researcher_org: str
    hub: str
    dataset: str
    fields: tuple[str, ...]
    purpose: str
    epsilon: float
    delta: float
    status: RequestStatus
    created_at: datetime

    def __post_init__(self) -> None:
        where = f"access request for study {self.study!r} on {self.hub}/{self.dataset}"
        if not STUDY_ID_PATTERN.match(self.study):
            raise AccessError(f"{where}: the study id must be 1-64 lower-case letters, digits, '.', '_' or '-' (as in the study spec)")
        if not self.purpose.strip():
            raise AccessError(f"{where}: state the purpose of the study (the data owner decides on it)")
        check_fields(self.fields, where)
        check_budget(self.epsilon, self.delta, where)

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "fields": list(self.fields), "status": self.status.value, "created_at": self.created_at.isoformat()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AccessRequest:
        try:
            return cls(
                request_id=str(data["request_id"]), study=str(data["study"]), researcher=str(data["researcher"]),
                researcher_org=str(data["researcher_org"]), hub=str(data["hub"]), dataset=str(data["dataset"]),
                fields=tuple(data["fields"]), purpose=str(data["purpose"]), epsilon=float(data["epsilon"]),
                delta=float(data["delta"]), status=RequestStatus(data["status"]),
                created_at=datetime.fromisoformat(data["created_at"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AccessError(f"malformed access request {data.get('request_id', '?')!r}: {exc}") from None


@dataclass(frozen=True)
class AccessDecision:
    """The data owner's answer to one request. An approval names the granted fields (a subset of
    those requested, F-SRS-7) and the study's budget on the dataset (the hub's ledger total)."""

    request_id: str
    approved: bool
    fields: tuple[str, ...]
    epsilon: float | None
    delta: float | None
    reason: str
    decided_by: str
    decided_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "fields": list(self.fields), "decided_at": self.decided_at.isoformat()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AccessDecision:
        try:
            return cls(
                request_id=str(data["request_id"]), approved=bool(data["approved"]), fields=tuple(data["fields"]),
                epsilon=None if data.get("epsilon") is None else float(data["epsilon"]),
                delta=None if data.get("delta") is None else float(data["delta"]),
                reason=str(data.get("reason", "")), decided_by=str(data["decided_by"]),
                decided_at=datetime.fromisoformat(data["decided_at"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AccessError(f"malformed access decision {data.get('request_id', '?')!r}: {exc}") from None


def check_decision(request: AccessRequest, decision: AccessDecision) -> None:
    """A decision must answer a pending request; an approval grants at least one of the requested
    fields and no other, with a valid budget; a rejection says why."""
    where = f"decision on request {request.request_id} ({request.study} on {request.hub}/{request.dataset})"
    if decision.request_id != request.request_id:
        raise AccessError(f"{where}: answers request {decision.request_id}")
    if request.status is not RequestStatus.PENDING:
        raise AccessError(f"{where}: the request is already {request.status.value}")
    if not decision.approved:
        if not decision.reason.strip():
            raise AccessError(f"{where}: a rejection must give the researcher a reason")
        return
    check_fields(decision.fields, where)
    extra = [name for name in decision.fields if name not in request.fields]
    if extra:
        raise AccessError(f"{where}: field(s) {extra} were not requested; grant a subset of {list(request.fields)}")
    if decision.epsilon is None or decision.delta is None:
        raise AccessError(f"{where}: an approval sets the study's privacy budget (epsilon and delta)")
    check_budget(decision.epsilon, decision.delta, where)


@dataclass(frozen=True)
class Grant:
    """An approved, unrevoked decision as the hub holds it."""

    request_id: str
    hub: str
    study: str
    dataset: str
    researcher: str
    researcher_org: str
    fields: tuple[str, ...]
    epsilon: float
    delta: float
    decided_by: str
    decided_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None
