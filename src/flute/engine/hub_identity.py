"""Where the engine finds identity keys for secure aggregation.

A hub's PRIVATE key: its hub home's identity file (`flute.hub.identity`), or, for in-memory hubs
of an embedded run only, a key generated for that run and handed over in the node config
('memory-identity'; a deployed SuperNode has no in-memory source, so this path cannot be used
there). PUBLIC keys: an enrolment list mapping hub name -> raw Ed25519 public key (hex). The
coordinator reads it from the run config; every hub reads its OWN copy from its node config, so
a coordinator cannot substitute a peer's key (URS-15). The value of either key is the JSON text
of the list or the path of a JSON file holding it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from flute.engine.sources import HUB_HOME_KEY, MEMORY_SOURCE_KEY

ENROLMENT_KEY: Final = "secagg-enrolment"
"""run_config (coordinator) and node_config (each hub): the enrolled identity keys."""

MEMORY_IDENTITY_KEY: Final = "memory-identity"
"""node_config, embedded in-memory hubs only: the hub's private identity key (hex)."""


class EnrolmentError(ValueError):
    """An enrolment list or identity key is missing or malformed; the message says how to fix it."""


def public_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def private_hex(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()).hex()


def enrolment_json(public_keys: Mapping[str, str]) -> str:
    return json.dumps({"hubs": dict(sorted(public_keys.items()))})


def parse_enrolment(value: object, *, where: str) -> dict[str, Ed25519PublicKey]:
    """hub name -> enrolled public key, from the JSON text or a JSON file path in `value`."""
    if not isinstance(value, str) or not value:
        raise EnrolmentError(f"{where} lacks {ENROLMENT_KEY!r}: secure aggregation needs the enrolled hub identity keys")
    text = value if value.lstrip().startswith("{") else _read(Path(value), where)
    try:
        hubs = json.loads(text)["hubs"]
        return {str(name): Ed25519PublicKey.from_public_bytes(bytes.fromhex(key)) for name, key in hubs.items()}
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as exc:
        raise EnrolmentError(f"{where} {ENROLMENT_KEY}: expected {{\"hubs\": {{NAME: HEX_ED25519_PUBLIC_KEY}}}} ({exc})") from exc


def hub_identity(node_config: Mapping[str, object]) -> Ed25519PrivateKey:
    """This hub's private identity key (see the module docstring)."""
    home = node_config.get(HUB_HOME_KEY)
    if isinstance(home, str) and home:
        from flute.hub.identity import identity_key

        return identity_key(Path(home))
    secret = node_config.get(MEMORY_IDENTITY_KEY)
    if node_config.get(MEMORY_SOURCE_KEY) is not None and isinstance(secret, str):
        return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(secret))
    raise EnrolmentError(f"node config has no {HUB_HOME_KEY!r}: a hub needs its home's identity key for secure aggregation")


def _read(path: Path, where: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EnrolmentError(f"{where} {ENROLMENT_KEY}: cannot read {path} ({exc.strerror})") from None
