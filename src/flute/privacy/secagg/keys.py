"""Key material of one round: X25519 agreement, HKDF derivation, Ed25519 signing.

Every derived key is bound to its context (purpose, round id, and the ordered pair of
hub ids) through HKDF-SHA256's `info`, so a key can never be reused across rounds,
pairs or purposes even if a public key were replayed. Hubs sign what they advertise
with their long-term enrolled Ed25519 key; the verifier holds hub_id -> public key.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from flute.privacy.secagg.errors import AuthenticationError
from flute.privacy.secagg.wire import Writer

PUBLIC_KEY_BYTES = 32
PROTOCOL_LABEL = "flute-secagg/v1"


@dataclass(frozen=True)
class RoundKeyPair:
    """An ephemeral X25519 key pair used for exactly one round."""

    private: X25519PrivateKey

    @classmethod
    def generate(cls) -> RoundKeyPair:
        return cls(X25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, data: bytes) -> RoundKeyPair:
        return cls(X25519PrivateKey.from_private_bytes(data))

    def private_bytes(self) -> bytes:
        return self.private.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )

    def public_bytes(self) -> bytes:
        return public_key_bytes(self.private.public_key())


def public_key_bytes(key: X25519PublicKey | Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def check_round_public_key(public: bytes, what: str) -> None:
    """Raise AuthenticationError unless `public` is a usable X25519 key (32 bytes, not low order).

    Checked when keys are advertised, so one hub's bad key is refused up front instead of
    failing every peer's key agreement later.
    """
    try:
        X25519PrivateKey.generate().exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError as exc:
        raise AuthenticationError(f"{what} is not a usable X25519 public key: {exc}") from exc


def derive_pair_key(
    own: RoundKeyPair, peer_public: bytes, purpose: str, round_id: str, own_id: int, peer_id: int
) -> bytes:
    """32-byte key shared by hubs `own_id` and `peer_id` for `purpose` in `round_id`.

    Both sides obtain the same key because the pair enters `info` in sorted order.
    """
    try:
        shared = own.private.exchange(X25519PublicKey.from_public_bytes(peer_public))
    except ValueError as exc:  # all-zero output: a low-order point was advertised
        raise AuthenticationError(f"hub {peer_id} advertised an invalid X25519 key for {purpose}") from exc
    low, high = sorted((own_id, peer_id))
    info = Writer(PROTOCOL_LABEL.encode()).text(purpose).text(round_id).u64(low).u64(high).to_bytes()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(shared)


def verify(identity: Ed25519PublicKey, signature: bytes, payload: bytes, what: str) -> None:
    """Raise AuthenticationError naming `what` unless `signature` is valid for `payload`."""
    try:
        identity.verify(signature, payload)
    except InvalidSignature as exc:
        raise AuthenticationError(f"invalid signature on {what}") from exc
