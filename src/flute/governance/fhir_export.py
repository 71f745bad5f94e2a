"""Access grants and the hub's FHIR interface as FHIR R4 resources (F-STD-5/6, F-STD-8).

F-STD-5/6 asks for access permissions as FHIR; the R5 Permission resource does not exist in R4,
the version of the FLUTE IG, so a grant is exported as an R4 `Consent` (fhir-data-model.md):
scope research, one `permit` provision whose actor is the researcher (information recipient),
whose purpose is health research, whose period starts at the decision and whose `code`s are the
granted study variables (F-SRS-7). The study and its privacy budget, which R4 has no element for,
travel in two extensions. A revoked grant is exported `inactive`.

Resources are built as plain dicts (the hub has no need of the FHIR model classes at run time);
the tests validate them with fhir.resources' R4B models.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from flute.governance.access import Grant

STUDY_VARIABLE_SYSTEM: Final = "urn:flute:study-variable"
STUDY_EXTENSION: Final = "urn:flute:fhir:extension:study"
BUDGET_EXTENSION: Final = "urn:flute:fhir:extension:privacy-budget"
REQUEST_SYSTEM: Final = "urn:flute:access-request"
FHIR_VERSION: Final = "4.0.1"


def consent_id(grant: Grant) -> str:
    """A FHIR id (letters, digits, '-', '.', at most 64) for the grant's Consent."""
    return f"grant-{grant.request_id}"[:64]


def consent_resource(grant: Grant, conditions_of_use_url: str) -> dict[str, Any]:
    """The grant as an R4 Consent; `conditions_of_use_url` is where the dataset's conditions of
    use (the policy the permission is given under, NF-PIL-8) can be read."""
    provision: dict[str, Any] = {
        "type": "permit",
        "period": {"start": _instant(grant.decided_at), **({"end": _instant(grant.revoked_at)} if grant.revoked_at else {})},
        "actor": [
            {
                "role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
                "reference": {
                    "identifier": {"system": f"urn:flute:organisation:{grant.researcher_org}:user", "value": grant.researcher},
                    "display": f"{grant.researcher} ({grant.researcher_org})",
                },
            }
        ],
        "action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "use"}]}],
        "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HRESCH", "display": "healthcare research"}],
        "code": [{"coding": [{"system": STUDY_VARIABLE_SYSTEM, "code": name}]} for name in grant.fields],
    }
    return {
        "resourceType": "Consent",
        "id": consent_id(grant),
        "extension": [
            {"url": STUDY_EXTENSION, "valueIdentifier": {"system": "urn:flute:study", "value": grant.study}},
            {
                "url": BUDGET_EXTENSION,
                "extension": [
                    {"url": "epsilon", "valueDecimal": grant.epsilon},
                    {"url": "delta", "valueDecimal": grant.delta},
                ],
            },
        ],
        "identifier": [{"system": REQUEST_SYSTEM, "value": grant.request_id}],
        "status": "active" if grant.active else "inactive",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "research"}]},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentcategorycodes", "code": "research"}]}],
        "dateTime": _instant(grant.decided_at),
        "performer": [{"display": grant.decided_by}],
        "organization": [{"identifier": {"system": "urn:flute:hub", "value": grant.hub}, "display": grant.hub}],
        "policy": [{"uri": conditions_of_use_url}],
        "provision": provision,
    }


def searchset_bundle(resources: Sequence[dict[str, Any]], base_url: str) -> dict[str, Any]:
    """A search result Bundle of the given resources."""
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [
            {"fullUrl": f"{base_url.rstrip('/')}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
            for r in resources
        ],
    }


def capability_statement(base_url: str, software_version: str, published: datetime) -> dict[str, Any]:
    """What the hub's FHIR endpoints offer (F-STD-8): read and search of the Consents that record
    its access grants, JSON only, bearer-token security."""
    return {
        "resourceType": "CapabilityStatement",
        "id": "flute-hub",
        "url": f"{base_url.rstrip('/')}/metadata",
        "name": "FluteHubCapabilities",
        "title": "FLUTE data hub FHIR interface",
        "status": "active",
        "experimental": False,
        "date": _instant(published),
        "publisher": "FLUTE",
        "description": "Access grants of this data hub as FHIR R4 Consent resources (read and search).",
        "kind": "instance",
        "software": {"name": "FLUTE hub", "version": software_version},
        "implementation": {"description": "FLUTE data hub", "url": base_url.rstrip("/")},
        "fhirVersion": FHIR_VERSION,
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "documentation": "Every request except GET /metadata needs 'Authorization: Bearer TOKEN'.",
                "security": {
                    "cors": False,
                    "description": "Bearer access or API tokens issued by the hub (password + TOTP login); role-based access.",
                },
                "resource": [
                    {
                        "type": "Consent",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [
                            {"name": "status", "type": "token", "documentation": "active or inactive (revoked)"},
                        ],
                    }
                ],
            }
        ],
    }


def _instant(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError(f"FHIR instants need a time zone; got the naive time {moment.isoformat()}")
    return moment.isoformat(timespec="seconds")
