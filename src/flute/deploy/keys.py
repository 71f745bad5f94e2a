"""Publisher signing keys (Ed25519) and the public keys a site trusts (F-PIL-23, F-PIL-24).

A publisher (the study coordinator) creates a key pair once with `flute model keygen`: the
private key `NAME.key` (PKCS#8 PEM, mode 0600) signs artifacts; the public key `NAME.pub`
(SubjectPublicKeyInfo PEM) is handed to every site, which lists it in its trust directory (or
passes the file itself). A key is named by its id, `ed25519:` + the first 16 hex digits of the
SHA-256 of the raw public key, which signature.json carries.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from flute.deploy.errors import SigningKeyError

_KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
PUBLIC_SUFFIX = ".pub"
PRIVATE_SUFFIX = ".key"


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class SigningKey:
    """A publisher's private key with its id."""

    private_key: Ed25519PrivateKey

    @property
    def key_id(self) -> str:
        return key_id(self.private_key.public_key())

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message)


@dataclass(frozen=True)
class KeyPairFiles:
    private_key: Path
    public_key: Path
    key_id: str


@dataclass(frozen=True)
class TrustedKeys:
    """Public keys by key id, each with the file it came from (named in error messages)."""

    keys: Mapping[str, tuple[Ed25519PublicKey, str]]

    def get(self, wanted: str) -> Ed25519PublicKey | None:
        found = self.keys.get(wanted)
        return found[0] if found is not None else None

    def describe(self) -> str:
        return ", ".join(f"{kid} ({source})" for kid, (_, source) in sorted(self.keys.items())) or "none"


def generate_key_pair(out_dir: Path, name: str = "publisher") -> KeyPairFiles:
    """Write NAME.key (0600) and NAME.pub into `out_dir`; never overwrites an existing key."""
    if not _KEY_NAME.fullmatch(name):
        raise SigningKeyError(f"key name {name!r} must be 1-64 letters, digits, '.', '_' or '-'")
    out_dir.mkdir(parents=True, exist_ok=True)
    private_path, public_path = out_dir / f"{name}{PRIVATE_SUFFIX}", out_dir / f"{name}{PUBLIC_SUFFIX}"
    for path in (private_path, public_path):
        if path.exists():
            raise SigningKeyError(f"{path} already exists; choose another --name or directory (keys are never overwritten)")
    private_key = Ed25519PrivateKey.generate()
    pem = private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(pem)
    public_key = private_key.public_key()
    public_path.write_bytes(public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return KeyPairFiles(private_path, public_path, key_id(public_key))


def load_signing_key(path: Path) -> SigningKey:
    """A private key written by `generate_key_pair`; refused when others may read it."""
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"{path}: cannot read the signing key ({exc.strerror}); create one with `flute model keygen`") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SigningKeyError(f"{path}: the signing key is readable by other users (mode {stat.S_IMODE(mode):o}); run `chmod 600 {path}`")
    try:
        private_key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SigningKeyError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(private_key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path}: a {type(private_key).__name__}, but model artifacts are signed with Ed25519 keys")
    return SigningKey(private_key)


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"{path}: cannot read the public key ({exc.strerror})") from None
    try:
        public_key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SigningKeyError(f"{path}: not a PEM public key ({exc})") from None
    if not isinstance(public_key, Ed25519PublicKey):
        raise SigningKeyError(f"{path}: a {type(public_key).__name__}, but model artifacts are signed with Ed25519 keys")
    return public_key


def load_trusted_keys(*paths: Path) -> TrustedKeys:
    """The keys of every `*.pub` file named, or found directly in a named directory."""
    keys: dict[str, tuple[Ed25519PublicKey, str]] = {}
    for file in _public_key_files(paths):
        public_key = load_public_key(file)
        keys[key_id(public_key)] = (public_key, str(file))
    return TrustedKeys(keys)


def _public_key_files(paths: tuple[Path, ...]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(PUBLIC_SUFFIX))
        elif path.exists():
            yield path
        else:
            raise SigningKeyError(f"{path}: no such trust file or directory; pass a publisher's .pub file or a directory of them")
