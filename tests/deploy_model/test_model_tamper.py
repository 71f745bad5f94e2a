"""The security check before a model runs (F-PIL-23): every kind of tampering is refused with
its own error type and a message that names the problem; `flute model verify` exits 1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest
from typer.testing import CliRunner

from flute.cli.main import app
from flute.deploy.artifact import load_verified
from flute.deploy.errors import (
    ArtifactError,
    BadSignature,
    ManifestInvalid,
    TamperedArtifact,
    UnknownFormat,
    UnsignedArtifact,
    UntrustedKey,
)
from flute.deploy.keys import KeyPairFiles, generate_key_pair, load_signing_key, load_trusted_keys
from flute.deploy.signing import sign_manifest

from .conftest import resign_manifest


def _flip_weight_byte(path: Path) -> None:
    data = bytearray((path / "weights.safetensors").read_bytes())
    data[-3] ^= 0x01  # inside the last float64 of the tensor data
    (path / "weights.safetensors").write_bytes(bytes(data))


def _edit_manifest(path: Path) -> None:
    document = json.loads((path / "manifest.json").read_text())
    document["decision"]["threshold"] = 0.05
    (path / "manifest.json").write_text(json.dumps(document))


def _edit_card(path: Path) -> None:
    with (path / "model-card.md").open("a") as stream:
        stream.write("\nAlso suitable for screening.\n")


CASES: dict[str, tuple[Callable[[Path], None], type[ArtifactError], str]] = {
    "weights byte flip": (_flip_weight_byte, TamperedArtifact, "weights.safetensors: SHA-256"),
    "manifest edit": (_edit_manifest, BadSignature, "does not match the manifest"),
    "model card edit": (_edit_card, TamperedArtifact, "model-card.md: SHA-256"),
    "signature removed": (lambda p: (p / "signature.json").unlink(), UnsignedArtifact, "no signature.json"),
    "signature garbled": (lambda p: (p / "signature.json").write_text("{"), UnsignedArtifact, "not valid JSON"),
    "extra file": (lambda p: (p / "run.py").write_text("import os"), TamperedArtifact, "['run.py'] are not listed"),
    "missing weights": (lambda p: (p / "weights.safetensors").unlink(), TamperedArtifact, "['weights.safetensors'] listed in the signed manifest are missing"),
    "missing manifest": (lambda p: (p / "manifest.json").unlink(), TamperedArtifact, "manifest.json is missing"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_tampering_is_refused_with_its_reason(case: str, artifact_copy: Path, trust_dir: Path) -> None:
    tamper, error, reason = CASES[case]
    tamper(artifact_copy)
    with pytest.raises(error) as raised:
        load_verified(artifact_copy, load_trusted_keys(trust_dir))
    assert reason in str(raised.value)


def test_a_key_the_site_does_not_trust_is_refused(artifact: Path, tmp_path: Path) -> None:
    stranger = generate_key_pair(tmp_path / "stranger")
    with pytest.raises(UntrustedKey, match="does not trust"):
        load_verified(artifact, load_trusted_keys(stranger.public_key))


def test_a_forged_signature_with_the_trusted_key_id_is_refused(artifact_copy: Path, trust_dir: Path, tmp_path: Path) -> None:
    forger = generate_key_pair(tmp_path / "forger")
    document = json.loads((artifact_copy / "manifest.json").read_text())
    forged = sign_manifest(document, load_signing_key(forger.private_key))
    genuine = json.loads((artifact_copy / "signature.json").read_text())
    (artifact_copy / "signature.json").write_text(json.dumps({**genuine, "signature": json.loads(forged.to_json())["signature"]}))
    with pytest.raises(BadSignature):
        load_verified(artifact_copy, load_trusted_keys(trust_dir))


def test_schema_violations_are_refused_even_when_validly_signed(artifact_copy: Path, trust_dir: Path, publisher: KeyPairFiles) -> None:
    def break_schema(document: dict) -> None:
        document["preprocessing"]["scales"][0] = -1.0
        document["surprise"] = True

    resign_manifest(artifact_copy, break_schema, publisher)
    with pytest.raises(ManifestInvalid) as raised:
        load_verified(artifact_copy, load_trusted_keys(trust_dir))
    assert any("scales" in reason for reason in raised.value.reasons)
    assert any("surprise: unknown field" in reason for reason in raised.value.reasons)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [("format_version", 2, "format version 2 is not readable"), ("format", "onnx", "not a FLUTE model artifact")],
)
def test_unknown_formats_are_refused(field: str, value: object, reason: str, artifact_copy: Path, trust_dir: Path, publisher: KeyPairFiles) -> None:
    resign_manifest(artifact_copy, lambda document: document.update({field: value}), publisher)
    with pytest.raises(UnknownFormat, match=reason):
        load_verified(artifact_copy, load_trusted_keys(trust_dir))


def test_unknown_model_type_is_refused(artifact_copy: Path, trust_dir: Path, publisher: KeyPairFiles) -> None:
    resign_manifest(artifact_copy, lambda document: document["model"].update(model_type="gradient_boosting"), publisher)
    with pytest.raises(UnknownFormat, match="'gradient_boosting' has no registered model family"):
        load_verified(artifact_copy, load_trusted_keys(trust_dir))


def test_cli_verify_accepts_intact_and_refuses_tampered(artifact: Path, artifact_copy: Path, trust_dir: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["model", "verify", str(artifact), "--trust", str(trust_dir)])
    assert ok.exit_code == 0 and "OK: cspca-test 1.2.0" in ok.output
    _flip_weight_byte(artifact_copy)
    refused = runner.invoke(app, ["model", "verify", str(artifact_copy), "--trust", str(trust_dir)])
    assert refused.exit_code == 1
    assert "REFUSED (TamperedArtifact)" in refused.output and "weights.safetensors" in refused.output


def test_cli_verify_without_a_trust_store_refuses(artifact: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["model", "verify", str(artifact), "--trust", str(tmp_path / "none")])
    assert result.exit_code == 1 and "no such trust file or directory" in result.output
