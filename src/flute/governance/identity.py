"""Identities and authentication of one node (coordinator or hub): organisations, users and
their roles, password + TOTP login, sessions with rotating refresh tokens, idle timeout,
lockout, and API tokens for the SDK (URS-3, F-SRS-1/2/3, NF-SRS-1, F-PIL-20).

Every security-relevant event is appended to the node's audit log in the same transaction
(F-PIL-21). Principals are identified by their login name (`Principal.user_id`), which is
unique and never reassigned, so audit entries stay readable.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection, Engine, Row, select, update
from sqlalchemy.exc import IntegrityError

from flute.governance import passwords, throttle, tokens, totp
from flute.governance.audit import AuditTrail
from flute.governance.models import (
    ApiTokenRecord, OrganisationRecord, RefreshTokenRecord, SessionRecord, UserRecord, UserRoleRecord,
)
from flute.governance.policy import SecurityPolicy
from flute.governance.rbac import ADMIN_ROLES, AuthenticationFailed, AuthMethod, Principal, Role
from flute.governance.sealing import SealBroken, Sealer
from flute.governance.timeutil import as_utc, utc_now

API_TOKEN_PREFIX: Final[str] = "flute_"
_USERNAME_CHARS: Final[frozenset[str]] = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-@")
#: Sessions record activity at most this often (one write per request would be wasteful).
_TOUCH_EVERY: Final[timedelta] = timedelta(seconds=15)


class IdentityError(ValueError):
    """A request about identities that cannot be honoured (unknown organisation, taken username,
    roles a token may not carry...); the message says why."""


class LoginRefused(Exception):
    """Login failed. `retry_after` is set when the account or address is locked;
    `totp_required` when only the second factor is missing."""

    def __init__(self, reason: str, *, retry_after: timedelta | None = None, totp_required: bool = False) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.totp_required = totp_required


@dataclass(frozen=True)
class NewUser:
    """A created account. `totp` is set when the account was enrolled in MFA at creation
    (always for admins): the secret must reach its owner, once."""

    username: str
    org_id: str
    roles: frozenset[Role]
    totp: totp.TotpEnrolment | None


@dataclass(frozen=True)
class UserInfo:
    username: str
    org_id: str
    roles: frozenset[Role]
    mfa_enrolled: bool
    disabled: bool


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    principal: Principal


@dataclass(frozen=True)
class ApiTokenInfo:
    id: str
    name: str
    roles: frozenset[Role]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _new_id() -> str:
    return secrets.token_hex(16)


def _check_username(username: str) -> None:
    if not (3 <= len(username) <= 64) or set(username) - _USERNAME_CHARS:
        raise IdentityError(f"username {username!r} must be 3-64 characters of a-z, 0-9, '.', '_', '-', '@' (lower case)")


def parse_roles(names: Iterable[str]) -> frozenset[Role]:
    """Role names as Roles; IdentityError names an unknown one and lists the known ones."""
    roles = set()
    for name in names:
        try:
            roles.add(Role(name))
        except ValueError as exc:
            raise IdentityError(f"unknown role {name!r}; known roles: {', '.join(r.value for r in Role)}") from exc
    return frozenset(roles)


class IdentityService:
    """Identities of one node, in its database (`engine`), with its token key and audit trail.
    Implements `rbac.Authenticator` for the services. `clock` is the time source."""

    def __init__(
        self, engine: Engine, *, token_key: bytes, audit: AuditTrail, organisation: str | None,
        policy: SecurityPolicy | None = None, clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._engine = engine
        self._token_key = token_key
        self._sealer = Sealer(token_key)
        self.audit = audit
        self.organisation = organisation
        self.policy = policy or SecurityPolicy()
        self._clock = clock

    # --- organisations and accounts -------------------------------------------------------

    def ensure_organisation(self, org_id: str, name: str, *, actor: str | None = None) -> None:
        """Create the organisation unless it exists."""
        _check_username(org_id)
        with self._engine.begin() as connection:
            if connection.execute(select(OrganisationRecord.id).where(OrganisationRecord.id == org_id)).first() is None:
                connection.execute(OrganisationRecord.__table__.insert().values(id=org_id, name=name, created_at=self._clock()))
                self.audit.append(connection, "org.create", f"organisation:{org_id}", {"name": name}, actor=actor)

    def organisations(self) -> list[tuple[str, str]]:
        with self._engine.connect() as connection:
            return [(row.id, row.name) for row in connection.execute(select(OrganisationRecord).order_by(OrganisationRecord.id))]

    def user_count(self) -> int:
        with self._engine.connect() as connection:
            return len(connection.execute(select(UserRecord.id)).all())

    def create_user(self, username: str, org_id: str, roles: frozenset[Role], password: str, *, actor: str | None = None) -> NewUser:
        """Create an account after checking the password policy. Accounts with an admin role
        (or any role the policy lists) are enrolled in TOTP at once: they can never log in
        without a second factor."""
        _check_username(username)
        if not roles:
            raise IdentityError("a user needs at least one role")
        passwords.check_policy(password, username)
        enrolment = totp.new_enrolment(username) if roles & self.policy.mfa_required_roles else None
        with self._engine.begin() as connection:
            if connection.execute(select(OrganisationRecord.id).where(OrganisationRecord.id == org_id)).first() is None:
                raise IdentityError(f"no organisation {org_id!r}; create it first (known: {', '.join(o for o, _ in self.organisations()) or 'none'})")
            user_id = _new_id()
            try:
                connection.execute(
                    UserRecord.__table__.insert().values(
                        id=user_id, username=username, org_id=org_id, password_hash=passwords.hash_password(password),
                        totp_secret=self._sealer.seal(enrolment.secret, username) if enrolment else None, totp_pending=None, last_totp_step=None,
                        disabled=False, created_at=self._clock(),
                    )
                )
            except IntegrityError as exc:
                raise IdentityError(f"username {username!r} is taken; choose another") from exc
            connection.execute(UserRoleRecord.__table__.insert(), [{"user_id": user_id, "role": role.value} for role in sorted(roles)])
            self.audit.append(connection, "user.create", f"user:{username}", {"org": org_id, "roles": sorted(r.value for r in roles), "mfa": enrolment is not None}, actor=actor)
        return NewUser(username=username, org_id=org_id, roles=roles, totp=enrolment)

    def users(self, org_id: str) -> list[UserInfo]:
        """The accounts of one organisation, by username."""
        with self._engine.connect() as connection:
            rows = connection.execute(select(UserRecord).where(UserRecord.org_id == org_id).order_by(UserRecord.username)).all()
            return [UserInfo(row.username, row.org_id, self._roles(connection, row.id), row.totp_secret is not None, row.disabled) for row in rows]

    def set_disabled(self, username: str, disabled: bool, *, org_id: str | None = None, actor: str | None = None) -> None:
        """Disable (or re-enable) an account - of `org_id` when given; disabling ends its
        sessions and API tokens."""
        now = self._clock()
        with self._engine.begin() as connection:
            user = self._user(connection, username)
            if org_id is not None and user.org_id != org_id:
                raise IdentityError(f"no user {username!r} in organisation {org_id!r}")
            connection.execute(update(UserRecord).where(UserRecord.id == user.id).values(disabled=disabled))
            if disabled:
                self._revoke_sessions(connection, user.id, now, "account disabled")
                connection.execute(update(ApiTokenRecord).where(ApiTokenRecord.user_id == user.id, ApiTokenRecord.revoked_at.is_(None)).values(revoked_at=now))
            self.audit.append(connection, "user.disable" if disabled else "user.enable", f"user:{username}", actor=actor)

    def change_password(self, principal: Principal, current: str, new: str) -> None:
        """Replace the caller's password (policy-checked); every other session of the account
        ends, so a thief logged in with the old password is out."""
        passwords.check_policy(new, principal.user_id)
        now = self._clock()
        with self._engine.begin() as connection:
            user = self._user(connection, principal.user_id)
            if not passwords.verify_password(user.password_hash, current):
                raise IdentityError("the current password is wrong")
            connection.execute(update(UserRecord).where(UserRecord.id == user.id).values(password_hash=passwords.hash_password(new)))
            connection.execute(
                update(SessionRecord)
                .where(SessionRecord.user_id == user.id, SessionRecord.id != principal.session_id, SessionRecord.revoked_at.is_(None))
                .values(revoked_at=now, revoked_reason="password changed")
            )
            self.audit.append(connection, "user.password.change", f"user:{principal.user_id}", actor=f"user:{principal.user_id}")

    def _user(self, connection: Connection, username: str) -> Row[Any]:
        user = connection.execute(select(UserRecord).where(UserRecord.username == username)).one_or_none()
        if user is None:
            raise IdentityError(f"no user {username!r}")
        return user

    @staticmethod
    def _roles(connection: Connection, user_id: str) -> frozenset[Role]:
        return frozenset(Role(r) for r in connection.execute(select(UserRoleRecord.role).where(UserRoleRecord.user_id == user_id)).scalars())

    # --- login, refresh, logout -----------------------------------------------------------

    def login(self, username: str, password: str, totp_code: str | None, source: str) -> TokenPair:
        """Password (+ TOTP where required) -> access and refresh tokens; LoginRefused with
        the same message for an unknown user and a wrong password (no account enumeration)."""
        now = self._clock()
        keys = [throttle.user_key(username), throttle.address_key(source)]
        with self._engine.begin() as connection:
            locked = throttle.locked_for(connection, keys, now)
        if locked is not None:
            self._audit_refusal(username, source, "locked")
            raise LoginRefused(f"too many failed logins; try again in {int(locked.total_seconds()) + 1} s", retry_after=locked)
        with self._engine.begin() as connection:
            user = connection.execute(select(UserRecord).where(UserRecord.username == username)).one_or_none()
            password_ok = passwords.verify_password(user.password_hash if user else passwords.DUMMY_HASH, password)
            if user is None or not password_ok or user.disabled:
                self._fail(connection, username, source, now, "bad password" if user else "unknown user")
                refusal = LoginRefused("invalid username or password")
            else:
                if passwords.needs_rehash(user.password_hash):
                    connection.execute(update(UserRecord).where(UserRecord.id == user.id).values(password_hash=passwords.hash_password(password)))
                roles = self._roles(connection, user.id)
                refusal = self._second_factor(connection, user, roles, totp_code, source, now)
                if refusal is None:
                    return self._open_session(connection, user, roles, now, source)
        raise refusal

    def _second_factor(self, connection: Connection, user: Row[Any], roles: frozenset[Role], code: str | None, source: str, now: datetime) -> LoginRefused | None:
        mfa_required = bool(roles & self.policy.mfa_required_roles) or user.totp_secret is not None
        if not mfa_required:
            return None
        if user.totp_secret is None:
            self.audit.append(connection, "auth.login.refused", f"user:{user.username}", {"source": source, "reason": "mfa not enrolled"})
            return LoginRefused("your role requires MFA but the account has no TOTP enrolment; ask an administrator to re-create it")
        if not code:
            return LoginRefused("a TOTP code is required for this account (field 'totp')", totp_required=True)
        try:
            secret = self._sealer.open(user.totp_secret, user.username)
        except SealBroken as exc:
            self.audit.append(connection, "auth.login.refused", f"user:{user.username}", {"source": source, "reason": "sealed totp secret broken"})
            return LoginRefused(f"{exc}; ask an administrator to re-create the account's MFA enrolment")
        step = totp.accepted_step(secret, code, now, user.last_totp_step)
        if step is None:
            self._fail(connection, user.username, source, now, "bad totp code")
            return LoginRefused("invalid or already used TOTP code", totp_required=True)
        connection.execute(update(UserRecord).where(UserRecord.id == user.id).values(last_totp_step=step))
        return None

    def _fail(self, connection: Connection, username: str, source: str, now: datetime, reason: str) -> None:
        throttle.record_failure(connection, self.policy, throttle.user_key(username), self.policy.lockout_threshold, now)
        throttle.record_failure(connection, self.policy, throttle.address_key(source), self.policy.address_threshold, now)
        self.audit.append(connection, "auth.login.failed", f"user:{username}", {"source": source, "reason": reason}, actor=f"anonymous@{source}")

    def _audit_refusal(self, username: str, source: str, reason: str) -> None:
        with self._engine.begin() as connection:
            self.audit.append(connection, "auth.login.refused", f"user:{username}", {"source": source, "reason": reason}, actor=f"anonymous@{source}")

    def _open_session(self, connection: Connection, user: Row[Any], roles: frozenset[Role], now: datetime, source: str) -> TokenPair:
        throttle.clear(connection, throttle.user_key(user.username))
        method = AuthMethod.PASSWORD_TOTP if user.totp_secret else AuthMethod.PASSWORD
        session_id = _new_id()
        connection.execute(
            SessionRecord.__table__.insert().values(
                id=session_id, user_id=user.id, auth_method=method.value, created_at=now, last_seen_at=now,
                expires_at=now + self.policy.session_max, revoked_at=None, revoked_reason=None,
            )
        )
        principal = Principal(user_id=user.username, org_id=user.org_id, roles=roles, auth_method=method, session_id=session_id)
        self.audit.append(connection, "auth.login", f"user:{user.username}", {"source": source, "method": method.value, "session": session_id}, actor=f"user:{user.username}")
        return self._tokens(connection, principal, now)

    def _tokens(self, connection: Connection, principal: Principal, now: datetime) -> TokenPair:
        assert principal.session_id is not None
        refresh = secrets.token_urlsafe(32)
        connection.execute(RefreshTokenRecord.__table__.insert().values(token_hash=_digest(refresh), session_id=principal.session_id, issued_at=now, used_at=None))
        access = tokens.issue_access_token(
            self._token_key, user_id=principal.user_id, org_id=principal.org_id, roles=tuple(sorted(r.value for r in principal.roles)),
            session_id=principal.session_id, now=now, ttl=self.policy.access_ttl,
        )
        return TokenPair(access_token=access, refresh_token=refresh, expires_in=int(self.policy.access_ttl.total_seconds()), principal=principal)

    def refresh(self, refresh_token: str) -> TokenPair:
        """A new token pair for a one-time refresh token. A token presented twice means it was
        stolen (or the client is broken): the whole session (token family) is revoked."""
        now = self._clock()
        with self._engine.begin() as connection:
            row = connection.execute(select(RefreshTokenRecord).where(RefreshTokenRecord.token_hash == _digest(refresh_token))).one_or_none()
            if row is None:
                raise AuthenticationFailed("unknown refresh token; log in again")
            claimed = connection.execute(
                update(RefreshTokenRecord).where(RefreshTokenRecord.token_hash == row.token_hash, RefreshTokenRecord.used_at.is_(None)).values(used_at=now)
            ).rowcount
            session, user = self._live_session(connection, row.session_id, now)
            if claimed != 1:
                self._revoke_session(connection, session.id, now, "refresh token replayed")
                self.audit.append(connection, "auth.refresh.replay", f"user:{user.username}", {"session": session.id}, actor=f"user:{user.username}")
                replayed = True
            else:
                replayed = False
                principal = Principal(user.username, user.org_id, self._roles(connection, user.id), AuthMethod(session.auth_method), session.id)
                pair = self._tokens(connection, principal, now)
        if replayed:
            raise AuthenticationFailed("this refresh token was already used; the session is revoked for safety - log in again")
        return pair

    def logout(self, principal: Principal) -> None:
        now = self._clock()
        with self._engine.begin() as connection:
            if principal.auth_method is not AuthMethod.API_TOKEN and principal.session_id:
                self._revoke_session(connection, principal.session_id, now, "logout")
            self.audit.append(connection, "auth.logout", f"user:{principal.user_id}", {"session": principal.session_id}, actor=f"user:{principal.user_id}")

    def _revoke_session(self, connection: Connection, session_id: str, now: datetime, reason: str) -> None:
        connection.execute(
            update(SessionRecord).where(SessionRecord.id == session_id, SessionRecord.revoked_at.is_(None)).values(revoked_at=now, revoked_reason=reason)
        )

    def _revoke_sessions(self, connection: Connection, user_id: str, now: datetime, reason: str) -> None:
        connection.execute(
            update(SessionRecord).where(SessionRecord.user_id == user_id, SessionRecord.revoked_at.is_(None)).values(revoked_at=now, revoked_reason=reason)
        )

    def _live_session(self, connection: Connection, session_id: str, now: datetime) -> tuple[Row[Any], Row[Any]]:
        """The session and its user, or AuthenticationFailed saying why it is over (an idle
        session is revoked on the spot, F-SRS-3)."""
        session = connection.execute(select(SessionRecord).where(SessionRecord.id == session_id)).one_or_none()
        if session is None:
            raise AuthenticationFailed("unknown session; log in again")
        user = connection.execute(select(UserRecord).where(UserRecord.id == session.user_id)).one()
        if session.revoked_at is not None:
            raise AuthenticationFailed(f"the session has ended ({session.revoked_reason}); log in again")
        if user.disabled:
            raise AuthenticationFailed("the account is disabled")
        if now >= as_utc(session.expires_at):
            raise AuthenticationFailed("the session has reached its maximum lifetime; log in again")
        if now - as_utc(session.last_seen_at) > self.policy.idle_timeout:
            self._revoke_session(connection, session.id, now, "idle timeout")
            raise AuthenticationFailed(f"the session was idle for more than {int(self.policy.idle_timeout.total_seconds())} s; log in again")
        return session, user

    # --- authenticating requests (rbac.Authenticator) ------------------------------------

    def authenticate(self, credential: str) -> Principal:
        now = self._clock()
        if credential.startswith(API_TOKEN_PREFIX):
            return self._authenticate_api_token(credential, now)
        try:
            claims = tokens.verify_access_token(self._token_key, credential, now)
        except tokens.TokenInvalid as exc:
            raise AuthenticationFailed(str(exc)) from exc
        with self._engine.begin() as connection:
            session, user = self._live_session(connection, claims.session_id, now)
            if now - as_utc(session.last_seen_at) >= _TOUCH_EVERY:
                connection.execute(update(SessionRecord).where(SessionRecord.id == session.id).values(last_seen_at=now))
            roles = self._roles(connection, user.id) & parse_roles(claims.roles)
        return Principal(user.username, user.org_id, roles, AuthMethod(session.auth_method), session.id)

    def _authenticate_api_token(self, credential: str, now: datetime) -> Principal:
        with self._engine.begin() as connection:
            token = connection.execute(select(ApiTokenRecord).where(ApiTokenRecord.token_hash == _digest(credential))).one_or_none()
            if token is None:
                raise AuthenticationFailed("unknown API token")
            user = connection.execute(select(UserRecord).where(UserRecord.id == token.user_id)).one()
            if token.revoked_at is not None:
                raise AuthenticationFailed("this API token was revoked")
            if token.expires_at is not None and now >= as_utc(token.expires_at):
                raise AuthenticationFailed("this API token has expired; create a new one")
            if user.disabled:
                raise AuthenticationFailed("the account is disabled")
            if token.last_used_at is None or now - as_utc(token.last_used_at) >= _TOUCH_EVERY:
                connection.execute(update(ApiTokenRecord).where(ApiTokenRecord.id == token.id).values(last_used_at=now))
            roles = self._roles(connection, user.id) & parse_roles(json.loads(token.roles))
        return Principal(user.username, user.org_id, roles, AuthMethod.API_TOKEN, token.id)

    # --- MFA enrolment --------------------------------------------------------------------

    def begin_mfa_enrolment(self, principal: Principal) -> totp.TotpEnrolment:
        """A new TOTP secret, pending until confirmed with a code (an enrolled account keeps
        its current secret until then)."""
        enrolment = totp.new_enrolment(principal.user_id)
        with self._engine.begin() as connection:
            connection.execute(update(UserRecord).where(UserRecord.username == principal.user_id).values(totp_pending=self._sealer.seal(enrolment.secret, principal.user_id)))
            self.audit.append(connection, "auth.mfa.enrol.begin", f"user:{principal.user_id}", actor=f"user:{principal.user_id}")
        return enrolment

    def confirm_mfa_enrolment(self, principal: Principal, code: str) -> None:
        now = self._clock()
        with self._engine.begin() as connection:
            user = self._user(connection, principal.user_id)
            if user.totp_pending is None:
                raise IdentityError("no MFA enrolment is pending; start one with POST /auth/mfa/enrol")
            try:
                pending = self._sealer.open(user.totp_pending, user.username)
            except SealBroken as exc:
                raise IdentityError(f"{exc}; start the enrolment again") from exc
            step = totp.accepted_step(pending, code, now, None)
            if step is None:
                raise IdentityError("the TOTP code does not match the pending enrolment; check the authenticator app's clock")
            connection.execute(update(UserRecord).where(UserRecord.id == user.id).values(totp_secret=user.totp_pending, totp_pending=None, last_totp_step=step))
            self.audit.append(connection, "auth.mfa.enrol.confirm", f"user:{principal.user_id}", actor=f"user:{principal.user_id}")

    # --- API tokens -----------------------------------------------------------------------

    def create_api_token(self, principal: Principal, name: str, roles: frozenset[Role] | None = None, ttl: timedelta | None = None) -> tuple[ApiTokenInfo, str]:
        """A new API token limited to `roles` (default: all of the caller's); the secret is
        returned once and only its hash is kept. Admin roles cannot be delegated to tokens:
        they would bypass the second factor."""
        if principal.auth_method is AuthMethod.API_TOKEN:
            raise IdentityError("API tokens cannot create API tokens; log in with your password")
        wanted = principal.roles if roles is None else roles
        if not wanted:
            raise IdentityError("an API token needs at least one role")
        if wanted - principal.roles:
            raise IdentityError(f"you do not hold {', '.join(sorted(r.value for r in wanted - principal.roles))}")
        if wanted & ADMIN_ROLES:
            raise IdentityError("admin roles cannot be given to API tokens (they require MFA); choose non-admin roles")
        now = self._clock()
        secret = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
        info = ApiTokenInfo(id=_new_id(), name=name, roles=wanted, created_at=now, expires_at=now + (ttl or self.policy.api_token_ttl), revoked_at=None)
        with self._engine.begin() as connection:
            user = self._user(connection, principal.user_id)
            connection.execute(
                ApiTokenRecord.__table__.insert().values(
                    id=info.id, user_id=user.id, name=name, token_hash=_digest(secret), roles=json.dumps(sorted(r.value for r in wanted)),
                    created_at=now, expires_at=info.expires_at, revoked_at=None, last_used_at=None,
                )
            )
            self.audit.append(connection, "auth.api_token.create", f"api_token:{info.id}", {"name": name, "roles": sorted(r.value for r in wanted)}, actor=f"user:{principal.user_id}")
        return info, secret

    def api_tokens(self, principal: Principal) -> list[ApiTokenInfo]:
        with self._engine.connect() as connection:
            user = self._user(connection, principal.user_id)
            rows = connection.execute(select(ApiTokenRecord).where(ApiTokenRecord.user_id == user.id).order_by(ApiTokenRecord.created_at))
            return [
                ApiTokenInfo(row.id, row.name, parse_roles(json.loads(row.roles)), as_utc(row.created_at),
                             as_utc(row.expires_at) if row.expires_at else None, as_utc(row.revoked_at) if row.revoked_at else None)
                for row in rows
            ]

    def revoke_api_token(self, principal: Principal, token_id: str) -> None:
        with self._engine.begin() as connection:
            user = self._user(connection, principal.user_id)
            revoked = connection.execute(
                update(ApiTokenRecord).where(ApiTokenRecord.id == token_id, ApiTokenRecord.user_id == user.id, ApiTokenRecord.revoked_at.is_(None)).values(revoked_at=self._clock())
            ).rowcount
            if revoked != 1:
                raise IdentityError(f"you have no active API token {token_id!r}")
            self.audit.append(connection, "auth.api_token.revoke", f"api_token:{token_id}", actor=f"user:{principal.user_id}")

