"""Packaging and verified loading of model artifacts (F-PIL-24, F-PIL-23)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from flute.cohort.variables import VARIABLE_NAMES
from flute.deploy.artifact import MissingFeatures, load_verified
from flute.deploy.keys import KeyPairFiles, load_trusted_keys
from flute.deploy.manifest import canonical_bytes, parse_manifest

from .conftest import PROVENANCE, Trained, make_artifact


def test_round_trip_reproduces_the_in_memory_model(artifact: Path, trust_dir: Path, trained: Trained) -> None:
    model = load_verified(artifact, load_trusted_keys(trust_dir))
    complete = trained.features[~np.isnan(trained.features).any(axis=1)]
    assert complete.shape[0] > 500
    np.testing.assert_allclose(model.predict(complete), trained.expected(complete), rtol=0, atol=1e-12)


def test_artifact_holds_exactly_the_documented_files(artifact: Path) -> None:
    assert sorted(p.name for p in artifact.iterdir()) == ["manifest.json", "model-card.md", "signature.json", "weights.safetensors"]
    tensors = load_file(str(artifact / "weights.safetensors"))
    assert set(tensors) == {"intercept", "coefficients"} and tensors["coefficients"].shape == (7,)


def test_manifest_declares_schema_preprocessing_provenance_and_metrics(artifact: Path, trained: Trained) -> None:
    manifest = parse_manifest((artifact / "manifest.json").read_bytes())
    assert manifest.model.model_type == "logistic_regression" and manifest.model.version == "1.2.0"
    assert manifest.feature_names == VARIABLE_NAMES
    psa = manifest.features[VARIABLE_NAMES.index("psa")]
    assert psa.unit == "ng/mL" and psa.codings[0].code == "2857-1"  # F-STD-2: LOINC + UCUM
    assert manifest.preprocessing.log_transform == ("psa", "prostateVolume")
    assert manifest.preprocessing.means == tuple(trained.standardiser.means)
    assert manifest.preprocessing.scales == tuple(trained.standardiser.scales)
    assert manifest.preprocessing.impute_missing is False
    assert manifest.decision.threshold == 0.15
    assert manifest.provenance == PROVENANCE
    assert manifest.privacy.pets == ("secure-aggregation",)
    assert manifest.validation is not None and manifest.validation.auroc == 0.81
    assert set(manifest.files) == {"weights.safetensors", "model-card.md"}


def test_model_card_names_use_population_performance_limitations(artifact: Path) -> None:
    card = (artifact / "model-card.md").read_text()
    for heading in ("## Intended use", "## Population", "## Performance", "## Limitations", "## Ethical notes"):
        assert heading in card
    assert "AUROC 0.810 (95 % CI 0.780-0.840)" in card


def test_signature_covers_canonical_manifest_not_its_formatting(artifact_copy: Path, trust_dir: Path) -> None:
    document = json.loads((artifact_copy / "manifest.json").read_text())
    (artifact_copy / "manifest.json").write_bytes(canonical_bytes(document))  # same content, other whitespace
    load_verified(artifact_copy, load_trusted_keys(trust_dir))


def test_missing_values_refused_unless_the_manifest_allows_imputation(
    artifact: Path, trained: Trained, publisher: KeyPairFiles, trust_dir: Path, tmp_path: Path
) -> None:
    row = trained.features[:1].copy()
    row[0, VARIABLE_NAMES.index("prostateVolume")] = np.nan
    strict = load_verified(artifact, load_trusted_keys(trust_dir))
    with pytest.raises(MissingFeatures, match="prostateVolume"):
        strict.predict(row)
    lenient = load_verified(make_artifact(trained, publisher, tmp_path / "imputing", allow_imputation=True), load_trusted_keys(trust_dir))
    np.testing.assert_allclose(lenient.predict(row), trained.expected(row), rtol=0, atol=1e-12)


def test_private_key_is_owner_only_and_never_overwritten(publisher: KeyPairFiles) -> None:
    assert stat.S_IMODE(publisher.private_key.stat().st_mode) == 0o600
    from flute.deploy.errors import SigningKeyError
    from flute.deploy.keys import generate_key_pair

    with pytest.raises(SigningKeyError, match="already exists"):
        generate_key_pair(publisher.private_key.parent, "publisher")


def test_packaging_refuses_a_non_empty_directory(artifact: Path, trained: Trained, publisher: KeyPairFiles) -> None:
    with pytest.raises(FileExistsError, match="never overwritten"):
        make_artifact(trained, publisher, artifact)
