"""Administration routes of every service (F-PIL-20, URS-3): organisations (`org.manage`) and
the accounts of an organisation (`user.manage`, limited to one's own organisation for
data-owner admins by the `org_id` path parameter). New accounts get a random one-time
password (and a TOTP enrolment for admin roles), returned once, never a chosen default.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, Field

from flute.governance.identity import IdentityError, IdentityService, parse_roles
from flute.governance.passwords import PasswordRejected
from flute.governance.rbac import AUTHENTICATOR_STATE, Action, Principal, grantable, require

ONE_TIME_PASSWORD_BYTES = 18


class OrganisationBody(BaseModel):
    id: str = Field(min_length=3, max_length=64, description="Short identifier, e.g. hospital-a.")
    name: str = Field(min_length=1, max_length=200)


class OrganisationResponse(BaseModel):
    id: str
    name: str


class NewUserBody(BaseModel):
    username: str = Field(min_length=3, max_length=64)
    roles: list[str] = Field(min_length=1, max_length=5)


class UserResponse(BaseModel):
    username: str
    org_id: str
    roles: list[str]
    mfa_enrolled: bool
    disabled: bool


class NewUserResponse(BaseModel):
    username: str
    org_id: str
    roles: list[str]
    password: str = Field(description="One-time initial password; shown once.")
    totp_secret: str | None = Field(description="TOTP secret for admin roles; shown once.")
    totp_uri: str | None


OrgManager = Annotated[Principal, Depends(require(Action.ORG_MANAGE))]
UserManager = Annotated[Principal, Depends(require(Action.USER_MANAGE))]


def _identity(request: Request) -> IdentityService:
    return getattr(request.app.state, AUTHENTICATOR_STATE)


def _bad(exc: Exception) -> HTTPException:
    return HTTPException(status.HTTP_400_BAD_REQUEST, detail=str(exc))


def admin_router() -> APIRouter:
    router = APIRouter(tags=["administration"])

    @router.get("/orgs", response_model=list[OrganisationResponse])
    def list_organisations(_principal: OrgManager, request: Request) -> list[OrganisationResponse]:
        return [OrganisationResponse(id=org_id, name=name) for org_id, name in _identity(request).organisations()]

    @router.post("/orgs", response_model=OrganisationResponse, status_code=201, responses={400: {"description": "Invalid identifier"}})
    def create_organisation(body: OrganisationBody, principal: OrgManager, request: Request) -> OrganisationResponse:
        try:
            _identity(request).ensure_organisation(body.id, body.name, actor=f"user:{principal.user_id}")
        except IdentityError as exc:
            raise _bad(exc) from exc
        return OrganisationResponse(id=body.id, name=body.name)

    @router.get("/orgs/{org_id}/users", response_model=list[UserResponse])
    def list_users(org_id: str, _principal: UserManager, request: Request) -> list[UserResponse]:
        return [
            UserResponse(username=u.username, org_id=u.org_id, roles=sorted(r.value for r in u.roles), mfa_enrolled=u.mfa_enrolled, disabled=u.disabled)
            for u in _identity(request).users(org_id)
        ]

    @router.post("/orgs/{org_id}/users", response_model=NewUserResponse, status_code=201, responses={400: {"description": "Unknown organisation or role, taken username"}, 403: {"description": "A role you may not grant"}})
    def create_user(org_id: str, body: NewUserBody, principal: UserManager, request: Request) -> NewUserResponse:
        try:
            roles = parse_roles(body.roles)
        except IdentityError as exc:
            raise _bad(exc) from exc
        beyond = roles - grantable(principal.roles)
        if beyond:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"you may not grant {', '.join(sorted(r.value for r in beyond))}")
        password = secrets.token_urlsafe(ONE_TIME_PASSWORD_BYTES)
        try:
            created = _identity(request).create_user(body.username, org_id, roles, password, actor=f"user:{principal.user_id}")
        except (IdentityError, PasswordRejected) as exc:
            raise _bad(exc) from exc
        return NewUserResponse(
            username=created.username, org_id=created.org_id, roles=sorted(r.value for r in created.roles), password=password,
            totp_secret=created.totp.secret if created.totp else None, totp_uri=created.totp.provisioning_uri if created.totp else None,
        )

    @router.post("/orgs/{org_id}/users/{username}/disable", status_code=204, responses={404: {"description": "No such user in this organisation"}})
    def disable_user(org_id: str, username: str, principal: UserManager, request: Request) -> None:
        _set_disabled(request, org_id, username, principal, True)

    @router.post("/orgs/{org_id}/users/{username}/enable", status_code=204, responses={404: {"description": "No such user in this organisation"}})
    def enable_user(org_id: str, username: str, principal: UserManager, request: Request) -> None:
        _set_disabled(request, org_id, username, principal, False)

    return router


def _set_disabled(request: Request, org_id: str, username: str, principal: Principal, disabled: bool) -> None:
    try:
        _identity(request).set_disabled(username, disabled, org_id=org_id, actor=f"user:{principal.user_id}")
    except IdentityError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from exc
