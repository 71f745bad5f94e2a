"""The artifact manifest: what a model is, what it expects and how it was made (F-PIL-24).

The schema is strict (unknown fields refused, every problem reported at once) and is model-
family neutral: `model.model_type` names the family (`families.py`) and `tensors` lists the
named arrays of weights.safetensors, so a new family needs no manifest change. Preprocessing
(log transforms, standardisation, imputation) is declared here, not hidden in the weights, so
the FHIR Library export and a reviewer read the same numbers as the scorer.

`parse_manifest` checks the format marker before the schema: a document from another format or
a newer format version is `UnknownFormat`, not a list of confusing field errors.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, ValidationError, field_validator, model_validator

from flute.cohort.variables import VARIABLE_NAMES
from flute.deploy.errors import ManifestInvalid, UnknownFormat
from flute.learn.preprocess import design_columns

ARTIFACT_FORMAT: Final = "flute-model-artifact"
FORMAT_VERSION: Final = 1
DEFAULT_THRESHOLD: Final = 0.15
SEMVER_PATTERN: Final = r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$"
IDENTIFIER_PATTERN: Final = r"^[a-z0-9][a-z0-9._-]{0,63}$"
SHA256_PATTERN: Final = r"^[0-9a-f]{64}$"
MANIFEST_FILE: Final = "manifest.json"
SIGNATURE_FILE: Final = "signature.json"
WEIGHTS_FILE: Final = "weights.safetensors"
MODEL_CARD_FILE: Final = "model-card.md"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ModelIdentity(_Strict):
    """Which model: a stable id, a semantic version, the model family that reads the tensors, the
    family's structural numbers (`architecture`, e.g. hidden units or number of trees; read and
    checked by the family, `flute.deploy.zoo_families`), and whether the model can also be
    exported as a FHIR Library with CQL (`fhir_library`: logistic regression only, since CQL
    needs a closed-form formula; every family is scored by `flute score run|serve`)."""

    model_id: str = Field(pattern=IDENTIFIER_PATTERN)
    version: str = Field(pattern=SEMVER_PATTERN)
    model_type: str = Field(pattern=IDENTIFIER_PATTERN)
    title: str = Field(min_length=1, max_length=200)
    architecture: dict[str, StrictInt | StrictFloat | StrictStr] = Field(default_factory=dict)
    fhir_library: bool = False


class FeatureCoding(_Strict):
    system: str = Field(min_length=1)
    code: str = Field(min_length=1)
    display: str = ""


class FeatureSpec(_Strict):
    """One model input: a StudyVariable with its unit (UCUM), FHIR source, codings and range."""

    name: str
    description: str
    unit: str | None = None
    source: str
    codings: tuple[FeatureCoding, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    allowed_values: tuple[float, ...] = ()

    @field_validator("name")
    @classmethod
    def _study_variable(cls, name: str) -> str:
        if name not in VARIABLE_NAMES:
            raise ValueError(f"{name!r} is not a StudyVariable; the StudyVariables are {list(VARIABLE_NAMES)}")
        return name

    @model_validator(mode="after")
    def _range_ordered(self) -> FeatureSpec:
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"{self.name}: minimum {self.minimum} is above maximum {self.maximum}")
        return self

    def problem_with(self, value: float) -> str | None:
        """Why `value` is outside what the model was built for, or None when it is fine."""
        if self.allowed_values and value not in self.allowed_values:
            return f"{self.name} = {value:g} is not one of the allowed values {[f'{v:g}' for v in self.allowed_values]}"
        if self.minimum is not None and value < self.minimum:
            return f"{self.name} = {value:g} is below the model's range [{self.minimum:g}, {self.maximum:g}]"
        if self.maximum is not None and value > self.maximum:
            return f"{self.name} = {value:g} is above the model's range [{self.minimum:g}, {self.maximum:g}]"
        return None


class PreprocessingManifest(_Strict):
    """Raw features -> model inputs: natural log of `log_transform` columns; each feature named in
    `categories` becomes one 0/1 indicator per listed level except the first (the reference
    level), named 'feature=level', in level order (a missing value leaves them all missing); then
    a missing input becomes `imputation` (on the transformed scale; only when `impute_missing`),
    then (x - mean)/scale. `means`, `scales` and `imputation` run over these model inputs, in
    feature order (`flute.learn.preprocess.design_columns`)."""

    log_transform: tuple[str, ...] = ()
    categories: dict[str, tuple[float, ...]] = {}
    means: tuple[float, ...]
    scales: tuple[float, ...]
    imputation: tuple[float, ...]
    impute_missing: bool

    @field_validator("scales")
    @classmethod
    def _positive(cls, scales: tuple[float, ...]) -> tuple[float, ...]:
        if any(not scale > 0 for scale in scales):
            raise ValueError(f"every standardisation scale must be positive, got {list(scales)}")
        return scales


class DecisionRule(_Strict):
    """Biopsy is recommended when the predicted csPCa risk is at or above `threshold`."""

    threshold: float = Field(default=DEFAULT_THRESHOLD, gt=0.0, lt=1.0)


class TrainingProvenance(_Strict):
    """Where the model came from: the study, its exact spec, the hubs, rounds, date and code."""

    study_id: str = Field(pattern=IDENTIFIER_PATTERN)
    spec_sha256: str = Field(pattern=SHA256_PATTERN)
    hubs: tuple[str, ...] = Field(min_length=1)
    rounds: int = Field(ge=0)
    trained_at: datetime
    code_version: str = Field(min_length=1)


class PrivacyRecord(_Strict):
    """Privacy-enhancing technologies applied during training, and the DP budget spent (if any)."""

    pets: tuple[str, ...] = ()
    epsilon: float | None = Field(default=None, ge=0.0)
    delta: float | None = Field(default=None, ge=0.0, le=1.0)


class ValidationMetrics(_Strict):
    """Federated validation figures (F-PIL-15): discrimination, calibration, net benefit."""

    method: str = Field(min_length=1)
    n: int = Field(ge=1)
    events: int = Field(ge=0)
    auroc: float = Field(ge=0.0, le=1.0)
    auroc_ci_low: float = Field(ge=0.0, le=1.0)
    auroc_ci_high: float = Field(ge=0.0, le=1.0)
    calibration_intercept: float | None = None
    calibration_slope: float | None = None
    net_benefit_threshold: float = Field(gt=0.0, lt=1.0)
    net_benefit: float
    net_benefit_biopsy_all: float


class TensorSpec(_Strict):
    """One named array of weights.safetensors (float64 only: scores must be reproducible)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    shape: tuple[int, ...]
    dtype: Literal["float64"] = "float64"


class Manifest(_Strict):
    """What an artifact is and expects. `site_intercepts`: for a model trained with one intercept
    per hub (`preprocessing.hub_intercepts` of the study spec), the log-odds each training site
    adds to the common intercept the weights hold; a site scores with its own (`ScoringModel.
    for_site`), any other site with the common one."""

    format: Literal["flute-model-artifact"] = ARTIFACT_FORMAT
    format_version: Literal[1] = FORMAT_VERSION
    model: ModelIdentity
    features: tuple[FeatureSpec, ...] = Field(min_length=1)
    preprocessing: PreprocessingManifest
    decision: DecisionRule = DecisionRule()
    tensors: tuple[TensorSpec, ...] = Field(min_length=1)
    provenance: TrainingProvenance
    privacy: PrivacyRecord = PrivacyRecord()
    validation: ValidationMetrics | None = None
    site_intercepts: dict[str, float] = {}
    files: dict[str, str]

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        names = [feature.name for feature in self.features]
        problems = []
        if len(set(names)) != len(names):
            problems.append(f"features list a variable more than once: {names}")
        prep = self.preprocessing
        for option, listed in (("log_transform", prep.log_transform), ("categories", tuple(prep.categories))):
            stray = [name for name in listed if name not in names]
            if stray:
                problems.append(f"preprocessing.{option} names {stray}, which are not features")
        both = [name for name in prep.categories if name in prep.log_transform]
        if both:
            problems.append(f"preprocessing: {both} are both log-transformed and categorical; one transform per feature")
        few_levels = [name for name, levels in prep.categories.items() if len(levels) < 2 or len(set(levels)) != len(levels)]
        if few_levels:
            problems.append(f"preprocessing.categories of {few_levels} need at least 2 distinct levels")
        inputs = design_columns(names, prep.categories)
        for field, values in (("means", prep.means), ("scales", prep.scales), ("imputation", prep.imputation)):
            if len(values) != len(inputs):
                problems.append(f"preprocessing.{field} has {len(values)} values for {len(inputs)} model inputs {list(inputs)}")
        odd_sites = [site for site, offset in self.site_intercepts.items() if not math.isfinite(offset)]
        if odd_sites:
            problems.append(f"site_intercepts of {odd_sites} are not finite log-odds")
        tensor_names = [tensor.name for tensor in self.tensors]
        if len(set(tensor_names)) != len(tensor_names):
            problems.append(f"tensors list a name more than once: {tensor_names}")
        for name, digest in self.files.items():
            if "/" in name or name.startswith(".") or name in (MANIFEST_FILE, SIGNATURE_FILE):
                problems.append(f"files: {name!r} cannot be listed (plain file names only, not the manifest or signature)")
            if not _is_sha256(digest):
                problems.append(f"files: {name!r} has {digest!r}, not a SHA-256 hex digest")
        if WEIGHTS_FILE not in self.files:
            problems.append(f"files must list {WEIGHTS_FILE}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(feature.name for feature in self.features)

    @property
    def model_inputs(self) -> tuple[str, ...]:
        """The model's input columns after the per-feature transforms (one weight each)."""
        return design_columns(self.feature_names, self.preprocessing.categories)



def _is_sha256(value: str) -> bool:
    return re.fullmatch(SHA256_PATTERN, value) is not None


def canonical_bytes(document: Any) -> bytes:
    """The bytes that are signed: sorted keys, no whitespace, UTF-8, no NaN. Any JSON
    re-serialisation of the same manifest gives the same bytes, so only content is signed."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def manifest_document(manifest: Manifest) -> dict[str, Any]:
    return manifest.model_dump(mode="json")


def read_manifest_document(data: bytes, source: str) -> dict[str, Any]:
    """The manifest as a JSON object, with its format checked; the schema is not applied yet."""
    try:
        document = json.loads(data, parse_constant=_refuse_constant)
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
        raise ManifestInvalid(source, [f"not valid JSON ({exc})"]) from None
    if not isinstance(document, dict):
        raise ManifestInvalid(source, [f"a manifest is a JSON object, got {type(document).__name__}"])
    if document.get("format") != ARTIFACT_FORMAT:
        raise UnknownFormat(f"{source}: format {document.get('format')!r} is not {ARTIFACT_FORMAT!r}; this is not a FLUTE model artifact")
    version = document.get("format_version")
    if version != FORMAT_VERSION:
        raise UnknownFormat(
            f"{source}: artifact format version {version!r} is not readable by this FLUTE (reads version {FORMAT_VERSION}); "
            "upgrade FLUTE or ask the publisher for a version-1 artifact"
        )
    return document


def parse_manifest(data: bytes, source: str = MANIFEST_FILE) -> Manifest:
    """Format check, then the full schema; every schema problem is listed."""
    return validate_manifest_document(read_manifest_document(data, source), source)


def validate_manifest_document(document: dict[str, Any], source: str) -> Manifest:
    try:
        return Manifest.model_validate(document)
    except ValidationError as exc:
        raise ManifestInvalid(source, [_explain(error) for error in exc.errors()]) from None


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _explain(error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown field (not part of artifact format {FORMAT_VERSION}; remove it)"
    return f"{where}: {error['msg'].removeprefix('Value error, ')}"
