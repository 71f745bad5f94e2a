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


def _ed25519_hex() -> str:
    return ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    ).hex()


def test_deploy_pki_secagg_identities_form_their_own_enrolment_list(tmp_path: Path) -> None:
    """URS-15: hub identity keys for secure aggregation are enrolled beside the node keys."""
    from flute.engine.deploy import DeploymentError, study_bundle
    from flute.engine.hub_identity import ENROLMENT_KEY, parse_enrolment
    from flute.engine.spec import StudySpec

    pki.init_pki(tmp_path)
    study = {"study_id": "s", "name": "s", "cohort": {"variables": ["psa"]}, "model": {"name": "logistic_regression"},
             "evaluation": {"cv_folds": 0, "leave_one_hub_out": False}}  # fmt: skip
    spec = StudySpec.from_mapping({**study, "pets": {"mode": "secagg"}})
    with pytest.raises(DeploymentError, match="--secagg-key"):
        study_bundle(spec, tmp_path / "out", pki=tmp_path)
    a_hex = _ed25519_hex()
    first = pki.issue_hub_key(tmp_path, "hospital-a", a_hex.upper())
    assert first.secagg_public_hex == a_hex
    plain = pki.issue_hub_key(tmp_path, "hospital-b")
    assert pki.secagg_enrolment(tmp_path) == {"hospital-a": a_hex}
    # A hub enrolled without one adds it by re-enrolling its own node key.
    b_hex = _ed25519_hex()
    pki.enrol_hub_public_key(tmp_path, "hospital-b", tmp_path / "hubs" / "hospital-b.pub", b_hex)
    assert pki.enrolled_hubs(tmp_path)["hospital-b"] == plain.public_key_openssh
    assert pki.secagg_enrolment(tmp_path) == {"hospital-a": a_hex, "hospital-b": b_hex}

    run_config = study_bundle(spec, tmp_path / "out", pki=tmp_path).run_config
    assert set(parse_enrolment(run_config[ENROLMENT_KEY], where="test")) == {"hospital-a", "hospital-b"}
    assert ENROLMENT_KEY not in study_bundle(StudySpec.from_mapping(study), tmp_path / "out", pki=tmp_path).run_config


def test_deploy_pki_secagg_refusals_leave_nothing_half_enrolled(tmp_path: Path) -> None:
    pki.init_pki(tmp_path)
    with pytest.raises(pki.PkiError, match="64 hex digits"):
        pki.issue_hub_key(tmp_path, "hospital-a", "not-a-key")
    assert not (tmp_path / "hubs" / "hospital-a.key").exists() and pki.enrolled_hubs(tmp_path) == {}
    shared = _ed25519_hex()
    pki.issue_hub_key(tmp_path, "hospital-a", shared)
    with pytest.raises(pki.PkiError, match="already enrolled for hub 'hospital-a'"):
        pki.issue_hub_key(tmp_path, "hospital-b", shared)
    (tmp_path / "secagg-enrolment.json").write_text(json.dumps({"hubs": {"hospital-a": "00"}}))
    with pytest.raises(pki.PkiError, match="copy it again"):
        pki.secagg_enrolment(tmp_path)


def test_deploy_pki_cli_enrols_the_identity_a_hub_prints(tmp_path: Path) -> None:
    runner = CliRunner()
    home = tmp_path / "hub"
    assert runner.invoke(app, ["hub", "init", "--name", "hospital-a", "--home", str(home)]).exit_code == 0
    printed = runner.invoke(app, ["hub", "identity", "--home", str(home)])
    assert printed.exit_code == 0, printed.output
    assert runner.invoke(app, ["pki", "init", "--dir", str(tmp_path / "pki")]).exit_code == 0
    issued = runner.invoke(app, ["pki", "issue", "--dir", str(tmp_path / "pki"), "--hub", "hospital-a", "--home", str(home)])
    assert issued.exit_code == 0, issued.output
    assert pki.secagg_enrolment(tmp_path / "pki") == {"hospital-a": printed.output.strip()}
    both = runner.invoke(app, ["pki", "issue", "--dir", str(tmp_path / "pki"), "--hub", "x", "--home", str(home), "--secagg-key", "ab"])
    assert both.exit_code == 2 and "not both" in both.output
    not_a_hub = runner.invoke(app, ["hub", "identity", "--home", str(tmp_path / "nowhere")])
    assert not_a_hub.exit_code == 2
