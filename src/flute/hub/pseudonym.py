"""Keyed pseudonyms for patients (F-PIL-6, NF-PIL-11).

pseudonym = HMAC-SHA256(hub key, source identity). The source identity is the Patient's first
business identifier (`system|value`), which links duplicate records of one person, or else
`namespace|Patient/id` with the hub's own namespace. Without the key (kept outside the
database) a pseudonym cannot be recomputed from a known identity, and two hubs with different
keys give the same person unrelated pseudonyms.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any


class Pseudonymizer:
    """Computes a hub's pseudonyms; holds the key, never stores the identities."""

    def __init__(self, key: bytes, namespace: str) -> None:
        if len(key) < 16:
            raise ValueError(f"pseudonym key too short ({len(key)} bytes); a hub key has 32 random bytes")
        self._key = key
        self._namespace = namespace

    def source_identity(self, patient: dict[str, Any]) -> str:
        for identifier in patient.get("identifier") or ():
            if isinstance(identifier, dict):
                system, value = identifier.get("system"), identifier.get("value")
                if isinstance(system, str) and isinstance(value, str) and system and value:
                    return f"{system}|{value}"
        return f"{self._namespace}|Patient/{patient.get('id')}"

    def for_patient(self, patient: dict[str, Any]) -> str:
        return self.of_identity(self.source_identity(patient))

    def of_identity(self, identity: str) -> str:
        return hmac.new(self._key, identity.encode("utf-8"), hashlib.sha256).hexdigest()
