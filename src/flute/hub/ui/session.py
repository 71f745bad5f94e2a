"""Browser sessions of the data-owner UI on top of the service's own authentication: the access
token from `IdentityService.login` (password + TOTP) travels in an HttpOnly, SameSite=Strict
cookie instead of an Authorization header, and is checked by the same Authenticator and the
same policy table as the API (`flute.governance.rbac`).

Forms carry a CSRF token bound to the login session: HMAC-SHA256 of the session id under the
node's token key. A cross-site form post lacks the cookie (SameSite) and cannot know the token.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Final
from urllib.parse import parse_qs

from fastapi import HTTPException, Request, status

from flute.governance.rbac import Action, AuthenticationFailed, Principal, authenticator_of

SESSION_COOKIE: Final[str] = "flute_session"
LOGIN_PATH: Final[str] = "/ui/login"
MAX_FORM_BYTES: Final[int] = 64 * 1024


class FormData:
    """An urlencoded form body: every value of a field, in order (checkbox groups repeat)."""

    def __init__(self, values: dict[str, list[str]]) -> None:
        self._values = values

    def first(self, name: str, default: str = "") -> str:
        return self._values.get(name, [default])[0]

    def all(self, name: str) -> list[str]:
        return list(self._values.get(name, []))


async def read_form(request: Request) -> FormData:
    """The posted form (application/x-www-form-urlencoded, at most 64 KiB)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if content_type != "application/x-www-form-urlencoded":
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, detail=f"forms must be application/x-www-form-urlencoded, got {content_type!r}")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail=f"form larger than {MAX_FORM_BYTES} bytes")
    return FormData(parse_qs(body.decode("utf-8", errors="strict"), keep_blank_values=True))


def csrf_token(key: bytes, principal: Principal) -> str:
    return hmac.new(key, f"csrf:{principal.session_id}".encode(), hashlib.sha256).hexdigest()


def check_csrf(key: bytes, principal: Principal, form: FormData) -> None:
    if not hmac.compare_digest(form.first("csrf"), csrf_token(key, principal)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="the form's CSRF token is missing or wrong: reload the page and submit it again")


def _to_login() -> HTTPException:
    return HTTPException(status.HTTP_303_SEE_OTHER, detail="sign in first", headers={"Location": LOGIN_PATH})


def ui_require(action: Action) -> Callable[[Request], Principal]:
    """Like `rbac.require`, from the session cookie: not signed in (or session ended) -> the
    login page; signed in without the right role or organisation -> 403. Marked with the
    action, so the service's route guard counts UI pages as guarded."""

    def dependency(request: Request) -> Principal:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            raise _to_login()
        authenticator = authenticator_of(request)
        try:
            principal = authenticator.authenticate(token)
        except AuthenticationFailed as exc:
            raise _to_login() from exc
        principal.ensure_organisation(action, authenticator.organisation)
        request.state.principal = principal
        return principal

    dependency.required_action = action  # type: ignore[attr-defined]
    dependency.__name__ = f"ui_require_{action.name.lower()}"
    return dependency
