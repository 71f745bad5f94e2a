"""signature.json: an Ed25519 signature over the canonical manifest bytes (F-PIL-23).

The manifest lists the SHA-256 of every other file, so one signature covers the whole artifact.
The signature is checked against the trusted key named by `key_id` before the manifest schema is
applied or any weight is read.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidSignature

from flute.deploy.errors import BadSignature, UnsignedArtifact, UntrustedKey
from flute.deploy.keys import SigningKey, TrustedKeys
from flute.deploy.manifest import SIGNATURE_FILE, canonical_bytes

ALGORITHM: Final = "Ed25519"


@dataclass(frozen=True)
class Signature:
    key_id: str
    value: bytes

    def to_json(self) -> bytes:
        document = {"algorithm": ALGORITHM, "key_id": self.key_id, "signature": base64.b64encode(self.value).decode("ascii")}
        return json.dumps(document, indent=2).encode("utf-8") + b"\n"

    @classmethod
    def from_json(cls, data: bytes, source: str) -> Signature:
        try:
            document = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UnsignedArtifact(f"{source}: {SIGNATURE_FILE} is not valid JSON ({exc}); re-sign the artifact") from None
        if not isinstance(document, dict) or document.get("algorithm") != ALGORITHM:
            raise UnsignedArtifact(f"{source}: {SIGNATURE_FILE} must be an object with algorithm {ALGORITHM!r}")
        key_id, value = document.get("key_id"), document.get("signature")
        if not isinstance(key_id, str) or not isinstance(value, str):
            raise UnsignedArtifact(f"{source}: {SIGNATURE_FILE} needs string fields key_id and signature")
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise BadSignature(f"{source}: the signature is not valid base64") from None
        return cls(key_id, raw)


def sign_manifest(document: dict[str, Any], key: SigningKey) -> Signature:
    return Signature(key.key_id, key.sign(canonical_bytes(document)))


def verify_manifest(document: dict[str, Any], signature: Signature, trusted: TrustedKeys, source: str) -> None:
    """Raises UntrustedKey or BadSignature; returns when a trusted key signed exactly this content."""
    public_key = trusted.get(signature.key_id)
    if public_key is None:
        raise UntrustedKey(
            f"{source}: signed with key {signature.key_id}, which this site does not trust (trusted: {trusted.describe()}); "
            "add the publisher's .pub file to the trust directory only if you trust that publisher"
        )
    try:
        public_key.verify(signature.value, canonical_bytes(document))
    except InvalidSignature:
        raise BadSignature(
            f"{source}: the signature by {signature.key_id} does not match the manifest; the manifest was changed after "
            "signing (or signed by another key with the same id); do not use this artifact"
        ) from None
