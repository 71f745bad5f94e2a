"""The model-zoo arms of the PI-CAI benchmark (`benchmarks/picai.py --models ...`): decision tree,
random forest, gradient-boosted trees, linear SVM and MLP, each federated over the three centres and
centralised on the pooled rows, on the same 5-fold CV folds as the logistic regression arms.

- federated: the embedded engine (ServerApp/ClientApp over the in-process Grid), CV only;
- centralised: the SAME algorithm (`flute.learn.federated_estimators`, one partition) on the
  pooled training rows of each fold, with the same preprocessing (log, standardise from the
  pooled training rows): the federated-vs-centralised gap measures what federation costs;
- scikit-learn reference (context, not the gap): DecisionTreeClassifier, RandomForestClassifier,
  HistGradientBoostingClassifier, LinearSVC (squared hinge) and MLPClassifier (Adam) with
  matching hyperparameters;
- the MLP also with secure aggregation + record-level DP at the LR arm's (epsilon, delta) per
  patient for the whole study: each centre trains by DP-SGD (full batch, clipping 1, MLP_DP_ROUNDS
  rounds of one local epoch), census and preprocessing releases compose with every step (PLD),
  each centre's ledger charged; MLP_DP_RUNS independent studies, mean and worst AUROC.

Hyperparameters are fixed below (chosen once on PI-CAI for speed and accuracy); the federated
search of `flute.engine.tuning` can tune them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

MODEL_KEYS = ("tree", "forest", "gbdt", "svm", "mlp")
MLP_DP_RUNS = 5
MLP_DP_ROUNDS = 8


@dataclass(frozen=True)
class DpSetting:
    """The record-level DP budget of a private arm and the public clipping ranges (raw units)."""

    epsilon: float
    delta: float
    feature_bounds: dict[str, tuple[float, float]]


@dataclass(frozen=True)
class ModelArm:
    key: str
    label: str
    model: dict[str, Any]
    strategy: dict[str, Any] | None
    pooled: Callable[[], Any]
    sklearn: Callable[[int], Any]  # n training rows -> unfitted scikit-learn estimator


def model_arms(seed: int) -> dict[str, ModelArm]:
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.svm import LinearSVC
    from sklearn.tree import DecisionTreeClassifier

    from sklearn.neural_network import MLPClassifier

    from flute.learn.federated_estimators import FederatedLinearSvm, FederatedMlp, FederatedTreeClassifier
    from flute.learn.mlp import MlpParams
    from flute.learn.svm import LinearSvmParams
    from flute.learn.tree_models import BoostingParams, DecisionTreeParams, RandomForestParams

    tree = DecisionTreeParams(max_depth=6, min_rows_leaf=30)
    forest = RandomForestParams(n_trees=50, max_depth=6, min_rows_leaf=40, max_features=0.75)
    gbdt = BoostingParams(n_trees=60, max_depth=2, learning_rate=0.1, min_child_weight=5.0)
    svm = LinearSvmParams(loss="squared_hinge", l2=0.01)
    mlp = MlpParams(hidden_units=4, l2=0.01, activation="tanh")
    return {
        "tree": ModelArm(
            "tree", "tree", {"name": "decision_tree", "max_depth": 6, "min_rows_leaf": 30}, None,
            lambda: FederatedTreeClassifier(tree),
            lambda n: DecisionTreeClassifier(max_depth=6, min_samples_leaf=30, random_state=0),
        ),
        "forest": ModelArm(
            "forest", "forest",
            {"name": "random_forest", "n_trees": 50, "max_depth": 6, "min_rows_leaf": 40, "max_features": 0.75}, None,
            lambda: FederatedTreeClassifier(forest, seed=seed),
            lambda n: RandomForestClassifier(n_estimators=50, max_depth=6, min_samples_leaf=40, max_features=0.75, random_state=0),
        ),
        "gbdt": ModelArm(
            "gbdt", "GBDT",
            {"name": "gbdt", "n_trees": 60, "max_depth": 2, "learning_rate": 0.1, "min_child_weight": 5.0}, None,
            lambda: FederatedTreeClassifier(gbdt),
            lambda n: HistGradientBoostingClassifier(max_iter=60, max_depth=3, learning_rate=0.1, l2_regularization=1.0, early_stopping=False),
        ),
        "svm": ModelArm(
            "svm", "SVM", {"name": "linear_svm", "loss": "squared_hinge", "l2": 0.01}, {"name": "fedavg"},
            lambda: FederatedLinearSvm(svm, max_rounds=200, local_epochs=5, learning_rate=0.5),
            lambda n: LinearSVC(loss="squared_hinge", C=1.0 / (0.01 * n), max_iter=10_000),
        ),
        "mlp": ModelArm(
            "mlp", "MLP", {"name": "mlp", "hidden_units": 4, "l2": 0.01, "activation": "tanh"}, {"name": "fedavg"},
            lambda: FederatedMlp(mlp, max_rounds=200, local_epochs=5, learning_rate=0.5, seed=seed),
            # scikit-learn's penalty is alpha / (2 n) ||W||^2, FLUTE's (l2 / 2) ||W||^2
            lambda n: MLPClassifier(hidden_layer_sizes=(4,), activation="tanh", alpha=0.01 * n, max_iter=2000, random_state=0),
        ),
    }  # fmt: skip



def _spec(arm: ModelArm, columns: tuple[str, ...], log_columns: tuple[str, ...], folds: int, seed: int, dp: DpSetting | None = None):  # type: ignore[no-untyped-def]
    """The arm's study; with `dp`, the private MLP study (DP-SGD, secure aggregation)."""
    from flute.engine.spec import StudySpec

    data: dict[str, Any] = {
        "study_id": f"picai-{arm.key}",
        "name": f"PI-CAI: federated {arm.label} across RUMC, PCNN, ZGT",
        "cohort": {"variables": list(columns)},
        "preprocessing": {"log_transform": list(log_columns)},
        "model": arm.model,
        "training": {"rounds": 200, "tolerance": 1e-8, "local_epochs": 5, "learning_rate": 0.5},
        "seed": seed,
        "federation": {"min_hubs": 2},
        "evaluation": {"cv_folds": folds, "leave_one_hub_out": False},
    }
    if arm.strategy is not None:
        data["strategy"] = arm.strategy
    if dp is not None:
        data["study_id"] = f"picai-{arm.key}-dp"
        data["model"] = {**arm.model, "dp_sgd": {"max_grad_norm": 1.0, "sampling_rate": 1.0}}
        data["training"] = {"rounds": MLP_DP_ROUNDS, "tolerance": 1e-10, "local_epochs": 1, "learning_rate": 3.0}
        data["pets"] = {"mode": "secagg_dp", "dp": {"target_epsilon": dp.epsilon, "delta": dp.delta, "feature_bounds": dp.feature_bounds}}
    return StudySpec.from_mapping(data)


def run_model_arms(
    centres: list[Any], keys: list[str], columns: tuple[str, ...], log_columns: tuple[str, ...], folds: int, seed: int, dp: DpSetting
) -> dict[str, float]:
    """auroc_federated_<key>, auroc_centralised_<key>, auroc_gap_<key>, auroc_sklearn_<key> and
    federated_seconds_<key> for each model key; for the MLP also the private arm
    (auroc_federated_mlp_dp_eps<epsilon> mean and _worst, mlp_dp_epsilon_charged_per_hub)."""
    from flute.cohort.table import StudyTable
    from flute.engine.apps import client_app, server_app
    from flute.engine.embedded import HubBinding, run_embedded, study_run_config
    from flute.engine.sources import InMemorySource
    from flute.evaluate.discrimination import auroc
    from flute.evaluate.exact import exact_auroc
    from flute.learn.preprocess import Standardiser, column_sums, log_transform

    arms = model_arms(seed)
    labels = np.concatenate([c.labels for c in centres])
    figures: dict[str, float] = {}
    for key in keys:
        arm = arms[key]
        started = time.perf_counter()
        hubs = [HubBinding(c.name, source=InMemorySource(StudyTable(columns, c.features, c.labels))) for c in centres]
        result = run_embedded(server_app, client_app, hubs, study_run_config(_spec(arm, columns, log_columns, folds, seed)))
        figures[f"federated_seconds_{key}"] = time.perf_counter() - started
        figures[f"auroc_federated_{key}"] = auroc(result.cv_pooled_summary()).value
        pooled = {c.name: np.empty(c.labels.shape[0]) for c in centres}
        reference = {c.name: np.empty(c.labels.shape[0]) for c in centres}
        for fold in range(folds):
            train_x = np.vstack([c.features[c.folds != fold] for c in centres])
            train_y = np.concatenate([c.labels[c.folds != fold] for c in centres])
            standardiser = Standardiser.from_sums(columns, log_columns, column_sums(log_transform(train_x, columns, log_columns)))
            inputs = standardiser.transform(train_x)
            model = arm.pooled().fit(inputs, train_y)
            baseline = arm.sklearn(train_y.shape[0]).fit(inputs, train_y)
            for c in centres:
                test = standardiser.transform(c.features[c.folds == fold])
                pooled[c.name][c.folds == fold] = model.predict_proba(test)[:, 1]
                scores = baseline.decision_function(test) if key == "svm" else baseline.predict_proba(test)[:, 1]
                reference[c.name][c.folds == fold] = scores
        figures[f"auroc_centralised_{key}"] = exact_auroc(labels, np.concatenate([pooled[c.name] for c in centres]))
        figures[f"auroc_gap_{key}"] = figures[f"auroc_federated_{key}"] - figures[f"auroc_centralised_{key}"]
        figures[f"auroc_sklearn_{key}"] = exact_auroc(labels, np.concatenate([reference[c.name] for c in centres]))
    if "mlp" in keys:
        figures.update(_private_mlp(arms["mlp"], centres, columns, log_columns, folds, seed, dp))
    return figures


def _private_mlp(arm: ModelArm, centres: list[Any], columns: tuple[str, ...], log_columns: tuple[str, ...], folds: int, seed: int, dp: DpSetting) -> dict[str, float]:
    from picai_dp import run_dp_study

    from flute.evaluate.discrimination import auroc

    spec = _spec(arm, columns, log_columns, folds, seed, dp)
    key = f"auroc_federated_mlp_dp_eps{dp.epsilon:g}"
    figures: dict[str, float] = {}
    aurocs = []
    for run in range(MLP_DP_RUNS):
        started = time.perf_counter()
        result, spent_epsilon, _ = run_dp_study(spec, centres, columns, dp.epsilon, dp.delta)
        figures["federated_seconds_mlp_dp"] = time.perf_counter() - started
        aurocs.append(auroc(result.cv_pooled_summary()).value)
        figures[f"{key}_run{run + 1}"] = aurocs[-1]
    figures[key], figures[f"{key}_worst"] = float(np.mean(aurocs)), float(np.min(aurocs))
    figures["mlp_dp_epsilon_charged_per_hub"] = spent_epsilon
    return figures


def print_model_table(figures: dict[str, float], keys: list[str], seed: int) -> None:
    from rich.console import Console
    from rich.table import Table

    arms = model_arms(seed)
    table = Table(title="PI-CAI model zoo: 5-fold CV AUROC, federated (3 hubs) vs the same algorithm on pooled rows")
    # LR: Newton; SVM and MLP: FedAvg (SVM Platt-scaled); centralised LR is scikit-learn's
    for column in ("model", "fed.", "central", "gap", "ratio", "sklearn", "fed. s"):
        table.add_column(column, justify="left" if column == "model" else "right")
    if "auroc_federated_lr" in figures:
        fed, central = figures["auroc_federated_lr"], figures["auroc_centralised_lr"]
        table.add_row("LR", f"{fed:.4f}", f"{central:.4f}", f"{fed - central:+.4f}", f"{fed / central:.4f}", f"{central:.4f}", f"{figures['federated_seconds']:.1f}")
    for key in keys:
        fed, central = figures[f"auroc_federated_{key}"], figures[f"auroc_centralised_{key}"]
        table.add_row(
            arms[key].label, f"{fed:.4f}", f"{central:.4f}", f"{fed - central:+.4f}", f"{fed / central:.4f}",
            f"{figures[f'auroc_sklearn_{key}']:.4f}", f"{figures[f'federated_seconds_{key}']:.1f}",
        )  # fmt: skip
    Console().print(table)
    private = sorted(k for k in figures if k.startswith("auroc_federated_mlp_dp_eps") and k[len("auroc_federated_mlp_dp_eps"):].replace(".", "").isdigit())
    for key in private:
        runs = ", ".join(f"{figures[k]:.4f}" for k in sorted(figures) if k.startswith(f"{key}_run"))
        Console().print(
            f"MLP, secure aggregation + DP-SGD (epsilon {key.removeprefix('auroc_federated_mlp_dp_eps')} per patient, whole study): "
            f"mean AUROC {figures[key]:.4f}, worst {figures[key + '_worst']:.4f} over {MLP_DP_RUNS} studies ({runs}); "
            f"each centre's ledger charged epsilon {figures['mlp_dp_epsilon_charged_per_hub']:.4f}; "
            f"minus federated MLP {figures[key] - figures['auroc_federated_mlp']:+.4f}"
        )
