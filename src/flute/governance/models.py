"""Governance tables, shared by the coordinator's database and every hub's database (F-PIL-20/21):
organisations, user accounts and their roles, login sessions with rotating refresh tokens,
API tokens, the brute-force throttle and the hash-chained audit log.

They live on their own metadata: the coordinator migrates them with
`flute.coordinator.migrations`, a hub with its own migration chain (`governance_0001`), which
mirrors them onto the hub's metadata through `flute.hub.governance_models`.

Secrets are never stored in a form that lets the database alone authenticate: passwords as
argon2id hashes, refresh and API tokens as SHA-256 of 256-bit random values.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ID_LENGTH: Final[int] = 32  # hex of 128 random bits
DIGEST_LENGTH: Final[int] = 64  # hex SHA-256 / HMAC-SHA256
NAME_LENGTH: Final[int] = 64


class GovernanceBase(DeclarativeBase):
    pass


class OrganisationRecord(GovernanceBase):
    """A hospital (data owner), a research institution or the platform operator."""

    __tablename__ = "gov_organisation"

    id: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class UserRecord(GovernanceBase):
    """A person. `totp_secret` (sealed) is set once MFA enrolment is confirmed; `totp_pending`
    holds an enrolment not yet confirmed with a code. `last_totp_step` refuses a code used twice."""

    __tablename__ = "gov_user"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    username: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("gov_organisation.id"))
    password_hash: Mapped[str] = mapped_column(Text)
    totp_secret: Mapped[str | None] = mapped_column(Text)  # sealed, see flute.governance.sealing
    totp_pending: Mapped[str | None] = mapped_column(Text)
    last_totp_step: Mapped[int | None] = mapped_column(BigInteger)
    disabled: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class UserRoleRecord(GovernanceBase):
    __tablename__ = "gov_user_role"

    user_id: Mapped[str] = mapped_column(ForeignKey("gov_user.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(32), primary_key=True)


class SessionRecord(GovernanceBase):
    """A login: lives until logout, expiry, idle timeout (F-SRS-3) or a refresh-token replay,
    which revokes it with all its refresh tokens (the token family)."""

    __tablename__ = "gov_session"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("gov_user.id"), index=True)
    auth_method: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_reason: Mapped[str | None] = mapped_column(Text)


class RefreshTokenRecord(GovernanceBase):
    """One refresh token of a session; usable once (`used_at`)."""

    __tablename__ = "gov_refresh_token"

    token_hash: Mapped[str] = mapped_column(String(DIGEST_LENGTH), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("gov_session.id"), index=True)
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ApiTokenRecord(GovernanceBase):
    """A long-lived credential for the SDK, limited to `roles` (JSON list, a subset of the
    owner's roles when it was created)."""

    __tablename__ = "gov_api_token"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("gov_user.id"), index=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    token_hash: Mapped[str] = mapped_column(String(DIGEST_LENGTH), unique=True)
    roles: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ThrottleRecord(GovernanceBase):
    """Consecutive failed logins for one key ('user:NAME' or 'addr:IP') and until when further
    attempts are refused (exponential back-off)."""

    __tablename__ = "gov_login_throttle"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    last_failure_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEntryRecord(GovernanceBase):
    """One audit entry (F-SRS-8, URS-10). `recorded_at` is the ISO-8601 text that was hashed,
    so the hash does not depend on how a database round-trips timestamps."""

    __tablename__ = "gov_audit_entry"
    __table_args__ = (Index("ix_gov_audit_entry_action", "action"),)

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    recorded_at: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(NAME_LENGTH))
    target: Mapped[str] = mapped_column(Text)
    details: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(DIGEST_LENGTH))
    hash: Mapped[str] = mapped_column(String(DIGEST_LENGTH))
    mac: Mapped[str | None] = mapped_column(String(DIGEST_LENGTH))


class AuditHeadRecord(GovernanceBase):
    """The chain head (a single row, id 1): its last sequence number and hash. Every append
    updates it in the same transaction, which serialises concurrent appends (the row lock) and
    lets `verify` notice a removed tail."""

    __tablename__ = "gov_audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(DIGEST_LENGTH))
    mac: Mapped[str | None] = mapped_column(String(DIGEST_LENGTH))
