"""The first administrator of a node, with no default credentials anywhere (URS-3, NF-SRS-1):
a random password and a fresh TOTP secret, created once and returned once for the operator to
hand over; a second initialisation is refused."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from flute.governance.identity import IdentityService
from flute.governance.rbac import Role
from flute.governance.totp import TotpEnrolment

PASSWORD_BYTES = 18  # 24 URL-safe characters, 144 bits


class AlreadyInitialised(RuntimeError):
    """The node already has accounts; a first admin exists."""


@dataclass(frozen=True)
class FirstAdmin:
    username: str
    org_id: str
    role: Role
    password: str
    totp: TotpEnrolment


def create_first_admin(identity: IdentityService, *, username: str, org_id: str, org_name: str, role: Role) -> FirstAdmin:
    """Create the organisation and its first admin (an admin role: MFA enrolled at once)."""
    if role not in identity.policy.mfa_required_roles:
        raise ValueError(f"the first account must be an administrator, not {role.value}")
    existing = identity.user_count()
    if existing:
        raise AlreadyInitialised(f"this node already has {existing} account(s); the first admin was created before - use it to add users")
    identity.ensure_organisation(org_id, org_name)
    password = secrets.token_urlsafe(PASSWORD_BYTES)
    created = identity.create_user(username, org_id, frozenset({role}), password)
    assert created.totp is not None, "admin accounts are always enrolled in TOTP"
    return FirstAdmin(username=username, org_id=org_id, role=role, password=password, totp=created.totp)
