"""The hub's long-term Ed25519 identity key for secure aggregation (URS-15, NF-SRS-5).

Every secure-aggregation round a hub joins is signed with this key (its key advertisement and
its confirmation of the survivor set); the coordinator and the other hubs verify it against the
hub's ENROLLED public key, so nobody - the aggregator included - can impersonate the hub or swap
its round keys. The private key is a secret of the hub home: its own file, created 0600 on first
use, never sent anywhere; `flute hub identity` style tooling shows the public half for enrolment.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from flute.hub.home import HubHomeError, load_config

IDENTITY_FILE = "secagg_identity.pem"


def identity_key(home: Path) -> Ed25519PrivateKey:
    """The hub's identity key, created on first use (atomically: two processes starting at once
    end up with the same key). Refuses a key file readable by group or others."""
    load_config(home)  # a home that is not a hub gets the hub's own clear error
    path = home / IDENTITY_FILE
    if not path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # created concurrently: use that one
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise HubHomeError(f"{path} has permissions {mode:o}; the identity key must be private: chmod 600 {path}")
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise HubHomeError(f"{path} does not hold an Ed25519 private key; move it away and let the hub create a new one, then re-enrol")
    return key


def identity_public_hex(home: Path) -> str:
    """The public key to enrol with the coordinator and the other hubs (raw 32 bytes, hex)."""
    return identity_key(home).public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
