"""The deployment's PKI: CA, coordinator certificate, hub keys and the enrolment list
(URS-4, F-SRS-6: TLS trust; F-PIL-12, NF-SRS-5: only enrolled hubs authenticate)."""

from __future__ import annotations

import ipaddress
import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from typer.testing import CliRunner

from flute.cli.main import app
from flute.engine import pki


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_deploy_pki_init_issues_a_server_certificate_the_ca_signed(tmp_path: Path) -> None:
    layout = pki.init_pki(tmp_path / "pki", ["coordinator.example.org", "10.1.2.3"])
    ca = x509.load_pem_x509_certificate(layout.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(layout.server_cert.read_bytes())
    server.verify_directly_issued_by(ca)
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == {"coordinator.example.org", "localhost"}
    assert set(sans.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("10.1.2.3"), ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")
    }
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert _mode(layout.ca_key) == 0o600 and _mode(layout.server_key) == 0o600
    assert pki.enrolled_hubs(layout.root) == {}


def test_deploy_pki_init_refuses_to_replace_an_existing_ca(tmp_path: Path) -> None:
    pki.init_pki(tmp_path)
    before = (tmp_path / "ca.pem").read_bytes()
    with pytest.raises(pki.PkiError, match="already holds a certificate authority"):
        pki.init_pki(tmp_path)
    assert (tmp_path / "ca.pem").read_bytes() == before


def test_deploy_pki_hub_key_is_the_openssh_ecdsa_key_supernodes_load(tmp_path: Path) -> None:
    pki.init_pki(tmp_path)
    key = pki.issue_hub_key(tmp_path, "hospital-a")
    assert key.private_key_path is not None and _mode(key.private_key_path) == 0o600
    private = serialization.load_ssh_private_key(key.private_key_path.read_bytes(), password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey) and isinstance(private.curve, ec.SECP384R1)
    derived = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    assert pki.enrolled_hubs(tmp_path) == {"hospital-a": derived.decode()}
    assert pki.public_key_pem(key.public_key_openssh) == private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pki.check_hub_private_key(key.private_key_path)


def test_deploy_pki_hub_made_key_is_enrolled_without_its_private_half(tmp_path: Path) -> None:
    pki.init_pki(tmp_path)
    hub_key = ec.generate_private_key(ec.SECP256R1())
    public_file = tmp_path / "hub.pub"
    public_file.write_bytes(hub_key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH))
    enrolled = pki.enrol_hub_public_key(tmp_path, "hospital-b", public_file)
    assert enrolled.private_key_path is None
    assert pki.enrolled_hubs(tmp_path)["hospital-b"] == public_file.read_text()


def test_deploy_pki_refusals_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(pki.PkiError, match="flute pki init"):
        pki.issue_hub_key(tmp_path / "nowhere", "hospital-a")
    pki.init_pki(tmp_path)
    with pytest.raises(pki.PkiError, match="not allowed"):
        pki.issue_hub_key(tmp_path, "../etc")
    first = pki.issue_hub_key(tmp_path, "hospital-a")
    with pytest.raises(pki.PkiError, match="already has a key"):
        pki.issue_hub_key(tmp_path, "hospital-a")
    reused = tmp_path / "reused.pub"
    reused.write_text(first.public_key_openssh)
    with pytest.raises(pki.PkiError, match="already enrolled for hub 'hospital-a'"):
        pki.enrol_hub_public_key(tmp_path, "hospital-c", reused)
    edwards = tmp_path / "ed.pub"
    edwards.write_bytes(
        ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    )
    with pytest.raises(pki.PkiError, match="needs an ECDSA key"):
        pki.enrol_hub_public_key(tmp_path, "hospital-d", edwards)
    with pytest.raises(pki.PkiError, match="is not an unencrypted OpenSSH private key"):
        pki.check_hub_private_key(tmp_path / "ca.pem")
    (tmp_path / "enrolment.json").write_text(json.dumps({"hubs": ["hospital-a"]}))
    with pytest.raises(pki.PkiError, match="must map hub names"):
        pki.enrolled_hubs(tmp_path)


def test_deploy_pki_cli_init_and_issue(tmp_path: Path) -> None:
    runner = CliRunner()
    done = runner.invoke(app, ["pki", "init", "--dir", str(tmp_path / "pki"), "--hosts", "flute.example.org"])
    assert done.exit_code == 0, done.output
    done = runner.invoke(app, ["pki", "issue", "--dir", str(tmp_path / "pki"), "--hub", "hospital-a"])
    assert done.exit_code == 0, done.output
    assert "ecdsa-sha2-nistp384" in done.output
    refused = runner.invoke(app, ["pki", "issue", "--dir", str(tmp_path / "missing"), "--hub", "hospital-a"])
    assert refused.exit_code == 2
    assert "flute pki init" in refused.output
