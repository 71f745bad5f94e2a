"""The model artifact: package a fitted model, and load one only after verifying it (F-PIL-23/24).

Layout of an artifact directory (nothing else may be in it):

    manifest.json        what the model is and expects (manifest.py), with the SHA-256 of each file
    weights.safetensors  the model family's named float64 tensors (never pickle: loading runs no code)
    model-card.md        intended use, population, performance, limitations, ethical notes
    signature.json       Ed25519 signature over the canonical manifest bytes, with the key id

`load_verified` is the security check a hub or a clinical site runs before a model may score:
signature first (by a key the site trusts), then the schema, then every file's hash and the
exact set of files, then the tensors' names, shapes and dtype against the model family and its
architecture, then the tensors' contents as a model of that family (e.g. valid tree nodes). Each
failure is its own exception type (errors.py) with a message that says what to do.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from flute.deploy.errors import ArtifactError, TamperedArtifact, UnsignedArtifact
from flute.deploy.families import Predictor, family_of_model, family_of_type
from flute.deploy.features import feature_schema
from flute.deploy.keys import SigningKey, TrustedKeys
from flute.deploy.manifest import (
    DEFAULT_THRESHOLD,
    MANIFEST_FILE,
    MODEL_CARD_FILE,
    SIGNATURE_FILE,
    WEIGHTS_FILE,
    DecisionRule,
    Manifest,
    ModelIdentity,
    PreprocessingManifest,
    PrivacyRecord,
    TensorSpec,
    TrainingProvenance,
    ValidationMetrics,
    manifest_document,
    read_manifest_document,
    validate_manifest_document,
)
from flute.deploy.model_card import render_model_card
from flute.deploy.signing import Signature, sign_manifest, verify_manifest
from flute.learn.preprocess import Standardiser, design_matrix


class MissingFeatures(ValueError):
    """Rows with missing values given to a model whose manifest does not allow imputation."""


class UnknownSite(ValueError):
    """A site named for scoring that the model has no intercept for."""


@dataclass(frozen=True)
class ScoringModel:
    """A verified model: its manifest and a predictor for raw study-variable rows."""

    manifest: Manifest
    predictor: Predictor
    source: Path | None = None
    site: str | None = None

    def for_site(self, site: str | None) -> ScoringModel:
        """This model as scored at `site`: with the site's own intercept where the manifest lists
        one (`Manifest.site_intercepts`), else refused; None scores with the common intercept."""
        if site is not None and site not in self.manifest.site_intercepts:
            known = sorted(self.manifest.site_intercepts)
            raise UnknownSite(
                f"model {self.manifest.model.model_id} has no intercept for site {site!r}; "
                + (f"its sites are {known}" if known else "it has one intercept for every site (leave out the site)")
            )
        return dataclasses.replace(self, site=site)

    @property
    def columns(self) -> tuple[str, ...]:
        return self.manifest.feature_names

    @property
    def threshold(self) -> float:
        return self.manifest.decision.threshold

    def inputs(self, features: np.ndarray) -> np.ndarray:
        """Model inputs from raw features (columns in `columns` order, NaN = missing)."""
        prep = self.manifest.preprocessing
        logged = design_matrix(features, self.columns, prep.log_transform, prep.categories)
        missing = np.isnan(logged)
        if missing.any() and not prep.impute_missing:
            columns = [self.manifest.model_inputs[i] for i in np.flatnonzero(missing.any(axis=0))]
            raise MissingFeatures(f"values of {columns} are missing and model {self.manifest.model.model_id} does not allow imputation")
        imputed = np.where(missing, np.asarray(prep.imputation), logged)
        return (imputed - np.asarray(prep.means)) / np.asarray(prep.scales)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """P(csPCa) per row of raw features (at `site`, when set)."""
        risks = self.predictor.predict_risk(self.inputs(np.asarray(features, dtype=np.float64)))
        if self.site is None:
            return risks
        clipped = np.clip(risks, 1e-15, 1.0 - 1e-15)
        return 1.0 / (1.0 + np.exp(-(np.log(clipped / (1.0 - clipped)) + self.manifest.site_intercepts[self.site])))


def package_model(
    model: object,
    standardiser: Standardiser,
    provenance: TrainingProvenance,
    metrics: ValidationMetrics | None,
    out_dir: Path,
    signing_key: SigningKey,
    *,
    model_id: str | None = None,
    version: str = "1.0.0",
    title: str = "csPCa risk before prostate biopsy",
    privacy: PrivacyRecord = PrivacyRecord(),
    threshold: float = DEFAULT_THRESHOLD,
    allow_imputation: bool = False,
    model_type: str | None = None,
    site_intercepts: Mapping[str, float] | None = None,
) -> Path:
    """Write a signed artifact for a fitted model into `out_dir` (new or empty); returns it.

    `allow_imputation` decides whether sites may score patients with missing variables using the
    training means (off by default: an imputed risk must be a deliberate choice of the publisher).
    `model_type` names the model family where the fitted object alone does not (a study's
    `model.name`: a one-tree forest is also a decision tree); by default the first registered
    family that can pack the model is used. `site_intercepts`: each training site's log-odds
    offset from the common intercept (`Manifest.site_intercepts`).
    """
    family, packed = family_of_model(model, model_type)
    tensors = packed.tensors
    n_features = len(standardiser.inputs)
    expected = family.tensor_shapes(n_features, packed.architecture)
    actual = {name: tuple(array.shape) for name, array in tensors.items()}
    if actual != expected:
        raise ValueError(f"the {family.model_type} model has tensors {actual}, but {n_features} features need {expected}")
    _prepare_empty_directory(out_dir)
    import safetensors.numpy

    weights = safetensors.numpy.save({name: np.ascontiguousarray(array, dtype=np.float64) for name, array in tensors.items()})
    means = tuple(float(v) for v in standardiser.means)
    manifest = Manifest(
        model=ModelIdentity(
            model_id=model_id or provenance.study_id, version=version, model_type=family.model_type, title=title,
            architecture=packed.architecture, fhir_library=family.exports_cql,
        ),
        features=feature_schema(standardiser.columns),
        preprocessing=PreprocessingManifest(
            log_transform=standardiser.log_columns,
            categories=standardiser.levels,
            means=means,
            scales=tuple(float(v) for v in standardiser.scales),
            imputation=means,
            impute_missing=allow_imputation,
        ),
        decision=DecisionRule(threshold=threshold),
        tensors=tuple(TensorSpec(name=name, shape=shape) for name, shape in expected.items()),
        provenance=provenance,
        privacy=privacy,
        validation=metrics,
        site_intercepts=dict(site_intercepts or {}),
        files={WEIGHTS_FILE: _sha256(weights)},
    )
    card = render_model_card(manifest).encode("utf-8")
    manifest = manifest.model_copy(update={"files": {WEIGHTS_FILE: _sha256(weights), MODEL_CARD_FILE: _sha256(card)}})
    document = manifest_document(validate_manifest_document(manifest_document(manifest), "package_model"))
    (out_dir / WEIGHTS_FILE).write_bytes(weights)
    (out_dir / MODEL_CARD_FILE).write_bytes(card)
    (out_dir / MANIFEST_FILE).write_bytes(_pretty(document))
    (out_dir / SIGNATURE_FILE).write_bytes(sign_manifest(document, signing_key).to_json())
    return out_dir


def load_verified(path: Path, trusted_keys: TrustedKeys) -> ScoringModel:
    """The artifact at `path` as a ScoringModel, or an ArtifactError subclass saying why not."""
    source = str(path)
    if not path.is_dir():
        raise ArtifactError(f"{source}: not a model artifact directory")
    signature_path = path / SIGNATURE_FILE
    if not signature_path.is_file():
        raise UnsignedArtifact(f"{source}: no {SIGNATURE_FILE}, so who published this model cannot be checked; ask the publisher for a signed artifact")
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.is_file():
        raise TamperedArtifact(f"{source}: {MANIFEST_FILE} is missing")
    document = read_manifest_document(manifest_path.read_bytes(), f"{source}/{MANIFEST_FILE}")
    verify_manifest(document, Signature.from_json(signature_path.read_bytes(), source), trusted_keys, source)
    manifest = validate_manifest_document(document, f"{source}/{MANIFEST_FILE}")
    family = family_of_type(manifest.model.model_type)
    contents = _verified_files(path, manifest.files)
    n_features, architecture = len(manifest.model_inputs), manifest.model.architecture
    tensors = _read_tensors(contents[WEIGHTS_FILE], manifest, family.tensor_shapes(n_features, architecture), source)
    return ScoringModel(manifest, family.predictor(tensors, architecture, n_features), path)


def _verified_files(path: Path, hashes: Mapping[str, str]) -> dict[str, bytes]:
    listed = set(hashes) | {MANIFEST_FILE, SIGNATURE_FILE}
    present = {entry.name for entry in path.iterdir()}
    extra = sorted(present - listed)
    if extra:
        raise TamperedArtifact(f"{path}: files {extra} are not listed in the signed manifest; an artifact holds only its signed files")
    missing = sorted(listed - present)
    if missing:
        raise TamperedArtifact(f"{path}: files {missing} listed in the signed manifest are missing")
    contents = {}
    for name, digest in sorted(hashes.items()):
        file = path / name
        if file.is_symlink() or not file.is_file():
            raise TamperedArtifact(f"{file}: not a regular file (links and folders are refused)")
        data = file.read_bytes()
        if _sha256(data) != digest:
            raise TamperedArtifact(f"{file}: SHA-256 {_sha256(data)} differs from the signed {digest}; the file was changed after signing")
        contents[name] = data
    return contents


def _read_tensors(data: bytes, manifest: Manifest, expected: Mapping[str, tuple[int, ...]], source: str) -> dict[str, np.ndarray]:
    import safetensors.numpy
    from safetensors import SafetensorError

    declared = {tensor.name: tensor.shape for tensor in manifest.tensors}
    if declared != dict(expected):
        raise ArtifactError(f"{source}: the manifest declares tensors {declared}, but a {manifest.model.model_type} model with {len(manifest.model_inputs)} inputs has {dict(expected)}")
    try:
        tensors = safetensors.numpy.load(data)
    except SafetensorError as exc:
        raise ArtifactError(f"{source}/{WEIGHTS_FILE}: not a readable safetensors file ({exc})") from None
    found = {name: tuple(array.shape) for name, array in tensors.items()}
    if found != declared:
        raise ArtifactError(f"{source}/{WEIGHTS_FILE}: holds tensors {found}, the manifest declares {declared}")
    wrong_type = sorted(name for name, array in tensors.items() if array.dtype != np.float64)
    if wrong_type:
        raise ArtifactError(f"{source}/{WEIGHTS_FILE}: tensors {wrong_type} are not float64")
    not_finite = sorted(name for name, array in tensors.items() if not np.all(np.isfinite(array)))
    if not_finite:
        raise ArtifactError(f"{source}/{WEIGHTS_FILE}: tensors {not_finite} hold NaN or infinite values")
    return tensors


def _prepare_empty_directory(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(f"{out_dir} exists and is not an empty directory; artifacts are never overwritten (give the new version its own directory)")
    out_dir.mkdir(parents=True, exist_ok=True)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _pretty(document: Mapping[str, object]) -> bytes:
    return json.dumps(document, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"

