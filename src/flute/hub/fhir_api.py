"""The hub's FHIR-facing endpoints (F-STD-5/6/8): its CapabilityStatement and its access grants
as R4 Consent resources, as a `RouterFactory` of the hub service.

  GET /fhir/metadata             the CapabilityStatement (public, as FHIR servers publish it)
  GET /fhir/Consent[?status=]    searchset Bundle of the grants (consent.read)
  GET /fhir/Consent/{id}         one grant
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Final

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse

from flute.governance.access import Grant
from flute.governance.fhir_export import capability_statement, consent_id, consent_resource, searchset_bundle
from flute.governance.rbac import Action, Principal, require
from flute.governance.service import ServiceContext
from flute.hub.consent import ConsentRegister
from flute.hub.store import HubStore

FHIR_JSON: Final[str] = "application/fhir+json"
STARTED: Final[datetime] = datetime.now(UTC)


def _software_version() -> str:
    try:
        return version("flute")
    except PackageNotFoundError:
        return "unknown"


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/fhir"


def fhir_router(context: ServiceContext) -> APIRouter:
    if context.organisation is None:
        raise ValueError("the FHIR grant endpoints belong to a hub service (a service with one organisation)")
    register = ConsentRegister(HubStore(context.engine), context.organisation, context.audit)
    router = APIRouter(prefix="/fhir", tags=["FHIR"])

    def conditions_url(request: Request, grant: Grant) -> str:
        return f"{str(request.base_url).rstrip('/')}/ui/#dataset-{grant.dataset}"

    @router.get("/metadata")
    def metadata(request: Request) -> JSONResponse:
        return JSONResponse(capability_statement(_base(request), _software_version(), STARTED), media_type=FHIR_JSON)

    @router.get("/Consent")
    def search_consents(
        request: Request, _: Annotated[Principal, Depends(require(Action.CONSENT_READ))],
        status_filter: Annotated[str | None, Query(alias="status")] = None,
    ) -> JSONResponse:
        resources = [consent_resource(grant, conditions_url(request, grant)) for grant in register.grants()]
        if status_filter is not None:
            resources = [r for r in resources if r["status"] == status_filter]
        return JSONResponse(searchset_bundle(resources, _base(request)), media_type=FHIR_JSON)

    @router.get("/Consent/{resource_id}")
    def read_consent(resource_id: str, request: Request, _: Annotated[Principal, Depends(require(Action.CONSENT_READ))]) -> JSONResponse:
        for grant in register.grants():
            if consent_id(grant) == resource_id:
                return JSONResponse(consent_resource(grant, conditions_url(request, grant)), media_type=FHIR_JSON)
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no Consent/{resource_id} on this hub")

    return router


