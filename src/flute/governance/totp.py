"""Time-based one-time passwords (RFC 6238) as the second factor (F-SRS-1, URS-3).

A code is accepted within one 30-second step of the server's clock either way, and never twice:
the caller stores the step of the last accepted code and passes it back in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

import pyotp

ISSUER: Final[str] = "FLUTE"
VALID_WINDOW: Final[int] = 1


@dataclass(frozen=True)
class TotpEnrolment:
    secret: str
    provisioning_uri: str


def new_enrolment(username: str, issuer: str = ISSUER) -> TotpEnrolment:
    """A fresh secret and the otpauth:// URI an authenticator app scans."""
    secret = pyotp.random_base32()
    return TotpEnrolment(secret=secret, provisioning_uri=pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer))


def accepted_step(secret: str, code: str, at: datetime, last_step: int | None) -> int | None:
    """The time step `code` belongs to when it is valid at `at` and newer than `last_step`
    (a replayed code is refused); None otherwise."""
    totp = pyotp.TOTP(secret)
    step_now = int(at.timestamp()) // totp.interval
    for offset in range(-VALID_WINDOW, VALID_WINDOW + 1):
        step = step_now + offset
        if (last_step is None or step > last_step) and pyotp.utils.strings_equal(code.strip(), totp.generate_otp(step)):
            return step
    return None


def current_code(secret: str, at: datetime) -> str:
    """The code an authenticator app shows at `at` (for enrolment checks and tests)."""
    return pyotp.TOTP(secret).at(at)
