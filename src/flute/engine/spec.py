"""The study spec: everything a federated study will compute, declared up front and validated.

Hubs run only vetted algorithms with validated options (F-PIL-22, F-PIL-23): the spec names a model
from `VETTED_MODELS` and a strategy from `VETTED_STRATEGIES`; each has its own strictly typed
options and any unknown field is refused. The coordinator validates the spec before a run and every
hub validates it again on its side before computing anything. Resource bounds (F-PIL-14) are part
of the spec so a hub can see what it is asked to commit.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from flute.cohort.variables import PIRADS, VARIABLE_NAMES, VARIABLES_BY_NAME
from flute.engine.model_specs import LOCAL_STEP_SPECS, TREE_SPECS, DecisionTreeSpec, GbdtSpec, LinearSvmSpec, MlpSpec, RandomForestSpec, TuningSpec
from flute.engine.tree_privacy import dp_model_refusal
from flute.evaluate.grid import ScoreGrid
from flute.learn.preprocess import category_levels, design_columns

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


_HUB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def hub_column(hub: str) -> str:
    """The study column of hub `hub`'s intercept (`PreprocessingSpec.hub_intercepts`)."""
    return f"hub={hub}"


class PreprocessingSpec(_Strict):
    """Federated preprocessing: parameters come from additive sums over the hubs' rows.

    Per-variable transforms (hub-local, from public information only, so no privacy cost):
    `log_transform` takes the natural log (values must be > 0; missing stays missing until
    imputation); `categories` expands a variable with IG-fixed codes (e.g. PI-RADS 1..5) into one
    indicator per code except the first, the reference level (`flute.learn.preprocess`).

    `hub_intercepts` (stratified intercepts, as in individual-participant-data meta-analyses of
    prediction models, Debray et al., Stat Med 2013;32:3158-80): the study's hubs by name; each
    hub appends its own 0/1 column `hub=<name>` (`hub_column`), unscaled, so the model learns one
    intercept per hub (a common intercept plus L2-penalised hub deviations) instead of one for
    all: hospitals differ in prevalence and case mix, and a pooled intercept miscalibrates every
    one of them. A hub outside the training set (leave-one-hub-out, a new site) has all-zero hub
    columns and gets the common intercept. Disclosure: a hub column's entries of every Newton
    sum come from that hub alone (its residual sum, its curvature-weighted column sums), so they
    are per-hub aggregates, which secure aggregation exists to hide: allowed only with pets.mode
    'none', where hubs answer in the clear anyway."""

    standardise: bool = True
    impute: Literal["mean"] = "mean"
    log_transform: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    hub_intercepts: tuple[str, ...] = ()

    @field_validator("categories")
    @classmethod
    def _categorical_variables(cls, categories: tuple[str, ...]) -> tuple[str, ...]:
        no_codes = [name for name in categories if len(VARIABLES_BY_NAME[name].codes if name in VARIABLES_BY_NAME else ()) < 2]
        if no_codes:
            coded = [v.name for v in VARIABLES_BY_NAME.values() if len(v.codes) >= 2]
            raise ValueError(f"{no_codes} have no IG-fixed category codes and cannot be expanded into categories; categorical variables are {coded}")
        if len(set(categories)) != len(categories):
            raise ValueError(f"categories lists a variable more than once: {list(categories)}")
        return categories

    @field_validator("hub_intercepts")
    @classmethod
    def _distinct_hub_names(cls, hubs: tuple[str, ...]) -> tuple[str, ...]:
        if hubs and len(hubs) < 2:
            raise ValueError(f"hub_intercepts needs at least two hubs (one hub's intercept is the common one), got {list(hubs)}")
        if len(set(hubs)) != len(hubs):
            raise ValueError(f"hub_intercepts lists a hub more than once: {list(hubs)}")
        malformed = [hub for hub in hubs if not _HUB_NAME.fullmatch(hub)]
        if malformed:
            raise ValueError(f"hub_intercepts {malformed} are not hub names (1-64 letters, digits, '.', '_' or '-')")
        return hubs

    @property
    def hub_columns(self) -> tuple[str, ...]:
        """The hub-intercept columns, in `hub_intercepts` order."""
        return tuple(hub_column(hub) for hub in self.hub_intercepts)

    @model_validator(mode="after")
    def _one_transform_per_variable(self) -> PreprocessingSpec:
        both = [name for name in self.categories if name in self.log_transform]
        if both:
            raise ValueError(f"{both} are both log-transformed and categorical; choose one transform per variable")
        return self


class LogisticRegressionSpec(_Strict):
    """Federated logistic regression (F-HUF-3)."""

    name: Literal["logistic_regression"]
    l2: float = Field(default=0.0, ge=0.0, le=1e3)
    class_weight: Literal["none", "balanced"] = "none"


ModelSpec = Annotated[
    Union[LogisticRegressionSpec, DecisionTreeSpec, RandomForestSpec, GbdtSpec, LinearSvmSpec, MlpSpec], Field(discriminator="name")
]


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


class ClippedGradientSpec(_Strict):
    """Full-batch federated gradient descent on summed PER-RECORD clipped gradients: one record
    moves a round's gradient sum by at most `clip_norm` (L2), which is what record-level DP needs
    (pets.mode 'secagg_dp' adds Gaussian noise to that sum). Step size: training.learning_rate,
    'fixed', or divided by the model's expected logistic curvature, 'curvature' (a diagonal
    Newton step: converges in a round or two, so a DP study needs fewer noisy releases; use
    learning_rate 1); steps: training.rounds."""

    name: Literal["clipped_gradient"]
    clip_norm: float = Field(default=1.0, gt=0.0, le=1e3)
    step: Literal["fixed", "curvature"] = "fixed"


StrategySpec = Annotated[Union[NewtonSpec, FedAvgSpec, FedProxSpec, FedAdamSpec, ClippedGradientSpec], Field(discriminator="name")]


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


ComparatorName = Literal["pirads_only", "bcn_reference"]
"""Vetted comparators of the validation report (F-PIL-15; `flute.engine.comparators`)."""

#: The study variables each comparator reads: the cohort must include them.
COMPARATOR_VARIABLES: dict[str, tuple[str, ...]] = {"pirads_only": (PIRADS,), "bcn_reference": VARIABLE_NAMES}


class EvaluationSpec(_Strict):
    """Federated validation: k-fold CV with folds assigned at hubs, leave-one-hub-out, the
    number of bins of the shared risk histogram (flute.evaluate.ScoreGrid) hubs release, and the
    comparators scored on the same out-of-fold patients under the same privacy rules."""

    cv_folds: int = Field(default=5, ge=0, le=20)
    leave_one_hub_out: bool = True
    score_bins: int = Field(default=8000, ge=1000, le=100_000)
    comparators: tuple[ComparatorName, ...] = ()

    @field_validator("cv_folds")
    @classmethod
    def _folds(cls, folds: int) -> int:
        if folds == 1:
            raise ValueError("cv_folds must be 0 (no cross-validation) or at least 2")
        return folds


class SecAggOptions(_Strict):
    """Secure aggregation of every additive hub answer (flute.privacy.secagg; F-SRS-10, URS-2).

    threshold: hubs needed to finish a round (Shamir threshold t); None = a majority of the hubs
    in the round, the smallest value the protocol accepts. neighbours: even k for the SecAgg+
    sparse graph (None = every pair masks). clip_bound / scale_bits: fixed-point encoding of
    real-valued sums (B and 2^s; n_hubs * B * 2^s must stay below 2^63). A hub whose sum would
    be clipped refuses rather than send a wrong value."""

    threshold: int | None = Field(default=None, ge=2)
    neighbours: int | None = Field(default=None, ge=2)
    clip_bound: float = Field(default=2.0**30, gt=0.0, le=2.0**40)
    scale_bits: int = Field(default=24, ge=8, le=40)

    @field_validator("neighbours")
    @classmethod
    def _even_neighbours(cls, neighbours: int | None) -> int | None:
        if neighbours is not None and neighbours % 2:
            raise ValueError(f"neighbours must be even (k/2 on each side of the SecAgg+ ring), got {neighbours}")
        return neighbours

    @model_validator(mode="after")
    def _no_overflow_for_small_federations(self) -> SecAggOptions:
        if self.clip_bound * 2.0**self.scale_bits * 2 >= 2.0**63:
            raise ValueError(
                f"clip_bound {self.clip_bound:g} * 2^{self.scale_bits} overflows the 2^64 ring with 2 hubs; lower one of them"
            )
        return self


class DpOptions(_Strict):
    """Record-level differential privacy of the whole study (URS-6/7/8, NF-HUF-1).

    The study's (target_epsilon, delta) covers every DP release of every task (CV folds and the
    final model compose: each record may take part in all of them). unit: one patient's record.
    noise: 'distributed' = each hub adds a share so that the SUM carries the full noise (needs
    secure aggregation; tolerated_colluders / tolerated_dropouts hubs may collude with the
    aggregator / drop out without weakening it); 'local' = each hub adds the full noise itself
    (no trust in the aggregator or other hubs, n times the variance). feature_bounds: per
    cohort variable, [lower, upper] in raw units, the clipping range of the DP column sums."""

    target_epsilon: float = Field(gt=0.0, le=10.0)
    delta: float = Field(default=1e-5, gt=0.0, le=1e-3)
    unit: Literal["record"] = "record"
    noise: Literal["distributed", "local"] = "distributed"
    tolerated_colluders: int = Field(default=0, ge=0)
    tolerated_dropouts: int = Field(default=0, ge=0)
    feature_bounds: dict[str, tuple[float, float]]

    @field_validator("feature_bounds")
    @classmethod
    def _ordered_bounds(cls, bounds: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        bad = [name for name, (lower, upper) in bounds.items() if not lower < upper]
        if bad:
            raise ValueError(f"feature_bounds of {bad} need lower < upper")
        return bounds


StatisticsPet = Literal["none", "dp", "he"]
"""PET of a study's descriptive statistics (`flute stats run`, `flute.engine.stats_workflow`): 'dp'
OpenDP releases charged to each hub's ledger, 'he' CKKS aggregation (only pooled sums are
decrypted), 'none' exact sums with small-cell suppression."""


class PetOptions(_Strict):
    """Privacy-enhancing technologies applied to this study's exchanges (F-SRS-4, F-SRS-10).

    mode 'none': hubs answer in the clear. 'secagg': every additive answer (column sums, Newton or
    gradient sums, weighted local models, evaluation histograms) is securely aggregated, so the
    coordinator sees only sums over hubs. 'secagg_dp': secure aggregation plus record-level DP of
    training and preprocessing (`dp`); requires strategy 'clipped_gradient'."""

    mode: Literal["none", "secagg", "secagg_dp"] = "none"
    secagg: SecAggOptions | None = None
    dp: DpOptions | None = None
    statistics: StatisticsPet = "dp"

    @model_validator(mode="after")
    def _options_match_mode(self) -> PetOptions:
        if self.mode == "none" and (self.secagg is not None or self.dp is not None):
            raise ValueError("pets.secagg / pets.dp are set but pets.mode is 'none'; set mode 'secagg' or 'secagg_dp', or remove them")
        if self.mode == "secagg" and self.dp is not None:
            raise ValueError("pets.dp is set but pets.mode is 'secagg'; use mode 'secagg_dp' for differential privacy")
        if self.mode == "secagg_dp" and self.dp is None:
            raise ValueError("pets.mode 'secagg_dp' needs pets.dp (target_epsilon, delta, feature_bounds, ...)")
        return self

    @property
    def secure_aggregation(self) -> SecAggOptions | None:
        """The secure-aggregation options in force (defaults when the mode asks for it)."""
        if self.mode not in ("secagg", "secagg_dp"):
            return None
        return self.secagg or SecAggOptions()


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
    tuning: TuningSpec | None = None

    @model_validator(mode="after")
    def _model_fits_the_study(self) -> StudySpec:
        """Trees are grown from histograms (no strategy applies) on a grid of standardised inputs;
        the SVM and MLP train by local steps; tuning names only options of the model (F-HUF-9/10)."""
        if isinstance(self.model, TREE_SPECS):
            if not isinstance(self.strategy, NewtonSpec):
                raise ValueError(f"model {self.model.name!r} is grown from aggregated histograms; leave out strategy (got {self.strategy.name!r})")
            if not self.preprocessing.standardise:
                raise ValueError(f"model {self.model.name!r} bins standardised inputs; set preprocessing.standardise = true")
        if isinstance(self.model, LOCAL_STEP_SPECS) and not isinstance(self.strategy, (FedAvgSpec, FedProxSpec, FedAdamSpec)):
            raise ValueError(f"model {self.model.name!r} trains by local steps; set strategy.name to fedavg, fedprox or fedadam (got {self.strategy.name!r})")
        if self.tuning is not None:
            unknown = sorted(set(self.tuning.space) - set(type(self.model).model_fields) | ({"name"} & set(self.tuning.space)))
            if unknown:
                raise ValueError(f"tuning.space names {unknown}, which are not tunable options of model {self.model.name!r}")
        return self

    @model_validator(mode="after")
    def _dp_sgd_needs_a_dp_study(self) -> StudySpec:
        if isinstance(self.model, MlpSpec) and self.model.dp_sgd is not None and self.pets.dp is None:
            raise ValueError("model.dp_sgd is set but the study has no pets.dp: set pets.mode 'secagg_dp' with pets.dp, or remove model.dp_sgd")
        return self

    @model_validator(mode="after")
    def _comparators_fit_the_study(self) -> StudySpec:
        """Comparators are scored on the CV folds' held-out rows from the cohort's variables; their
        training is not part of a DP study's privacy plan, so DP studies cannot have them."""
        chosen = self.evaluation.comparators
        if not chosen:
            return self
        if len(set(chosen)) != len(chosen):
            raise ValueError(f"evaluation.comparators lists a comparator more than once: {list(chosen)}")
        if self.evaluation.cv_folds < 2:
            raise ValueError("evaluation.comparators are scored on the CV folds' held-out rows; set evaluation.cv_folds >= 2")
        if self.pets.dp is not None:
            raise ValueError("evaluation.comparators are not covered by the study's DP plan; remove them with pets.mode 'secagg_dp'")
        for name in chosen:
            missing = [variable for variable in COMPARATOR_VARIABLES[name] if variable not in self.cohort.variables]
            if missing:
                raise ValueError(f"evaluation.comparators: {name!r} needs the cohort variables {missing}; add them to cohort.variables")
        return self

    @model_validator(mode="after")
    def _transformed_columns_are_cohort_variables(self) -> StudySpec:
        for option, names in (("log_transform", self.preprocessing.log_transform), ("categories", self.preprocessing.categories)):
            stray = [name for name in names if name not in self.cohort.variables]
            if stray:
                raise ValueError(f"preprocessing.{option} names {stray}, which are not in cohort.variables {list(self.cohort.variables)}")
        if self.preprocessing.categories and self.pets.dp is not None:
            raise ValueError(
                "preprocessing.categories is not yet supported with pets.mode 'secagg_dp' (the DP column sums bound raw variables, "
                "not category indicators); remove the categories or the DP option"
            )
        return self

    @model_validator(mode="after")
    def _hub_intercepts_fit_the_study(self) -> StudySpec:
        """Hub intercepts are a logistic regression option: its intercept deviations fold into one
        log-odds offset per site when the model is packaged (`flute.deploy.study`), which the
        other families' non-linear use of inputs would not allow; a penalty identifies them next
        to the common intercept; and their sums are per-hub (see PreprocessingSpec), so no PET
        mode that promises sums over hubs only may carry them."""
        if not self.preprocessing.hub_intercepts:
            return self
        if not isinstance(self.model, LogisticRegressionSpec):
            raise ValueError(f"preprocessing.hub_intercepts is an option of logistic_regression, not of model {self.model.name!r}")
        if self.model.l2 <= 0:
            raise ValueError("preprocessing.hub_intercepts needs model.l2 > 0: the penalty separates the hubs' deviations from the common intercept")
        if self.pets.mode != "none":
            raise ValueError(
                f"preprocessing.hub_intercepts is not supported with pets.mode {self.pets.mode!r}: a hub's intercept column "
                "makes its entries of every secure sum that hub's own sums; use pets.mode 'none' or drop the hub intercepts"
            )
        if self.federation.min_hubs > len(self.preprocessing.hub_intercepts):
            raise ValueError(
                f"federation.min_hubs {self.federation.min_hubs} exceeds the {len(self.preprocessing.hub_intercepts)} hubs of "
                "preprocessing.hub_intercepts: list every hub the study runs on"
            )
        return self

    @property
    def study_columns(self) -> tuple[str, ...]:
        """The columns of a hub's study table: the cohort variables, then its hub-intercept columns."""
        return (*self.cohort.variables, *self.preprocessing.hub_columns)

    @property
    def model_inputs(self) -> tuple[str, ...]:
        """The model's input columns after the per-variable transforms, in order."""
        return design_columns(self.study_columns, category_levels(self.preprocessing.categories))

    @model_validator(mode="after")
    def _pets_fit_the_study(self) -> StudySpec:
        """PET choices that only make sense together with the rest of the spec (F-SRS-4)."""
        secagg = self.pets.secure_aggregation
        if secagg is None:
            return self
        if self.evaluation.leave_one_hub_out:
            raise ValueError(
                "evaluation.leave_one_hub_out scores a single held-out hub, whose histogram secure aggregation cannot hide; "
                "set evaluation.leave_one_hub_out = false with pets.mode 'secagg'/'secagg_dp'"
            )
        if self.federation.min_hubs < 2:
            raise ValueError("secure aggregation needs at least 2 hubs per round; set federation.min_hubs >= 2")
        if secagg.threshold is not None and secagg.threshold > self.federation.min_hubs:
            raise ValueError(
                f"pets.secagg.threshold {secagg.threshold} exceeds federation.min_hubs {self.federation.min_hubs}: a round the "
                "study accepts could never complete; lower the threshold or raise min_hubs"
            )
        dp = self.pets.dp
        if dp is None:
            return self
        refusal = dp_model_refusal(self.model)
        if refusal is not None:
            raise ValueError(refusal)
        if isinstance(self.model, MlpSpec):
            if self.model.dp_sgd is None:
                raise ValueError("pets.mode 'secagg_dp' trains an MLP by DP-SGD at each hub; set model.dp_sgd (max_grad_norm, sampling_rate)")
        elif not isinstance(self.model, TREE_SPECS) and not isinstance(self.strategy, ClippedGradientSpec):
            raise ValueError(
                f"pets.mode 'secagg_dp' trains with per-record clipped gradients; set strategy.name = 'clipped_gradient' "
                f"(got {self.strategy.name!r}, whose per-hub updates have no record-level sensitivity bound)"
            )
        missing = [name for name in self.cohort.variables if name not in dp.feature_bounds]
        stray = [name for name in dp.feature_bounds if name not in self.cohort.variables]
        if missing or stray:
            raise ValueError(f"pets.dp.feature_bounds must bound exactly the cohort variables: missing {missing}, not in the cohort {stray}")
        non_positive = [name for name in self.preprocessing.log_transform if dp.feature_bounds[name][0] <= 0]
        if non_positive:
            raise ValueError(f"pets.dp.feature_bounds of log-transformed {non_positive} must have a lower bound > 0")
        if dp.tolerated_colluders + dp.tolerated_dropouts >= self.federation.min_hubs:
            raise ValueError(
                f"pets.dp tolerates {dp.tolerated_colluders} colluder(s) and {dp.tolerated_dropouts} dropout(s), but a round may have "
                f"only federation.min_hubs = {self.federation.min_hubs} hubs: at least one honest surviving hub must remain"
            )
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
        data = self.model_dump(mode="json", exclude_none=True)  # TOML has no null; every None is a default
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
