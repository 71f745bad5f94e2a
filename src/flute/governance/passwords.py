"""Password policy and hashing (NF-SRS-1, URS-3).

Policy: at least 12 characters, not one of the most common passwords (or a trivial variant of
one), not containing the username. Hashes: argon2id with the library's current parameters;
`needs_rehash` lets a login upgrade an old hash transparently.
"""

from __future__ import annotations

from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH: Final[int] = 12

#: Frequent passwords of 12+ characters (and stems that people pad to reach a length rule);
#: a password equal to one, or to one followed by digits/punctuation, is refused.
COMMON_PASSWORDS: Final[frozenset[str]] = frozenset(
    {
        "password", "passw0rd", "password123", "password1234", "qwerty", "qwertyuiop", "qwerty123456",
        "123456789012", "1234567890", "111111111111", "000000000000", "abcdefghijkl", "abc123456789",
        "iloveyou", "letmein", "welcome", "welcome123", "admin", "administrator", "changeme", "changeit",
        "monkey", "dragon", "football", "baseball", "sunshine", "princess", "trustno1", "starwars",
        "superman", "master", "hospital", "flute", "secret", "default", "zaq12wsx", "1q2w3e4r5t6y",
        "qazwsxedcrfv", "asdfghjkl", "correcthorsebatterystaple",
    }
)

_HASHER: Final[PasswordHasher] = PasswordHasher()


class PasswordRejected(ValueError):
    """The password breaks the policy; the message says which rule and how to comply."""


def check_policy(password: str, username: str) -> None:
    """Raise PasswordRejected naming the first rule `password` breaks."""
    if len(password) < MIN_LENGTH:
        raise PasswordRejected(f"the password has {len(password)} characters; use at least {MIN_LENGTH} (a passphrase of several words is easiest)")
    lowered = password.lower()
    if username and username.lower() in lowered:
        raise PasswordRejected("the password contains the username; choose one that does not")
    stem = lowered.rstrip("0123456789!@#$%^&*?.-_ ")
    if lowered in COMMON_PASSWORDS or stem in COMMON_PASSWORDS:
        raise PasswordRejected("the password is one of the most common passwords (or a padded variant of one); choose an uncommon passphrase")
    if len(set(password)) < 4:
        raise PasswordRejected("the password repeats too few distinct characters; choose a less predictable one")


def hash_password(password: str) -> str:
    """An argon2id hash (salted, self-describing: parameters are part of the string)."""
    return _HASHER.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _HASHER.check_needs_rehash(stored_hash)


#: A hash of a random password, verified against when the username is unknown, so that a
#: login for a missing account costs the same time as one with a wrong password.
DUMMY_HASH: Final[str] = hash_password("unused-dummy-password-for-timing")
