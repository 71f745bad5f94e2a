"""Vetted tree, forest, boosting, SVM and MLP models of the study spec, and the tuning section
(F-HUF-4..7, F-HUF-9/10, F-PIL-23).

Each model's hyperparameters are typed and bounded; hubs validate them again before computing
anything. Minimum leaf sizes keep every released node statistic a sum over several rows. `params()`
turns a spec into the plain parameters of `flute.learn`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flute.learn.mlp import MlpParams
from flute.learn.svm import LinearSvmParams
from flute.learn.tree_models import BoostingParams, DecisionTreeParams, RandomForestParams

ClassWeight = Literal["none", "balanced"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DecisionTreeSpec(_Strict):
    """Federated CART-style tree grown from class-count histograms (F-HUF-4)."""

    name: Literal["decision_tree"]
    max_depth: int = Field(default=4, ge=1, le=12)
    min_rows_leaf: int = Field(default=20, ge=5, le=100_000)
    criterion: Literal["gini", "entropy"] = "gini"
    max_bins: int = Field(default=32, ge=2, le=256)
    class_weight: ClassWeight = "none"

    def params(self) -> DecisionTreeParams:
        return DecisionTreeParams(self.max_depth, self.min_rows_leaf, self.criterion, self.max_bins)


class RandomForestSpec(_Strict):
    """Federated random forest: Poisson bootstrap at the hubs, features drawn per node (F-HUF-5)."""

    name: Literal["random_forest"]
    n_trees: int = Field(default=50, ge=1, le=500)
    max_depth: int = Field(default=6, ge=1, le=12)
    min_rows_leaf: int = Field(default=10, ge=5, le=100_000)
    criterion: Literal["gini", "entropy"] = "gini"
    max_bins: int = Field(default=32, ge=2, le=256)
    max_features: float = Field(default=0.5, gt=0.0, le=1.0)
    bootstrap: bool = True
    class_weight: ClassWeight = "none"

    def params(self) -> RandomForestParams:
        return RandomForestParams(
            self.n_trees, self.max_depth, self.min_rows_leaf, self.criterion, self.max_bins, self.max_features, self.bootstrap
        )


class GbdtSpec(_Strict):
    """Federated gradient-boosted trees, second-order (XGBoost-style) on the logistic loss."""

    name: Literal["gbdt"]
    n_trees: int = Field(default=100, ge=1, le=1000)
    max_depth: int = Field(default=3, ge=1, le=8)
    learning_rate: float = Field(default=0.1, gt=0.0, le=1.0)
    l2: float = Field(default=1.0, ge=0.0, le=1e4)
    min_child_weight: float = Field(default=1.0, gt=0.0, le=1e4)
    min_split_gain: float = Field(default=0.0, ge=0.0, le=1e4)
    max_bins: int = Field(default=32, ge=2, le=256)
    class_weight: ClassWeight = "none"

    def params(self) -> BoostingParams:
        return BoostingParams(
            self.n_trees, self.max_depth, self.learning_rate, self.l2, self.min_child_weight, self.min_split_gain, self.max_bins
        )


class LinearSvmSpec(_Strict):
    """Federated linear SVM by FedAvg/FedProx/FedAdam local steps, Platt-scaled (F-HUF-6)."""

    name: Literal["linear_svm"]
    loss: Literal["hinge", "squared_hinge"] = "squared_hinge"
    l2: float = Field(default=0.01, gt=0.0, le=1e3)
    class_weight: ClassWeight = "none"

    def params(self) -> LinearSvmParams:
        return LinearSvmParams(self.loss, self.l2)


class MlpDpSgdSpec(_Strict):
    """DP-SGD of the hubs' local MLP steps under pets.mode 'secagg_dp' (`flute.learn.mlp.DpSgd`):
    per-row gradients clipped to `max_grad_norm`, Poisson sampling at `sampling_rate`; the noise
    multiplier comes from the study's privacy plan, not from here."""

    max_grad_norm: float = Field(default=1.0, gt=0.0, le=1e3)
    sampling_rate: float = Field(default=0.1, gt=0.0, le=1.0)


class MlpSpec(_Strict):
    """Federated one-hidden-layer network by FedAvg/FedProx/FedAdam local steps (F-HUF-7);
    `dp_sgd` (required under pets.mode 'secagg_dp') makes every hub's local step DP-SGD."""

    name: Literal["mlp"]
    hidden_units: int = Field(default=8, ge=1, le=256)
    l2: float = Field(default=1e-3, ge=0.0, le=1e3)
    activation: Literal["tanh", "relu"] = "tanh"
    class_weight: ClassWeight = "none"
    dp_sgd: MlpDpSgdSpec | None = None

    def params(self) -> MlpParams:
        return MlpParams(self.hidden_units, self.l2, self.activation)


TREE_SPECS = (DecisionTreeSpec, RandomForestSpec, GbdtSpec)
LOCAL_STEP_SPECS = (LinearSvmSpec, MlpSpec)


class ChoiceRange(_Strict):
    """A hyperparameter's candidate values: explicit `choices`, or a numeric range [low, high]
    (`log` for a log scale, `integer` for whole numbers; grid search takes `steps` points)."""

    choices: tuple[float | int | str | bool, ...] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    steps: int = Field(default=3, ge=2, le=20)

    @model_validator(mode="after")
    def _one_kind(self) -> ChoiceRange:
        if (self.choices is None) == (self.low is None or self.high is None):
            raise ValueError("give either choices [...] or both low and high")
        if self.choices is not None and not self.choices:
            raise ValueError("choices must not be empty")
        if self.low is not None and self.high is not None:
            if not self.low < self.high:
                raise ValueError(f"low {self.low} must be below high {self.high}")
            if self.log and self.low <= 0:
                raise ValueError("a log-scale range needs low > 0")
        return self


class TuningSpec(_Strict):
    """Federated hyperparameter search (F-HUF-9 Bayesian, F-HUF-10 grid): each trial is a whole
    federated cross-validation of the model with the trial's hyperparameters; the objective is
    the pooled CV AUROC from the hubs' histograms. Names in `space` are the model's options."""

    method: Literal["grid", "bayes"]
    trials: int = Field(default=20, ge=1, le=500)
    space: dict[str, ChoiceRange] = Field(min_length=1)
