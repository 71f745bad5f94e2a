"""A node's governance keys, kept in `governance-keys.toml` (0600) in its home directory,
outside the database: the key that signs access tokens and the audit key that MACs audit
entries. A copy of the database alone can therefore neither forge a login nor re-chain the
audit log without detection.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import tomli_w

KEYS_FILE: Final[str] = "governance-keys.toml"
KEY_BYTES: Final[int] = 32


class NodeKeyError(RuntimeError):
    """The key file is unreadable, unsafe or damaged; the message says how to fix it."""


@dataclass(frozen=True)
class NodeKeys:
    token_key: bytes
    audit_key: bytes


def load_node_keys(home: Path) -> NodeKeys:
    """The home's keys, created (0600) when the home has none yet."""
    path = home / KEYS_FILE
    if not path.exists():
        _create(path)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise NodeKeyError(f"{path} has permissions {mode:o}; its keys must be private: chmod 600 {path}")
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
        keys = NodeKeys(token_key=bytes.fromhex(table["token_key"]), audit_key=bytes.fromhex(table["audit_key"]))
    except (tomllib.TOMLDecodeError, KeyError, ValueError, TypeError) as exc:
        raise NodeKeyError(f"{path} does not hold valid token_key and audit_key ({exc}); restore it from backup") from exc
    if len(keys.token_key) < KEY_BYTES or len(keys.audit_key) < KEY_BYTES:
        raise NodeKeyError(f"{path} holds keys shorter than {KEY_BYTES} bytes; restore it from backup")
    return keys


def _create(path: Path) -> None:
    """Write the keys to a private temporary file, then link it into place: the file appears
    complete or not at all, and when two processes race the first one's keys win."""
    path.parent.mkdir(parents=True, exist_ok=True)
    values = {"token_key": secrets.token_bytes(KEY_BYTES).hex(), "audit_key": secrets.token_bytes(KEY_BYTES).hex()}
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(tomli_w.dumps(values))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process created it first; use theirs
    finally:
        temporary.unlink()
