"""Signed access tokens: compact JWS (HS256, RFC 7515/7519 format) made with `cryptography`.

An access token is short-lived and self-contained (sub, org, roles, sid, jti, iat, exp); the
service still checks on every request that its session is alive, so logout, idle timeout and
a refresh-token replay end access at once, not when the token expires.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac

_HEADER: Final[bytes] = b'{"alg":"HS256","typ":"JWT"}'
KEY_BYTES: Final[int] = 32


class TokenInvalid(ValueError):
    """Not a token this service issued, tampered with, or expired (message says which)."""


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    org_id: str
    roles: tuple[str, ...]
    session_id: str
    token_id: str
    issued_at: int
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, message: bytes) -> bytes:
    signer = hmac.HMAC(key, hashes.SHA256())
    signer.update(message)
    return signer.finalize()


def issue_access_token(key: bytes, *, user_id: str, org_id: str, roles: tuple[str, ...], session_id: str, now: datetime, ttl: timedelta) -> str:
    issued = int(now.timestamp())
    claims = {
        "sub": user_id, "org": org_id, "roles": list(roles), "sid": session_id,
        "jti": secrets.token_hex(16), "iat": issued, "exp": issued + int(ttl.total_seconds()),
    }
    signing_input = f"{_b64(_HEADER)}.{_b64(json.dumps(claims, separators=(',', ':')).encode())}".encode("ascii")
    return f"{signing_input.decode('ascii')}.{_b64(_mac(key, signing_input))}"


def looks_like_access_token(token: str) -> bool:
    return token.count(".") == 2


def verify_access_token(key: bytes, token: str, now: datetime) -> AccessClaims:
    """The claims of a valid, unexpired token signed with `key`; TokenInvalid otherwise."""
    try:
        header, payload, signature = token.split(".")
        verifier = hmac.HMAC(key, hashes.SHA256())
        verifier.update(f"{header}.{payload}".encode("ascii"))
        verifier.verify(_unb64(signature))
        if _unb64(header) != _HEADER:
            raise TokenInvalid("unsupported token header")
        claims: dict[str, Any] = json.loads(_unb64(payload))
        parsed = AccessClaims(
            user_id=str(claims["sub"]), org_id=str(claims["org"]), roles=tuple(str(r) for r in claims["roles"]),
            session_id=str(claims["sid"]), token_id=str(claims["jti"]), issued_at=int(claims["iat"]), expires_at=int(claims["exp"]),
        )
    except (ValueError, KeyError, TypeError, UnicodeError, InvalidSignature) as exc:
        raise TokenInvalid("the access token is malformed or its signature does not verify") from exc
    if parsed.expires_at <= int(now.timestamp()):
        raise TokenInvalid("the access token has expired; use POST /auth/refresh or log in again")
    return parsed
