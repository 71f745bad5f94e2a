"""Roles, actions and the ONE policy table that joins them (F-SRS-2, F-PIL-20, URS-3).

Every HTTP route and every governed CLI action names one `Action`; a route obtains the caller
with `principal: Principal = Depends(require(Action.X))`. `require` authenticates the request
(401 when it cannot) and then checks the policy: the caller's roles must grant the action
(403 otherwise) and, where the grant is limited to the caller's own organisation, the target
organisation must be the caller's (403 otherwise).

The target organisation of a request is, in this order: the route's `org_id` path parameter,
else the organisation the service belongs to (a hub serves exactly one organisation; the
coordinator serves none). A route whose target organisation is only known from its body calls
`principal.ensure_organisation(action, org_id)` itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Final, Protocol

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer


class Role(str, Enum):
    PLATFORM_ADMIN = "platform_admin"
    DATA_OWNER_ADMIN = "data_owner_admin"
    DATA_STEWARD = "data_steward"
    RESEARCHER = "researcher"
    AUDITOR = "auditor"


#: Roles that must use a second factor (URS-3, F-SRS-1): they can change who may do what.
ADMIN_ROLES: Final[frozenset[Role]] = frozenset({Role.PLATFORM_ADMIN, Role.DATA_OWNER_ADMIN})


class Action(str, Enum):
    """Everything a person can ask a FLUTE service to do. The value is what audit entries and
    error messages show."""

    ACCOUNT_SELF = "account.self"  # one's own session, MFA enrolment and API tokens
    CATALOGUE_READ = "catalogue.read"
    CATALOGUE_PUBLISH = "catalogue.publish"
    ACCESS_REQUEST = "access.request"
    ACCESS_READ = "access.read"
    ACCESS_DECIDE = "access.decide"
    ACCESS_RELAY = "access.relay"  # a hub's service account reports its owner's decision to the coordinator
    CONSENT_READ = "consent.read"
    CONSENT_MANAGE = "consent.manage"
    STUDY_SUBMIT = "study.submit"
    STUDY_READ = "study.read"
    STATS_QUERY = "stats.query"
    MODEL_READ = "model.read"
    BUDGET_READ = "budget.read"
    BUDGET_SET = "budget.set"
    DATA_IMPORT = "data.import"
    HUB_STATUS = "hub.status"
    WITHDRAWAL_CREATE = "withdrawal.create"
    WITHDRAWAL_READ = "withdrawal.read"
    AUDIT_READ = "audit.read"
    AUDIT_VERIFY = "audit.verify"
    AUDIT_EXPORT = "audit.export"
    ALERTS_READ = "alerts.read"
    USER_MANAGE = "user.manage"
    ORG_MANAGE = "org.manage"
    CONFIG_CHANGE = "config.change"


class Scope(str, Enum):
    """How far a grant reaches. OWN: only targets of the caller's own organisation. ANY: any
    organisation (route-level rules, e.g. an approved access request, may still refuse)."""

    OWN = "own"
    ANY = "any"


_OWN, _ANY = Scope.OWN, Scope.ANY

#: The policy (F-SRS-2): role -> action -> scope. An action missing for a role is denied.
#: Separation of duties: platform admins run the platform but read no data-owner records;
#: data-owner admins and stewards govern their own organisation only; auditors read everything
#: needed for an investigation and change nothing.
POLICY: Final[Mapping[Role, Mapping[Action, Scope]]] = {
    Role.PLATFORM_ADMIN: {
        Action.ACCOUNT_SELF: _ANY,
        Action.USER_MANAGE: _ANY,
        Action.ORG_MANAGE: _ANY,
        Action.CONFIG_CHANGE: _ANY,
        Action.ALERTS_READ: _ANY,
        Action.CATALOGUE_READ: _ANY,
        Action.STUDY_READ: _ANY,
        Action.AUDIT_VERIFY: _ANY,
    },
    Role.DATA_OWNER_ADMIN: {
        Action.ACCOUNT_SELF: _ANY,
        Action.USER_MANAGE: _OWN,
        Action.CONFIG_CHANGE: _OWN,
        Action.CATALOGUE_READ: _ANY,
        Action.CATALOGUE_PUBLISH: _OWN,
        Action.ACCESS_READ: _OWN,
        Action.ACCESS_DECIDE: _OWN,
        Action.ACCESS_RELAY: _OWN,
        Action.CONSENT_READ: _OWN,
        Action.CONSENT_MANAGE: _OWN,
        Action.BUDGET_READ: _OWN,
        Action.BUDGET_SET: _OWN,
        Action.DATA_IMPORT: _OWN,
        Action.HUB_STATUS: _OWN,
        Action.WITHDRAWAL_CREATE: _OWN,
        Action.WITHDRAWAL_READ: _OWN,
        Action.STUDY_READ: _OWN,
        Action.ALERTS_READ: _OWN,
        Action.AUDIT_READ: _OWN,
        Action.AUDIT_VERIFY: _OWN,
    },
    Role.DATA_STEWARD: {
        Action.ACCOUNT_SELF: _ANY,
        Action.CATALOGUE_READ: _ANY,
        Action.CATALOGUE_PUBLISH: _OWN,
        Action.ACCESS_READ: _OWN,
        Action.ACCESS_RELAY: _OWN,
        Action.CONSENT_READ: _OWN,
        Action.CONSENT_MANAGE: _OWN,
        Action.BUDGET_READ: _OWN,
        Action.DATA_IMPORT: _OWN,
        Action.HUB_STATUS: _OWN,
        Action.WITHDRAWAL_CREATE: _OWN,
        Action.WITHDRAWAL_READ: _OWN,
        Action.STUDY_READ: _OWN,
        Action.ALERTS_READ: _OWN,
    },
    Role.RESEARCHER: {
        Action.ACCOUNT_SELF: _ANY,
        Action.CATALOGUE_READ: _ANY,
        Action.ACCESS_REQUEST: _OWN,
        Action.ACCESS_READ: _OWN,
        Action.STUDY_SUBMIT: _ANY,
        Action.STUDY_READ: _ANY,
        Action.STATS_QUERY: _ANY,
        Action.MODEL_READ: _ANY,
        Action.BUDGET_READ: _ANY,
    },
    Role.AUDITOR: {
        Action.ACCOUNT_SELF: _ANY,
        Action.CATALOGUE_READ: _ANY,
        Action.ACCESS_READ: _ANY,
        Action.STUDY_READ: _ANY,
        Action.BUDGET_READ: _ANY,
        Action.WITHDRAWAL_READ: _ANY,
        Action.ALERTS_READ: _ANY,
        Action.AUDIT_READ: _ANY,
        Action.AUDIT_VERIFY: _ANY,
        Action.AUDIT_EXPORT: _ANY,
    },
}


#: Roles each role may give to accounts it creates (`user.manage`): nobody creates an account
#: above their own reach; auditors (who read across organisations) only by the platform.
GRANTABLE: Final[Mapping[Role, frozenset[Role]]] = {
    Role.PLATFORM_ADMIN: frozenset(Role),
    Role.DATA_OWNER_ADMIN: frozenset({Role.DATA_OWNER_ADMIN, Role.DATA_STEWARD, Role.RESEARCHER}),
    Role.DATA_STEWARD: frozenset(),
    Role.RESEARCHER: frozenset(),
    Role.AUDITOR: frozenset(),
}


def grantable(roles: frozenset[Role]) -> frozenset[Role]:
    """The roles someone holding `roles` may give to others."""
    return frozenset().union(*(GRANTABLE[role] for role in roles))


def grant(roles: frozenset[Role], action: Action) -> Scope | None:
    """The widest scope any of `roles` grants for `action`; None when none grants it."""
    scopes = {POLICY[role][action] for role in roles if action in POLICY[role]}
    if not scopes:
        return None
    return Scope.ANY if Scope.ANY in scopes else Scope.OWN


def permits(roles: frozenset[Role], action: Action, caller_org: str, target_org: str | None) -> bool:
    """The policy decision alone (no authentication): may someone of `caller_org` holding
    `roles` do `action` on something of `target_org` (None: not tied to an organisation)?"""
    scope = grant(roles, action)
    if scope is None:
        return False
    return scope is Scope.ANY or target_org is None or target_org == caller_org


class AuthMethod(str, Enum):
    """How the caller proved who they are (recorded in audit entries)."""

    PASSWORD = "password"  # password only (non-admin without MFA)
    PASSWORD_TOTP = "password+totp"
    API_TOKEN = "api_token"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. `user_id` is the account's login name (unique, never reused);
    `session_id` names the login session or API token the request came with (what
    /auth/logout or a token revocation ends)."""

    user_id: str
    org_id: str
    roles: frozenset[Role]
    auth_method: AuthMethod
    session_id: str | None = None

    def may(self, action: Action, target_org: str | None = None) -> bool:
        return permits(self.roles, action, self.org_id, target_org)

    def ensure_organisation(self, action: Action, target_org: str | None) -> None:
        """403 unless this caller may do `action` on something of `target_org`."""
        if not self.may(action, target_org):
            raise forbidden(self, action, target_org)


def forbidden(principal: Principal, action: Action, target_org: str | None) -> HTTPException:
    roles = ", ".join(sorted(role.value for role in principal.roles)) or "no role"
    if grant(principal.roles, action) is None:
        detail = f"{action.value} is not permitted to {roles}"
    else:
        detail = f"{action.value} is limited to the caller's own organisation ({principal.org_id}), not {target_org}"
    return HTTPException(status.HTTP_403_FORBIDDEN, detail=detail)


class AuthenticationFailed(Exception):
    """A credential that does not authenticate anyone (missing, malformed, expired, revoked,
    idle session); the message says which, without revealing secrets."""


class Authenticator(Protocol):
    """What `require` needs from the service: turn a bearer credential into a Principal."""

    organisation: str | None

    def authenticate(self, credential: str) -> Principal: ...


#: Where a service keeps its Authenticator (`app.state.<name>`).
AUTHENTICATOR_STATE: Final[str] = "flute_authenticator"
BEARER = HTTPBearer(auto_error=False, description="An access token from POST /auth/login or an API token.")


def authenticator_of(request: Request) -> Authenticator:
    authenticator: Authenticator | None = getattr(request.app.state, AUTHENTICATOR_STATE, None)
    if authenticator is None:
        raise RuntimeError("this app has no authenticator; build it with flute.governance.service.build_app")
    return authenticator


def unauthenticated(reason: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=reason, headers={"WWW-Authenticate": "Bearer"})


def authenticate_request(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    """The caller of a request, or 401."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise unauthenticated("authentication required: send 'Authorization: Bearer TOKEN' (POST /auth/login)")
    try:
        return authenticator_of(request).authenticate(credentials.credentials)
    except AuthenticationFailed as exc:
        raise unauthenticated(str(exc)) from exc


RequireDependency = Callable[[Request, HTTPAuthorizationCredentials | None], Principal]


def require(action: Action) -> RequireDependency:
    """A FastAPI dependency: the authenticated Principal allowed to do `action` here, else
    401 (not authenticated) or 403 (role or organisation not allowed). Marked with the action
    so the service can check that every non-public route is guarded."""

    def dependency(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]
    ) -> Principal:
        principal = authenticate_request(request, credentials)
        target = request.path_params.get("org_id") or authenticator_of(request).organisation
        principal.ensure_organisation(action, target)
        request.state.principal = principal
        return principal

    dependency.required_action = action  # type: ignore[attr-defined]
    dependency.__name__ = f"require_{action.name.lower()}"
    return dependency


def required_action(dependency: object) -> Action | None:
    """The action a dependency created by `require` checks (None for any other callable)."""
    action = getattr(dependency, "required_action", None)
    return action if isinstance(action, Action) else None
