"""TOTP secrets sealed at rest (URS-3, F-SRS-1): AES-256-GCM under a key derived from the
node's token key (which lives outside the database), bound to the account's username. A copy
of the database alone therefore does not yield the second factor of any account, and a
sealed secret moved to another account's row does not open."""

from __future__ import annotations

import base64
import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_PREFIX: Final[str] = "v1:"
_NONCE_BYTES: Final[int] = 12


class SealBroken(ValueError):
    """A sealed value that does not open with this node's key for this account."""


class Sealer:
    def __init__(self, node_key: bytes) -> None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"flute totp secret sealing").derive(node_key)
        self._aead = AESGCM(derived)

    def seal(self, secret: str, account: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = nonce + self._aead.encrypt(nonce, secret.encode("ascii"), account.encode("utf-8"))
        return _PREFIX + base64.urlsafe_b64encode(sealed).decode("ascii")

    def open(self, sealed: str, account: str) -> str:
        if not sealed.startswith(_PREFIX):
            raise SealBroken("not a sealed value of this FLUTE version")
        try:
            raw = base64.urlsafe_b64decode(sealed[len(_PREFIX):])
            return self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], account.encode("utf-8")).decode("ascii")
        except (InvalidTag, ValueError) as exc:
            raise SealBroken("the TOTP secret does not open with this node's key (keys replaced, or the row was tampered with)") from exc
