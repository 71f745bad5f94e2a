"""The coordinator's catalogue and access-request API (NF-PIL-6/7/8/9, F-PIL-16/18/19), as a
`RouterFactory` of the coordinator service.

Routes:
  GET  /catalogue?q=TEXT&variable=NAME&min_band=BAND   search (catalogue.read)
  GET  /catalogue/{hub}/{dataset}                      one entry, with conditions of use
  PUT  /catalogue/{org_id}                             a hub publishes its entries (catalogue.publish, own hub)
  GET  /terms, /privacy                                the current policies (public HTML)
  GET  /guidance                                       platform guidance (HTML, catalogue.read)
  GET  /policies/pending                               the policies the caller has still to accept
  POST /policies/{kind}/{version}/accept               record acceptance (account.self)
  POST /access-requests                                file a request (access.request)
  GET  /access-requests                                the caller's own requests, or (data owners) their hub's
  POST /access-requests/{request_id}/decision          a hub reports its owner's decision (access.relay, own hub)
"""

from __future__ import annotations

import html
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import HTMLResponse
from markupsafe import Markup
from pydantic import BaseModel, Field

from flute.coordinator.registry import PoliciesNotAccepted, Registry
from flute.governance.access import AccessDecision, AccessError, RequestStatus
from flute.governance.catalogue import CatalogueError, CatalogueQuery, DatasetMetadata
from flute.governance.documents import PolicyKind, current_policy, guidance_documents, render_markdown
from flute.governance.rbac import Action, Principal, Role, require
from flute.governance.service import ServiceContext


class AccessRequestBody(BaseModel):
    study: str = Field(min_length=1, max_length=64)
    hub: str = Field(min_length=1, max_length=64)
    dataset: str = Field(min_length=1, max_length=64)
    fields: list[str] = Field(min_length=1, max_length=32)
    purpose: str = Field(min_length=1, max_length=4000)
    epsilon: float
    delta: float = 0.0


class DecisionBody(BaseModel):
    approved: bool
    fields: list[str] = Field(default_factory=list, max_length=32)
    epsilon: float | None = None
    delta: float | None = None
    reason: str = Field(default="", max_length=4000)
    decided_by: str = Field(min_length=1, max_length=200)
    decided_at: str


def _bad(exc: Exception) -> HTTPException:
    return HTTPException(status.HTTP_400_BAD_REQUEST, detail=str(exc))


def _page(title: str, body_html: Markup | str) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>"
        f"{html.escape(title)}</title></head><body><main>{body_html}</main></body></html>"
    )


def catalogue_router(context: ServiceContext) -> APIRouter:
    registry = Registry(context.engine, context.audit)
    router = APIRouter(tags=["catalogue"])

    @router.get("/catalogue")
    def search_catalogue(
        _: Annotated[Principal, Depends(require(Action.CATALOGUE_READ))],
        q: str = "", variable: Annotated[list[str] | None, Query()] = None, min_band: str = "<50%",
    ) -> list[dict[str, Any]]:
        try:
            query = CatalogueQuery(text=q, variables=tuple(variable or ()), min_band=min_band)
        except CatalogueError as exc:
            raise _bad(exc) from exc
        return [entry.to_json() for entry in registry.search(query)]

    @router.get("/catalogue/{hub}/{dataset}")
    def catalogue_entry(hub: str, dataset: str, _: Annotated[Principal, Depends(require(Action.CATALOGUE_READ))]) -> dict[str, Any]:
        try:
            return registry.entry(hub, dataset).to_json()
        except CatalogueError as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from exc

    @router.put("/catalogue/{org_id}", status_code=204)
    def publish(org_id: str, entries: list[dict[str, Any]], principal: Annotated[Principal, Depends(require(Action.CATALOGUE_PUBLISH))]) -> None:
        try:
            parsed = [DatasetMetadata.from_json(entry, source=f"entry {index}") for index, entry in enumerate(entries)]
            registry.publish(org_id, parsed, principal.user_id)
        except CatalogueError as exc:
            raise _bad(exc) from exc

    @router.get("/terms", response_class=HTMLResponse)
    def terms() -> HTMLResponse:
        document = current_policy(PolicyKind.TERMS)
        return _page(document.title, render_markdown(document.markdown))

    @router.get("/privacy", response_class=HTMLResponse)
    def privacy() -> HTMLResponse:
        document = current_policy(PolicyKind.PRIVACY)
        return _page(document.title, render_markdown(document.markdown))

    @router.get("/guidance", response_class=HTMLResponse)
    def guidance(_: Annotated[Principal, Depends(require(Action.CATALOGUE_READ))]) -> HTMLResponse:
        return _page("FLUTE guidance", "".join(f"<article>{render_markdown(doc.markdown)}</article>" for doc in guidance_documents()))

    @router.get("/policies/pending")
    def pending_policies(principal: Annotated[Principal, Depends(require(Action.ACCOUNT_SELF))]) -> list[dict[str, Any]]:
        return [
            {"kind": kind.value, "version": current_policy(kind).version, "title": current_policy(kind).title, "markdown": current_policy(kind).markdown}
            for kind in registry.policies_to_accept(principal.user_id)
        ]

    @router.post("/policies/{kind}/{version}/accept", status_code=204)
    def accept(kind: PolicyKind, version: int, principal: Annotated[Principal, Depends(require(Action.ACCOUNT_SELF))]) -> None:
        try:
            registry.accept_policy(principal.user_id, kind, version)
        except KeyError as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc.args[0])) from exc

    @router.post("/access-requests", status_code=201)
    def request_access(body: AccessRequestBody, principal: Annotated[Principal, Depends(require(Action.ACCESS_REQUEST))]) -> dict[str, Any]:
        try:
            request = registry.request_access(
                study=body.study, researcher=principal.user_id, researcher_org=principal.org_id, hub=body.hub, dataset=body.dataset,
                fields=body.fields, purpose=body.purpose, epsilon=body.epsilon, delta=body.delta,
            )
        except PoliciesNotAccepted as exc:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=str(exc)) from exc
        except (AccessError, CatalogueError) as exc:
            raise _bad(exc) from exc
        return request.to_json()

    @router.get("/access-requests")
    def list_requests(
        principal: Annotated[Principal, Depends(require(Action.ACCESS_READ))], status_filter: Annotated[RequestStatus | None, Query(alias="status")] = None,
    ) -> list[dict[str, Any]]:
        """Researchers see their own requests; data owners and stewards their hub's; auditors all."""
        if Role.AUDITOR in principal.roles:
            requests = registry.requests(status=status_filter)
        elif principal.roles & {Role.DATA_OWNER_ADMIN, Role.DATA_STEWARD}:
            requests = registry.requests(hub=principal.org_id, status=status_filter)
        else:
            requests = registry.requests(researcher=principal.user_id, status=status_filter)
        return [{**r.to_json(), "decision": _decision_json(registry.decision(r.request_id))} for r in requests]

    @router.post("/access-requests/{request_id}/decision")
    def decide(request_id: str, body: DecisionBody, principal: Annotated[Principal, Depends(require(Action.ACCESS_RELAY))]) -> dict[str, Any]:
        """The hub reports its owner's decision (taken and enforced on the hub, F-SRS-9)."""
        try:
            decision = AccessDecision.from_json({**body.model_dump(), "request_id": request_id})
            return registry.record_decision(principal.org_id, decision).to_json()
        except AccessError as exc:
            raise _bad(exc) from exc

    return router


def _decision_json(decision: AccessDecision | None) -> dict[str, Any] | None:
    return decision.to_json() if decision else None
