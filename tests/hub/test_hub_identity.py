"""The hub home's Ed25519 identity key for secure aggregation (URS-15): created once, private
(0600), stable across calls, refused when readable by others."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from flute.hub.home import HubHomeError
from flute.hub.identity import IDENTITY_FILE, identity_key, identity_public_hex
from flute.hub.node import init_hub


def test_identity_key_is_created_private_and_stable(tmp_path: Path) -> None:
    home = tmp_path / "hub"
    init_hub(home, "hub-a")
    first = identity_public_hex(home)
    assert stat.S_IMODE((home / IDENTITY_FILE).stat().st_mode) == 0o600
    assert identity_public_hex(home) == first and len(bytes.fromhex(first)) == 32
    signature = identity_key(home).sign(b"round")
    identity_key(home).public_key().verify(signature, b"round")


def test_identity_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "hub"
    init_hub(home, "hub-a")
    identity_key(home)
    (home / IDENTITY_FILE).chmod(0o644)
    with pytest.raises(HubHomeError, match="chmod 600"):
        identity_key(home)


def test_not_a_hub_home_is_refused(tmp_path: Path) -> None:
    with pytest.raises(HubHomeError, match="no hub at"):
        identity_key(tmp_path)
