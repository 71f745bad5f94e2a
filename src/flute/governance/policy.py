"""Security settings of a service (F-SRS-1/3, NF-SRS-1): token lifetimes, idle timeout,
lockout and back-off, and which roles must use a second factor."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from flute.governance.rbac import ADMIN_ROLES, Role


@dataclass(frozen=True)
class SecurityPolicy:
    """`idle_timeout` ends a session nobody used for that long (refreshing does not count as
    use). After `lockout_threshold` consecutive failures for one account (or
    `address_threshold` from one source address) further attempts are refused for
    `lockout_base * 2**(failures - threshold)`, at most `lockout_max`, without even checking
    the password (brute force gains nothing by trying faster)."""

    access_ttl: timedelta = timedelta(minutes=10)
    session_max: timedelta = timedelta(hours=12)
    idle_timeout: timedelta = timedelta(minutes=15)
    lockout_threshold: int = 5
    address_threshold: int = 20
    lockout_base: timedelta = timedelta(seconds=2)
    lockout_max: timedelta = timedelta(minutes=15)
    mfa_required_roles: frozenset[Role] = field(default_factory=lambda: ADMIN_ROLES)
    api_token_ttl: timedelta = timedelta(days=90)

    def __post_init__(self) -> None:
        for name in ("access_ttl", "session_max", "idle_timeout", "lockout_base", "lockout_max", "api_token_ttl"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"security policy: {name} must be positive")
        if not ADMIN_ROLES <= self.mfa_required_roles:
            raise ValueError("security policy: MFA is mandatory for platform_admin and data_owner_admin (URS-3)")
        if self.lockout_threshold < 1 or self.address_threshold < self.lockout_threshold:
            raise ValueError("security policy: lockout_threshold >= 1 and address_threshold >= lockout_threshold")

    def back_off(self, failures: int, threshold: int) -> timedelta | None:
        """How long to refuse after `failures` consecutive failures (None: not locked)."""
        if failures < threshold:
            return None
        return min(self.lockout_base * 2 ** min(failures - threshold, 30), self.lockout_max)
