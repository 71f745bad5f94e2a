"""Certificates and hub identity keys for the deployment engine (URS-4, F-SRS-6, F-PIL-12).

Two separate trust mechanisms protect a deployment:

* TLS (URS-4, F-SRS-6): a private certificate authority signs the coordinator's server
  certificate; every hub pins that CA, so model updates only travel over links it can verify.
* Node authentication (F-PIL-12, NF-SRS-5): each hub owns an ECDSA P-384 key (OpenSSH
  format, the format Flower's SuperNode loads); the coordinator keeps an enrolment list of
  hub public keys and registers exactly those with its SuperLink, which refuses every other
  node and checks a signature on every Fleet request.
* Secure-aggregation identities (URS-15): each hub home holds its own Ed25519 identity key
  (`flute.hub.identity`); `flute pki issue --secagg-key` records its public half in a second
  enrolment list, which the coordinator puts into a PETs study's run config and every hub
  serves from its own copy (`flute hub serve --pki`), so hubs verify each other's round keys.

Layout of a PKI directory (private keys are written 0600):

    ca.pem, ca.key                  certificate authority
    coordinator.pem, coordinator.key  coordinator (SuperLink) server certificate
    enrolment.json                  {"hubs": {NAME: "ecdsa-sha2-nistp384 ..."}}
    secagg-enrolment.json           {"hubs": {NAME: HEX_ED25519_PUBLIC_KEY}} (hubs with one only)
    hubs/NAME.key, hubs/NAME.pub    a hub key pair created by `issue_hub_key`

In a multi-machine deployment the hub only needs `ca.pem`, `secagg-enrolment.json` and its own
`hubs/NAME.key`; a hub may also create its key itself and send only the public key
(`enrol_hub_public_key`).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK_HOSTS: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
_CERT_VALIDITY = datetime.timedelta(days=825)
_HUB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_PRIVATE_MODE = 0o600


class PkiError(ValueError):
    """A PKI directory or key is missing, malformed or inconsistent (message says how to fix)."""


@dataclass(frozen=True)
class PkiLayout:
    """Where the files of one PKI directory live."""

    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.root / "coordinator.pem"

    @property
    def server_key(self) -> Path:
        return self.root / "coordinator.key"

    @property
    def enrolment(self) -> Path:
        return self.root / "enrolment.json"

    @property
    def secagg_enrolment(self) -> Path:
        return self.root / "secagg-enrolment.json"

    def hub_private_key(self, hub: str) -> Path:
        return self.root / "hubs" / f"{hub}.key"

    def hub_public_key(self, hub: str) -> Path:
        return self.root / "hubs" / f"{hub}.pub"

    def require_ca(self) -> None:
        """Fail with a fix-it message unless the CA certificate and key exist."""
        missing = [p for p in (self.ca_cert, self.ca_key) if not p.is_file()]
        if missing:
            raise PkiError(
                f"no certificate authority in {self.root} (missing {', '.join(p.name for p in missing)}); "
                f"create one with `flute pki init --dir {self.root}`"
            )

    def require_server_identity(self) -> None:
        """Fail unless the coordinator can serve TLS from this directory."""
        self.require_ca()
        missing = [p for p in (self.server_cert, self.server_key) if not p.is_file()]
        if missing:
            raise PkiError(
                f"no coordinator certificate in {self.root} (missing {', '.join(p.name for p in missing)}); "
                f"re-create the directory with `flute pki init --dir {self.root}`"
            )


@dataclass(frozen=True)
class HubKey:
    """A hub's authentication key pair on disk, its enrolled OpenSSH public key and, if enrolled,
    its secure-aggregation identity public key (hex)."""

    hub: str
    private_key_path: Path | None
    public_key_openssh: str
    secagg_public_hex: str | None = None


def init_pki(directory: Path, hosts: Sequence[str] = ()) -> PkiLayout:
    """Create a CA and the coordinator's server certificate (SANs: `hosts` plus loopback).

    Refuses to overwrite an existing CA: re-issuing it would silently invalidate every hub's
    pinned `ca.pem`.
    """
    layout = PkiLayout(directory)
    if layout.ca_cert.exists() or layout.ca_key.exists():
        raise PkiError(
            f"{directory} already holds a certificate authority; choose an empty directory "
            "(re-creating the CA would invalidate the ca.pem every hub pins)"
        )
    # The coordinator's own services (SuperExec, `flute coordinator submit`) reach the
    # SuperLink on loopback, so loopback names are always in the certificate.
    hosts = tuple(dict.fromkeys([h.strip() for h in hosts if h.strip()] + list(LOOPBACK_HOSTS)))
    directory.mkdir(parents=True, exist_ok=True)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "FLUTE deployment CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _CERT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key, server_cert = _issue_server_certificate(ca_key, ca_cert, hosts, now)

    _write_private(layout.ca_key, _pem_private_key(ca_key))
    layout.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_private(layout.server_key, _pem_private_key(server_key))
    layout.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    if not layout.enrolment.exists():
        _write_enrolment(layout.enrolment, {})
    return layout


def issue_hub_key(directory: Path, hub: str, secagg_public_hex: str | None = None) -> HubKey:
    """Create a hub's authentication key pair and enrol its public key (and, if given, the
    public half of its secure-aggregation identity key)."""
    layout = PkiLayout(directory)
    layout.require_ca()
    _check_hub_name(hub)
    secagg_key = _secagg_public_key(secagg_public_hex)
    private_path = layout.hub_private_key(hub)
    if private_path.exists():
        raise PkiError(f"hub {hub!r} already has a key at {private_path}; remove it first to re-issue")
    key = ec.generate_private_key(ec.SECP384R1())
    public_openssh = _openssh_public_key(key.public_key())
    private_path.parent.mkdir(parents=True, exist_ok=True)
    _write_private(
        private_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ),
    )
    layout.hub_public_key(hub).write_text(public_openssh + "\n", encoding="ascii")
    _enrol(layout, hub, public_openssh, secagg_key)
    return HubKey(hub=hub, private_key_path=private_path, public_key_openssh=public_openssh, secagg_public_hex=secagg_key)


def enrol_hub_public_key(
    directory: Path, hub: str, public_key_file: Path, secagg_public_hex: str | None = None
) -> HubKey:
    """Enrol a public key a hub created itself (its private key never leaves the hub), and, if
    given, the public half of its secure-aggregation identity key."""
    layout = PkiLayout(directory)
    layout.require_ca()
    _check_hub_name(hub)
    secagg_key = _secagg_public_key(secagg_public_hex)
    if not public_key_file.is_file():
        raise PkiError(f"public key file {public_key_file} does not exist")
    public_openssh = _openssh_public_key(_load_public_key(public_key_file))
    _enrol(layout, hub, public_openssh, secagg_key)
    return HubKey(hub=hub, private_key_path=None, public_key_openssh=public_openssh, secagg_public_hex=secagg_key)


def enrolled_hubs(directory: Path) -> dict[str, str]:
    """The enrolment list: hub name -> OpenSSH public key."""
    layout = PkiLayout(directory)
    if not layout.enrolment.is_file():
        raise PkiError(
            f"no enrolment list at {layout.enrolment}; create the PKI with `flute pki init --dir {directory}`"
        )
    try:
        document = json.loads(layout.enrolment.read_text(encoding="utf-8"))
        hubs = document["hubs"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise PkiError(f"{layout.enrolment} is not a FLUTE enrolment list ({exc})") from exc
    if not isinstance(hubs, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in hubs.items()):
        raise PkiError(f"{layout.enrolment}: 'hubs' must map hub names to OpenSSH public keys")
    return dict(hubs)


def secagg_enrolment(directory: Path) -> dict[str, str]:
    """The secure-aggregation enrolment list: hub name -> Ed25519 public key (hex); empty when
    no hub was enrolled with one."""
    path = PkiLayout(directory).secagg_enrolment
    if not path.is_file():
        return {}
    try:
        hubs = json.loads(path.read_text(encoding="utf-8"))["hubs"]
        return {str(name): _secagg_public_key(key) for name, key in hubs.items()}
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, PkiError) as exc:
        raise PkiError(
            f"{path} is not a FLUTE secure-aggregation enrolment list {{\"hubs\": {{NAME: HEX}}}} ({exc}); "
            "copy it again from the coordinator's PKI directory"
        ) from exc


def public_key_pem(openssh_public_key: str) -> bytes:
    """The SubjectPublicKeyInfo PEM form the SuperLink stores for a registered node."""
    key = serialization.load_ssh_public_key(openssh_public_key.encode("ascii"))
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def check_hub_private_key(path: Path) -> None:
    """Fail early, with the reason, if `path` is not a usable SuperNode authentication key."""
    if not path.is_file():
        raise PkiError(f"hub key {path} does not exist; create it with `flute pki issue --hub NAME`")
    try:
        key = serialization.load_ssh_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise PkiError(f"{path} is not an unencrypted OpenSSH private key ({exc})") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{path} holds a {type(key).__name__}; SuperNode authentication needs an ECDSA (NIST curve) key")


def issue_loopback_tls(directory: Path) -> PkiLayout:
    """A throw-away CA and `localhost` certificate for a process's loopback-only API.

    A SuperNode serves its Runtime API to the ClientApp processes it spawns; this gives that
    link TLS too without involving the coordinator's CA.
    """
    return init_pki(directory)


def _issue_server_certificate(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    hosts: Sequence[str],
    now: datetime.datetime,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _CERT_VALIDITY)
        .add_extension(x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _san(host: str) -> x509.GeneralName:
    host = host.strip()
    if not host:
        raise PkiError("empty host name in the certificate host list")
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _check_hub_name(hub: str) -> None:
    if not _HUB_NAME.match(hub):
        raise PkiError(
            f"hub name {hub!r} is not allowed: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )


def _load_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    data = path.read_bytes()
    try:
        key = (
            serialization.load_pem_public_key(data)
            if data.lstrip().startswith(b"-----BEGIN")
            else serialization.load_ssh_public_key(data)
        )
    except (ValueError, TypeError) as exc:
        raise PkiError(f"{path} is neither an OpenSSH nor a PEM public key ({exc})") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(
        key.curve, (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
    ):
        raise PkiError(f"{path}: SuperNode authentication needs an ECDSA key on NIST P-256, P-384 or P-521")
    return key


def _openssh_public_key(key: ec.EllipticCurvePublicKey) -> str:
    return key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode("ascii")


def _secagg_public_key(public_hex: str | None) -> str | None:
    """`public_hex` normalised to lower case, or a PkiError saying what a valid one looks like."""
    if public_hex is None:
        return None
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex.strip()))
    except ValueError as exc:
        raise PkiError(
            f"secure-aggregation key {public_hex!r} is not a raw Ed25519 public key in hex (64 hex digits); "
            "print it at the hub with `flute hub identity --home HUB_HOME`"
        ) from exc
    return public_hex.strip().lower()


def _enrol(layout: PkiLayout, hub: str, public_openssh: str, secagg_key: str | None) -> None:
    hubs = enrolled_hubs(layout.root) if layout.enrolment.exists() else {}
    secagg = secagg_enrolment(layout.root)
    for other, key in hubs.items():
        if key == public_openssh and other != hub:
            raise PkiError(f"this public key is already enrolled for hub {other!r}; every hub needs its own key")
    for other, key in secagg.items():
        if key == secagg_key and other != hub:
            raise PkiError(f"this secure-aggregation key is already enrolled for hub {other!r}; every hub home has its own")
    hubs[hub] = public_openssh
    _write_enrolment(layout.enrolment, hubs)
    if secagg_key is not None:
        secagg[hub] = secagg_key
        _write_enrolment(layout.secagg_enrolment, secagg)


def _write_enrolment(path: Path, hubs: dict[str, str]) -> None:
    text = json.dumps({"hubs": dict(sorted(hubs.items()))}, indent=2) + "\n"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _pem_private_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_private(path: Path, data: bytes) -> None:
    """Create `path` readable by its owner only, before any secret byte is written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _PRIVATE_MODE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, _PRIVATE_MODE)
