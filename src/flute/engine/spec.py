"""The study spec: everything a federated study will compute, declared up front and validated.

Hubs run only vetted algorithms with validated options (F-PIL-22, F-PIL-23): the spec names a model
from `VETTED_MODELS` and a strategy from `VETTED_STRATEGIES`; each has its own strictly typed
options and any unknown field is refused. The coordinator validates the spec before a run and every
hub validates it again on its side before computing anything. Resource bounds (F-PIL-14) are part
of the spec so a hub can see what it is asked to commit.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from flute.cohort.variables import VARIABLE_NAMES
from flute.evaluate.grid import ScoreGrid

SPEC_VERSION = 1


class SpecError(ValueError):
    """A refused spec; `reasons` lists every problem as 'where: what (how to fix)'."""

    def __init__(self, reasons: list[str]) -> None:
        self.reasons = reasons
        super().__init__("study spec refused:\n" + "\n".join(f"  - {reason}" for reason in reasons))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CohortSpec(_Strict):
    """Which study variables feed the model, from which rows, predicting which outcome."""

    variables: tuple[str, ...] = Field(min_length=1)
    included_only: bool = True
    outcome: Literal["csPCa"] = "csPCa"

    @field_validator("variables")
    @classmethod
    def _known_variables(cls, variables: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in variables if name not in VARIABLE_NAMES]
        if unknown:
            raise ValueError(f"unknown study variables {unknown}; the StudyVariables are {list(VARIABLE_NAMES)}")
        if len(set(variables)) != len(variables):
            raise ValueError(f"variables are listed more than once: {list(variables)}")
        return variables


class PreprocessingSpec(_Strict):
    """Federated preprocessing: parameters come from additive sums over the hubs' rows."""

    standardise: bool = True
    impute: Literal["mean"] = "mean"
    log_transform: tuple[str, ...] = ()


class LogisticRegressionSpec(_Strict):
    """Federated logistic regression (F-HUF-3)."""

    name: Literal["logistic_regression"]
    l2: float = Field(default=0.0, ge=0.0, le=1e3)
    class_weight: Literal["none", "balanced"] = "none"


ModelSpec = Annotated[Union[LogisticRegressionSpec], Field(discriminator="name")]


class NewtonSpec(_Strict):
    """Federated Newton: hubs send gradient and Hessian sums; reaches the pooled solution."""

    name: Literal["newton"]


class FedAvgSpec(_Strict):
    name: Literal["fedavg"]


class FedProxSpec(_Strict):
    name: Literal["fedprox"]
    mu: float = Field(gt=0.0, le=100.0)


class FedAdamSpec(_Strict):
    name: Literal["fedadam"]
    server_learning_rate: float = Field(default=0.1, gt=0.0, le=10.0)
    beta1: float = Field(default=0.9, ge=0.0, lt=1.0)
    beta2: float = Field(default=0.99, ge=0.0, lt=1.0)
    tau: float = Field(default=1e-3, gt=0.0)


StrategySpec = Annotated[Union[NewtonSpec, FedAvgSpec, FedProxSpec, FedAdamSpec], Field(discriminator="name")]


def _vetted(spec_union: object) -> tuple[str, ...]:
    """The names a discriminated union admits: adding a model class to the union vets it."""
    inner = get_args(spec_union)[0]
    members = get_args(inner) or (inner,)  # a one-member Union is the member itself
    return tuple(get_args(member.model_fields["name"].annotation)[0] for member in members)


VETTED_MODELS: tuple[str, ...] = _vetted(ModelSpec)
VETTED_STRATEGIES: tuple[str, ...] = _vetted(StrategySpec)


class TrainingSpec(_Strict):
    """Round budget and, for gradient-descent strategies, the hubs' local optimisation."""

    rounds: int = Field(default=25, ge=1, le=1000)
    local_epochs: int = Field(default=5, ge=1, le=100)
    learning_rate: float = Field(default=0.5, gt=0.0, le=10.0)
    tolerance: float = Field(default=1e-8, gt=0.0, le=1.0)


class FederationSpec(_Strict):
    """How many hubs must answer, how long to wait and how often to ask again."""

    min_hubs: int = Field(default=2, ge=1)
    retries: int = Field(default=1, ge=0, le=10)
    timeout_s: float = Field(default=120.0, gt=0.0, le=86400.0)


class ResourceSpec(_Strict):
    """What the study asks of each hub (F-PIL-14); a hub with fewer rows refuses to take part, so
    small cohorts are never summarised (F-PIL-11)."""

    min_rows_per_hub: int = Field(default=20, ge=1)
    max_runtime_s: float = Field(default=3600.0, gt=0.0)


class EvaluationSpec(_Strict):
    """Federated validation: k-fold CV with folds assigned at hubs, leave-one-hub-out, and the
    number of bins of the shared risk histogram (flute.evaluate.ScoreGrid) hubs release."""

    cv_folds: int = Field(default=5, ge=0, le=20)
    leave_one_hub_out: bool = True
    score_bins: int = Field(default=8000, ge=1000, le=100_000)

    @field_validator("cv_folds")
    @classmethod
    def _folds(cls, folds: int) -> int:
        if folds == 1:
            raise ValueError("cv_folds must be 0 (no cross-validation) or at least 2")
        return folds


class PetOptions(_Strict):
    """Privacy-enhancing technologies applied to this study's exchanges (F-SRS-4)."""

    mode: Literal["none"] = "none"


class StudySpec(_Strict):
    """A federated study: cohort, preprocessing, model, strategy, training, validation, PETs."""

    spec_version: Literal[1] = SPEC_VERSION
    study_id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    name: str = Field(min_length=1, max_length=200)
    cohort: CohortSpec
    preprocessing: PreprocessingSpec = PreprocessingSpec()
    model: ModelSpec
    strategy: StrategySpec = NewtonSpec(name="newton")
    training: TrainingSpec = TrainingSpec()
    seed: int = Field(default=0, ge=0, lt=2**32)
    federation: FederationSpec = FederationSpec()
    resources: ResourceSpec = ResourceSpec()
    evaluation: EvaluationSpec = EvaluationSpec()
    pets: PetOptions = PetOptions()

    @model_validator(mode="after")
    def _log_columns_are_cohort_variables(self) -> StudySpec:
        stray = [name for name in self.preprocessing.log_transform if name not in self.cohort.variables]
        if stray:
            raise ValueError(f"preprocessing.log_transform names {stray}, which are not in cohort.variables {list(self.cohort.variables)}")
        return self

    def score_grid(self) -> ScoreGrid:
        """The risk-histogram grid shared by the hubs and the coordinator of this study."""
        return ScoreGrid(n_bins=self.evaluation.score_bins)

    # -- loading and saving -------------------------------------------------------------------

    @classmethod
    def from_mapping(cls, data: Any, *, source: str = "spec") -> StudySpec:
        """Validate a parsed spec; every problem is reported, not just the first."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise SpecError([_explain(error, source) for error in exc.errors()]) from None

    @classmethod
    def from_json(cls, text: str, *, source: str = "spec") -> StudySpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError([f"{source}: not valid JSON ({exc})"]) from None
        return cls.from_mapping(data, source=source)

    @classmethod
    def load(cls, path: Path) -> StudySpec:
        """A spec from a .json or .toml file."""
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SpecError([f"{path}: cannot read the spec ({exc.strerror})"]) from None
        if path.suffix == ".toml":
            try:
                return cls.from_mapping(tomllib.loads(text), source=str(path))
            except tomllib.TOMLDecodeError as exc:
                raise SpecError([f"{path}: not valid TOML ({exc})"]) from None
        if path.suffix == ".json":
            return cls.from_json(text, source=str(path))
        raise SpecError([f"{path}: unknown spec format {path.suffix!r}; use .json or .toml"])

    def to_json(self) -> str:
        return self.model_dump_json()

    def save(self, path: Path) -> None:
        data = self.model_dump(mode="json")
        if path.suffix == ".toml":
            path.write_text(tomli_w.dumps(data), encoding="utf-8")
        elif path.suffix == ".json":
            path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        else:
            raise SpecError([f"{path}: unknown spec format {path.suffix!r}; use .json or .toml"])


def _explain(error: Any, source: str) -> str:
    """One readable line per pydantic error, with the vetted choices where a tag was unknown."""
    where = ".".join(str(part) for part in error["loc"]) or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{source}: {where}: unknown option (not part of the vetted spec; remove it)"
    if kind == "union_tag_invalid":
        tag = error.get("ctx", {}).get("tag")
        choices = VETTED_MODELS if where.startswith("model") else VETTED_STRATEGIES
        return f"{source}: {where}: {tag!r} is not a vetted algorithm; choose one of {list(choices)}"
    if kind == "union_tag_not_found":
        return f"{source}: {where}: missing 'name'; choose one of {list(VETTED_MODELS if where.startswith('model') else VETTED_STRATEGIES)}"
    return f"{source}: {where}: {error['msg'].removeprefix('Value error, ')}"
