"""The skeleton every FLUTE HTTP service is built on (F-HUF-21, F-PIL-12/20, F-SRS-1/2/3):
authentication routes, /health, OpenAPI, and the rule that every route outside a short public
allow-list depends on `rbac.require` - checked when the app is built, so a route added without
a guard stops the service from starting instead of serving unauthenticated.

Routes: POST /auth/login, /auth/refresh, /auth/logout, /auth/password, /auth/mfa/enrol,
/auth/mfa/confirm, GET/POST /auth/tokens, DELETE /auth/tokens/{token_id}, GET /auth/me,
GET /health, and the administration routes of `admin_api` (/orgs, /orgs/{org_id}/users...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, status
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from flute.governance.admin_api import admin_router
from flute.governance.audit import AuditTrail, bind_trail
from flute.governance.identity import IdentityError, IdentityService, LoginRefused, parse_roles
from flute.governance.keys import load_node_keys
from flute.governance.passwords import PasswordRejected
from flute.governance.policy import SecurityPolicy
from flute.governance.rbac import AUTHENTICATOR_STATE, Action, AuthenticationFailed, Principal, require, required_action

#: Paths reachable without authentication. Everything else must depend on `require`.
PUBLIC_PATHS: Final[frozenset[str]] = frozenset(
    {"/auth/login", "/auth/refresh", "/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/terms", "/privacy",
     "/ui/login", "/fhir/metadata"}
)
PUBLIC_PREFIXES: Final[tuple[str, ...]] = ("/static/",)
PUBLIC_MOUNTS: Final[frozenset[str]] = frozenset({"/static"})
_GUARD_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    401: {"description": "Not authenticated (missing, invalid or expired credential, ended session)"},
    403: {"description": "Authenticated, but the role or organisation may not do this"},
}


class UnguardedRoute(RuntimeError):
    """A route that is neither public nor guarded by `require`."""


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path in PUBLIC_MOUNTS or path.startswith(PUBLIC_PREFIXES)


@dataclass(frozen=True)
class ServedRoute:
    """One route as the app serves it (path with the routers' prefixes) and the actions its
    dependencies check with `require` (empty: unguarded)."""

    path: str
    methods: frozenset[str]
    actions: tuple[Action, ...]


def served_routes(app: FastAPI) -> list[ServedRoute]:
    """Every route of `app`, included routers flattened, with the actions that guard it."""
    served = []
    for context in iter_route_contexts(app.routes):
        path = context.path or ""
        if isinstance(context.original_route, APIRoute):
            served.append(ServedRoute(path, frozenset(context.methods or ()), tuple(_actions(context.dependant))))
        else:
            served.append(ServedRoute(path, frozenset(getattr(context, "methods", None) or ()), ()))
    return served


def _actions(dependant: Dependant) -> list[Action]:
    found: list[Action] = []
    pending = list(dependant.dependencies)
    while pending:
        current = pending.pop()
        action = required_action(current.call)
        if action is not None:
            found.append(action)
        pending.extend(current.dependencies)
    return found


def guard_routes(app: FastAPI) -> None:
    """Refuse an app with a route that is neither public nor guarded by `require` (static
    mounts and other non-API routes must be public: they cannot depend on `require`)."""
    unguarded = [
        f"{','.join(sorted(route.methods)) or 'ANY'} {route.path}"
        for route in served_routes(app)
        if not is_public(route.path) and not route.actions
    ]
    if unguarded:
        raise UnguardedRoute(f"routes without Depends(require(Action...)) and not public: {'; '.join(unguarded)}")


# --- request and response bodies ------------------------------------------------------------

class LoginBody(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    totp: str | None = Field(default=None, max_length=16, description="The 6-digit code of the authenticator app (required for admins).")


class RefreshBody(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=200)


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int


class MeResponse(BaseModel):
    user_id: str
    org_id: str
    roles: list[str]
    auth_method: str


class EnrolmentResponse(BaseModel):
    secret: str
    provisioning_uri: str


class PasswordBody(BaseModel):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


class ConfirmBody(BaseModel):
    totp: str = Field(min_length=6, max_length=16)


class ApiTokenBody(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    roles: list[str] | None = Field(default=None, description="Subset of your roles (default: all non-admin roles you hold).")
    ttl_days: int | None = Field(default=None, ge=1, le=366)


class ApiTokenResponse(BaseModel):
    id: str
    name: str
    roles: list[str]
    created_at: str
    expires_at: str | None
    revoked_at: str | None


class NewApiTokenResponse(ApiTokenResponse):
    token: str = Field(description="Shown once; only its hash is stored.")


class HealthResponse(BaseModel):
    status: str
    service: str


def identity_of(request: Request) -> IdentityService:
    return getattr(request.app.state, AUTHENTICATOR_STATE)


def _source(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _bad_request(exc: Exception) -> HTTPException:
    return HTTPException(status.HTTP_400_BAD_REQUEST, detail=str(exc))


def _token_response(info: Any) -> dict[str, Any]:
    return {
        "id": info.id, "name": info.name, "roles": sorted(r.value for r in info.roles), "created_at": info.created_at.isoformat(),
        "expires_at": info.expires_at.isoformat() if info.expires_at else None, "revoked_at": info.revoked_at.isoformat() if info.revoked_at else None,
    }


#: The caller of an auth route about their own account (every role may manage itself).
SelfService = Annotated[Principal, Depends(require(Action.ACCOUNT_SELF))]


def auth_router() -> APIRouter:
    router = APIRouter(prefix="/auth", tags=["authentication"])

    @router.post("/login", response_model=TokenResponse, responses={401: {"description": "Wrong credentials or TOTP code missing/invalid"}, 429: {"description": "Locked after repeated failures; see Retry-After"}})
    def login(body: LoginBody, request: Request) -> TokenResponse:
        """Password (+ TOTP for admins and enrolled accounts) -> access + refresh token."""
        try:
            pair = identity_of(request).login(body.username, body.password, body.totp, _source(request))
        except LoginRefused as refused:
            if refused.retry_after is not None:
                raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, detail=str(refused), headers={"Retry-After": str(int(refused.retry_after.total_seconds()) + 1)}) from refused
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail=str(refused)) from refused
        return TokenResponse(access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in)

    @router.post("/refresh", response_model=TokenResponse, responses={401: {"description": "Unknown, used (session revoked) or expired refresh token"}})
    def refresh(body: RefreshBody, request: Request) -> TokenResponse:
        """Exchange a one-time refresh token for a new pair (the old one is spent)."""
        try:
            pair = identity_of(request).refresh(body.refresh_token)
        except AuthenticationFailed as exc:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail=str(exc)) from exc
        return TokenResponse(access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in)

    @router.post("/logout", status_code=204)
    def logout(principal: SelfService, request: Request) -> None:
        identity_of(request).logout(principal)

    @router.get("/me", response_model=MeResponse)
    def me(principal: SelfService) -> MeResponse:
        return MeResponse(user_id=principal.user_id, org_id=principal.org_id, roles=sorted(r.value for r in principal.roles), auth_method=principal.auth_method.value)

    @router.post("/password", status_code=204, responses={400: {"description": "Wrong current password or a new one the policy refuses"}})
    def change_password(body: PasswordBody, principal: SelfService, request: Request) -> None:
        """Change your password; your other sessions end."""
        try:
            identity_of(request).change_password(principal, body.current_password, body.new_password)
        except (IdentityError, PasswordRejected) as exc:
            raise _bad_request(exc) from exc

    @router.post("/mfa/enrol", response_model=EnrolmentResponse)
    def enrol(principal: SelfService, request: Request) -> EnrolmentResponse:
        """Start TOTP enrolment: scan the URI, then confirm with a code."""
        enrolment = identity_of(request).begin_mfa_enrolment(principal)
        return EnrolmentResponse(secret=enrolment.secret, provisioning_uri=enrolment.provisioning_uri)

    @router.post("/mfa/confirm", status_code=204, responses={400: {"description": "No pending enrolment or wrong code"}})
    def confirm(body: ConfirmBody, principal: SelfService, request: Request) -> None:
        try:
            identity_of(request).confirm_mfa_enrolment(principal, body.totp)
        except IdentityError as exc:
            raise _bad_request(exc) from exc

    @router.get("/tokens", response_model=list[ApiTokenResponse])
    def list_tokens(principal: SelfService, request: Request) -> list[dict[str, Any]]:
        return [_token_response(info) for info in identity_of(request).api_tokens(principal)]

    @router.post("/tokens", response_model=NewApiTokenResponse, status_code=201, responses={400: {"description": "Roles not held, admin roles, or created with an API token"}})
    def create_token(body: ApiTokenBody, principal: SelfService, request: Request) -> dict[str, Any]:
        """An API token for the SDK, limited to the given roles."""
        from datetime import timedelta

        service = identity_of(request)
        try:
            roles = parse_roles(body.roles) if body.roles is not None else principal.roles - service.policy.mfa_required_roles
            info, secret = service.create_api_token(principal, body.name, roles, timedelta(days=body.ttl_days) if body.ttl_days else None)
        except IdentityError as exc:
            raise _bad_request(exc) from exc
        return {**_token_response(info), "token": secret}

    @router.delete("/tokens/{token_id}", status_code=204, responses={404: {"description": "No such active token of yours"}})
    def revoke_token(token_id: str, principal: SelfService, request: Request) -> None:
        try:
            identity_of(request).revoke_api_token(principal, token_id)
        except IdentityError as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from exc

    return router


@dataclass(frozen=True)
class ServiceContext:
    """What a router factory gets to build its routes: the node's home directory, its
    database engine, identities, audit trail and the organisation it serves (None: the
    coordinator, which serves every organisation)."""

    home: Path
    engine: Engine
    identity: IdentityService
    audit: AuditTrail
    organisation: str | None


#: A module's contribution to a service: its routes, built for one node.
RouterFactory = Callable[[ServiceContext], APIRouter]


def build_app(title: str, context: ServiceContext, router_factories: Iterable[RouterFactory] = ()) -> FastAPI:
    """A service with the auth routes, /health and the factories' routers, every route guarded
    or public (UnguardedRoute otherwise). `app.state.flute_context` holds the context."""
    app = FastAPI(title=title, version="1", docs_url="/docs", redoc_url=None)
    setattr(app.state, AUTHENTICATOR_STATE, context.identity)
    app.state.flute_context = context
    app.include_router(auth_router(), responses=_GUARD_RESPONSES)
    app.include_router(admin_router(), responses=_GUARD_RESPONSES)

    @app.get("/health", response_model=HealthResponse, tags=["service"])
    def health() -> HealthResponse:
        return HealthResponse(status="ok", service=title)

    for factory in router_factories:
        app.include_router(factory(context), responses=_GUARD_RESPONSES)
    guard_routes(app)
    return app


@dataclass(frozen=True)
class TlsFiles:
    """Server certificate and key for HTTPS (e.g. from `flute pki`)."""

    cert: Path
    key: Path

    def check(self) -> None:
        for path in (self.cert, self.key):
            if not path.is_file():
                raise FileNotFoundError(f"TLS file {path} not found; create certificates with `flute pki init` or pass --tls-cert/--tls-key")


LOOPBACK_HOSTS: Final[frozenset[str]] = frozenset({"127.0.0.1", "::1", "localhost"})


def serve(app: FastAPI, host: str, port: int, tls: TlsFiles | None) -> None:
    """Run under uvicorn until interrupted; HTTPS when `tls` is given. Plain HTTP is refused
    on anything but loopback: credentials must never cross a network in clear text."""
    import uvicorn

    if tls is not None:
        tls.check()
    elif host not in LOOPBACK_HOSTS:
        raise ValueError(f"refusing plain HTTP on {host}: pass --tls-cert and --tls-key (e.g. from `flute pki init`) or bind 127.0.0.1")
    uvicorn.run(
        app, host=host, port=port, log_level="info", proxy_headers=False, server_header=False,
        ssl_certfile=str(tls.cert) if tls else None, ssl_keyfile=str(tls.key) if tls else None,
    )



def open_context(home: Path, engine: Engine, organisation: str | None, policy: SecurityPolicy | None = None) -> ServiceContext:
    """The governance of the node at `home` whose database is `engine`: its keys (created on
    first use), audit trail and identity service."""
    keys = load_node_keys(home)
    audit = AuditTrail(key=keys.audit_key)
    bind_trail(engine, audit)
    identity = IdentityService(engine, token_key=keys.token_key, audit=audit, organisation=organisation, policy=policy)
    return ServiceContext(home=home, engine=engine, identity=identity, audit=audit, organisation=organisation)
