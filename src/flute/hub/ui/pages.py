"""The data owner's web UI on the hub service (F-HUF-20): server-rendered pages, no front-end
build. Datasets and their catalogue metadata, pending access requests with approve/reject,
field selection and budget (NF-PIL-9, F-SRS-7), studies with their budgets (ledger), the audit
log with its verification, misuse alerts (NF-PIL-10) and patient withdrawals (NF-PIL-11).

Pages use `ui_require` (session cookie from the service's own login); every form is CSRF-checked.
Access requests come from the coordinator through the app's `CoordinatorLink`
(`app.state.flute_coordinator_link`, see `connect_coordinator`); without one, the requests page
says so and the rest of the UI works.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import quote, unquote

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from flute.governance.access import AccessDecision, AccessError
from flute.governance.audit import iter_entries
from flute.governance.catalogue import CatalogueError, DatasetDeclaration
from flute.governance.documents import render_markdown
from flute.governance.identity import LoginRefused
from flute.governance.keys import load_node_keys
from flute.governance.link import CoordinatorLink, CoordinatorUnavailable
from flute.governance.rbac import Action, Principal
from flute.governance.service import ServiceContext, identity_of
from flute.hub.consent import ConsentError, ConsentRegister
from flute.hub.ledger import LedgerError
from flute.hub.models import WithdrawalRecord
from flute.hub.store import HubStore, StoreError
from flute.hub.ui.session import LOGIN_PATH, SESSION_COOKIE, FormData, check_csrf, csrf_token, read_form, ui_require

TEMPLATES_DIR: Final[Path] = Path(__file__).parent / "templates"
LINK_STATE: Final[str] = "flute_coordinator_link"
AUDIT_PAGE_ENTRIES: Final[int] = 200
FLASH_COOKIE: Final[str] = "flute_flash"
MAX_FLASH_CHARS: Final[int] = 1000


def connect_coordinator(app: FastAPI, link: CoordinatorLink) -> None:
    """Give the hub's UI the coordinator it receives access requests from and publishes to."""
    setattr(app.state, LINK_STATE, link)


def _link(request: Request) -> CoordinatorLink | None:
    return getattr(request.app.state, LINK_STATE, None)


@lru_cache(maxsize=1)
def _environment() -> Any:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    environment = Environment(loader=FileSystemLoader(TEMPLATES_DIR), autoescape=select_autoescape(default=True))
    environment.filters["markdown"] = render_markdown
    environment.filters["when"] = lambda moment: moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else ""
    return environment


def ui_router(context: ServiceContext) -> APIRouter:
    """The UI's routes, for the hub whose store engine and organisation `context` holds."""
    if context.organisation is None:
        raise ValueError("the data-owner UI belongs to a hub service (a service with one organisation)")
    hub = context.organisation
    store = HubStore(context.engine)
    register = ConsentRegister(store, hub, context.audit)
    csrf_key = load_node_keys(context.home).token_key
    router = APIRouter(prefix="/ui", tags=["data-owner UI"], include_in_schema=False)

    def render(request: Request, template: str, principal: Principal | None, **values: Any) -> HTMLResponse:
        """The page, with the message a preceding form left in the flash cookie (shown once)."""
        page = _environment().get_template(template).render(
            hub=hub, principal=principal, path=request.url.path, message=unquote(request.cookies.get(FLASH_COOKIE, "")),
            csrf=csrf_token(csrf_key, principal) if principal else "", **values,
        )
        response = HTMLResponse(page)
        if FLASH_COOKIE in request.cookies:
            response.delete_cookie(FLASH_COOKIE, path="/ui")
        return response

    async def form_of(request: Request, principal: Principal) -> FormData:
        form = await read_form(request)
        check_csrf(csrf_key, principal, form)
        return form

    def back(path: str, message: str = "") -> RedirectResponse:
        """Redirect after a form (post/redirect/get); the outcome travels in a cookie rather
        than the URL, so a crafted link cannot put words in the hub's mouth."""
        response = RedirectResponse(path, status_code=status.HTTP_303_SEE_OTHER)
        if message:
            response.set_cookie(FLASH_COOKIE, quote(message[:MAX_FLASH_CHARS]), httponly=True, samesite="strict", path="/ui")
        return response

    # -- login -----------------------------------------------------------------------------------

    @router.get("/login", response_class=HTMLResponse)
    def login_page(request: Request) -> HTMLResponse:
        return render(request, "login.html", None, error=None)

    @router.post("/login", response_model=None)
    async def login(request: Request) -> Response:
        form = await read_form(request)
        try:
            pair = identity_of(request).login(
                form.first("username"), form.first("password"), form.first("totp") or None, request.client.host if request.client else "unknown"
            )
        except LoginRefused as refused:
            response = render(request, "login.html", None, error=str(refused))
            response.status_code = status.HTTP_401_UNAUTHORIZED
            return response
        response = back("/ui/")
        response.set_cookie(
            SESSION_COOKIE, pair.access_token, max_age=pair.expires_in, httponly=True, samesite="strict",
            secure=request.url.scheme == "https", path="/ui",
        )
        return response

    @router.post("/logout")
    async def logout(request: Request, principal: Annotated[Principal, Depends(ui_require(Action.ACCOUNT_SELF))]) -> RedirectResponse:
        await form_of(request, principal)
        identity_of(request).logout(principal)
        response = back(LOGIN_PATH)
        response.delete_cookie(SESSION_COOKIE, path="/ui")
        return response

    # -- datasets and catalogue ----------------------------------------------------------------

    @router.get("/", response_class=HTMLResponse)
    def datasets(request: Request, principal: Annotated[Principal, Depends(ui_require(Action.HUB_STATUS))]) -> HTMLResponse:
        return render(request, "datasets.html", principal, entries=register.catalogue_entries())

    @router.post("/datasets")
    async def declare(request: Request, principal: Annotated[Principal, Depends(ui_require(Action.CATALOGUE_PUBLISH))]) -> RedirectResponse:
        form = await form_of(request, principal)
        try:
            declaration = DatasetDeclaration(
                dataset=form.first("dataset").strip(), title=form.first("title").strip(), description=form.first("description"),
                conditions_of_use=form.first("conditions_of_use"), contact=form.first("contact").strip(), guidance=form.first("guidance"),
                coverage_start=_date(form.first("coverage_start")), coverage_end=_date(form.first("coverage_end")),
                open_access=form.first("open_access") == "on", exact_size_allowed=form.first("exact_size_allowed") == "on",
            )
        except (CatalogueError, ValueError) as exc:
            return back("/ui/", f"not saved: {exc}")
        register.declare(declaration, principal.user_id)
        return back("/ui/", f"dataset {declaration.dataset} saved")

    @router.post("/datasets/publish")
    async def publish(request: Request, principal: Annotated[Principal, Depends(ui_require(Action.CATALOGUE_PUBLISH))]) -> RedirectResponse:
        await form_of(request, principal)
        link = _link(request)
        if link is None:
            return back("/ui/", "no coordinator is connected to this hub: nothing published")
        try:
            entries = register.catalogue_entries()
            link.publish(hub, entries, principal.user_id)
        except CoordinatorUnavailable as exc:
            return back("/ui/", f"not published: {exc}")
        return back("/ui/", f"published {len(entries)} dataset(s) to the catalogue")

    # -- access requests -----------------------------------------------------------------------

    @router.get("/requests", response_class=HTMLResponse)
    def requests(request: Request, principal: Annotated[Principal, Depends(ui_require(Action.ACCESS_READ))]) -> HTMLResponse:
        link = _link(request)
        pending, problem = [], None
        if link is None:
            problem = "no coordinator is connected to this hub, so no access requests can arrive"
        else:
            try:
                decided = register.decided_requests()
                pending = [r for r in link.pending_requests(hub) if r.request_id not in decided]
            except CoordinatorUnavailable as exc:
                problem = str(exc)
        return render(request, "requests.html", principal, pending=pending, decisions=register.decisions(), problem=problem)

    @router.post("/requests/{request_id}/decision")
    async def decide(request_id: str, request: Request, principal: Annotated[Principal, Depends(ui_require(Action.ACCESS_DECIDE))]) -> RedirectResponse:
        form = await form_of(request, principal)
        link = _link(request)
        if link is None:
            raise HTTPException(status.HTTP_409_CONFLICT, detail="no coordinator is connected to this hub")
        try:
            pending = next((r for r in link.pending_requests(hub) if r.request_id == request_id), None)
        except CoordinatorUnavailable as exc:
            return back("/ui/requests", f"not decided: {exc}")
        if pending is None:
            return back("/ui/requests", f"request {request_id} is not pending for this hub")
        approved = form.first("decision") == "approve"
        try:
            decision = AccessDecision(
                request_id=request_id, approved=approved, fields=tuple(form.all("fields")) if approved else (),
                epsilon=_number(form.first("epsilon")) if approved else None, delta=_number(form.first("delta") or "0") if approved else None,
                reason=form.first("reason"), decided_by=principal.user_id, decided_at=datetime.now(UTC),
            )
            register.decide(pending, decision)
        except (AccessError, ConsentError, LedgerError, ValueError) as exc:
            return back("/ui/requests", f"not decided: {exc}")
        try:
            link.record_decision(hub, decision)
        except CoordinatorUnavailable as exc:
            return back("/ui/requests", f"decision stored and enforced on this hub, but the coordinator was not told: {exc}")
        verb = "approved" if approved else "rejected"
        return back("/ui/studies" if approved else "/ui/requests", f"request {request_id} {verb}")

    # -- studies and budgets -------------------------------------------------------------------

    @router.get("/studies", response_class=HTMLResponse)
    def studies(request: Request, principal: Annotated[Principal, Depends(ui_require(Action.BUDGET_READ))]) -> HTMLResponse:
        return render(
            request, "studies.html", principal, budgets=register.ledger.budgets(), grants=register.grants(),
            charges=register.ledger.recent_charges(),
        )

    @router.post("/grants/{request_id}/revoke")
    async def revoke(request_id: str, request: Request, principal: Annotated[Principal, Depends(ui_require(Action.CONSENT_MANAGE))]) -> RedirectResponse:
        await form_of(request, principal)
        try:
            register.revoke(request_id, principal.user_id)
        except ConsentError as exc:
            return back("/ui/studies", str(exc))
        return back("/ui/studies", f"grant {request_id} revoked")

    # -- audit, alerts, withdrawals ------------------------------------------------------------

    @router.get("/audit", response_class=HTMLResponse)
    def audit(request: Request, principal: Annotated[Principal, Depends(ui_require(Action.AUDIT_READ))]) -> HTMLResponse:
        with context.engine.connect() as connection:
            verification = context.audit.verify(connection)
            entries = list(iter_entries(connection))[-AUDIT_PAGE_ENTRIES:][::-1]
        return render(request, "audit.html", principal, verification=verification, entries=entries)

    @router.get("/alerts", response_class=HTMLResponse)
    def alerts(request: Request, principal: Annotated[Principal, Depends(ui_require(Action.ALERTS_READ))]) -> HTMLResponse:
        return render(request, "alerts.html", principal, alerts=register.alerts())

    @router.post("/alerts/{alert_id}/acknowledge")
    async def acknowledge(alert_id: int, request: Request, principal: Annotated[Principal, Depends(ui_require(Action.CONSENT_MANAGE))]) -> RedirectResponse:
        await form_of(request, principal)
        try:
            register.acknowledge(alert_id, principal.user_id)
        except ConsentError as exc:
            return back("/ui/alerts", str(exc))
        return back("/ui/alerts", f"alert {alert_id} acknowledged")

    @router.get("/withdrawals", response_class=HTMLResponse)
    def withdrawals(request: Request, principal: Annotated[Principal, Depends(ui_require(Action.WITHDRAWAL_READ))]) -> HTMLResponse:
        table = WithdrawalRecord.__table__.c
        with context.engine.connect() as connection:
            rows = connection.execute(select(table.pseudonym, table.withdrawn_at, table.reason).order_by(table.withdrawn_at.desc())).all()
        return render(request, "withdrawals.html", principal, withdrawals=rows)

    @router.post("/withdrawals")
    async def withdraw(request: Request, principal: Annotated[Principal, Depends(ui_require(Action.WITHDRAWAL_CREATE))]) -> RedirectResponse:
        form = await form_of(request, principal)
        pseudonym, reason = form.first("pseudonym").strip(), form.first("reason").strip()
        if not reason:
            return back("/ui/withdrawals", "state the reason of the withdrawal (e.g. the patient's request of DATE)")
        try:
            withdrawal = store.withdraw(pseudonym, reason)
        except StoreError as exc:
            return back("/ui/withdrawals", str(exc))
        with context.engine.begin() as connection:
            context.audit.append(connection, "withdrawal.create", pseudonym, {"reason": reason}, actor=principal.user_id)
        return back("/ui/withdrawals", f"patient {pseudonym[:12]}... withdrawn ({withdrawal.resources_withdrawn} resources excluded)")

    return router


def _date(text: str) -> date | None:
    return date.fromisoformat(text) if text.strip() else None


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value
