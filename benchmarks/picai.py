"""PI-CAI benchmark: federated logistic regression over the three PI-CAI centres as three hubs.

Side by side in one run, on the SAME folds (5-fold CV, stratified by outcome within each centre,
one fixed seed; one case per patient, so folds are per patient):
- federated LR through the embedded engine (ServerApp/ClientApp over the in-process Grid),
- centralised LR on the pooled rows (scikit-learn, an independent implementation),
- each centre's local-only LR (scikit-learn, trained and validated on that centre's folds),
- PI-RADS alone (no model),
plus leave-one-centre-out for the federated and centralised models, and the PET arms:
- federated LR (Newton) with secure aggregation (pets.mode 'secagg'): the coordinator sees only
  sums over the centres; the model must equal the plaintext one to fixed-point precision;
- secure aggregation + record-level DP at epsilon = 1, delta = 1e-5 per patient for the WHOLE
  study (census, one preprocessing release, 5 CV trainings + final model of 2 curvature-scaled
  clipped-gradient rounds each, all composing; PLD accounting): distributed Gaussian noise, each
  centre's privacy ledger charged (pets.mode 'secagg_dp'); DP_RUNS independent studies, the key
  is their mean AUROC and `..._worst` the lowest (each run listed);
- a loss-threshold membership-inference attack on the CV fold models without and with DP:
  members = a fold model's training rows, non-members = its held-out rows; AUC of -log loss.

Predictors: age, log PSA, log prostate volume, case PI-RADS (largest integer of lesion_PIRADS).
Label: case_csPCa. Rows lacking a predictor are left out (complete cases), and counted.

Model zoo (`--models`, default all; `benchmarks/picai_models.py`): decision tree, random forest,
gradient-boosted trees, linear SVM and MLP, federated vs the same algorithm on pooled rows.

Usage: .venv/bin/python benchmarks/picai.py [--data PATH] [--json PATH] [--models lr,tree,forest,gbdt,svm,mlp]
The marksheet is public but not shipped: without it the benchmark says so and exits 0.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BENCHMARKS = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS.parent
DEFAULT_DATA = REPO_ROOT / ".." / "shared" / "data" / "picai" / "marksheet.csv"
CENTRES = ("RUMC", "PCNN", "ZGT")
COLUMNS = ("ageAtBiopsy", "psa", "prostateVolume", "pirads")
LOG_COLUMNS = ("psa", "prostateVolume")
FOLDS = 5
SEED = 20240101


@dataclass(frozen=True)
class Centre:
    name: str
    features: np.ndarray
    labels: np.ndarray
    folds: np.ndarray


def case_pirads(text: str) -> float:
    """Largest integer PI-RADS among a case's lesions; 'N/A' entries are ignored."""
    scores = [int(part) for part in text.replace('"', "").split(",") if part.strip().isdigit()]
    return float(max(scores)) if scores else np.nan


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return np.nan


def load_centres(path: Path) -> tuple[list[Centre], dict[str, int]]:
    """One case per patient (earliest MRI), complete cases; folds per centre from the seed."""
    from flute.learn.folds import stratified_folds

    with path.open(newline="", encoding="utf-8") as handle:
        rows = sorted(csv.DictReader(handle), key=lambda r: (r["patient_id"], r["mri_date"], r["study_id"]))
    first_case: dict[str, dict[str, str]] = {}
    for row in rows:
        first_case.setdefault(row["patient_id"], row)
    counts = {"cases": len(rows), "patients": len(first_case), "incomplete": 0}
    centres = []
    for name in CENTRES:
        features, labels = [], []
        for row in first_case.values():
            if row["center"] != name:
                continue
            values = [_number(row["patient_age"]), _number(row["psa"]), _number(row["prostate_volume"]), case_pirads(row["lesion_PIRADS"])]
            if any(np.isnan(values)) or values[1] <= 0 or values[2] <= 0:
                counts["incomplete"] += 1
                continue
            features.append(values)
            labels.append(1 if row["case_csPCa"] == "YES" else 0)
        x, y = np.array(features), np.array(labels, dtype=np.int64)
        centres.append(Centre(name, x, y, stratified_folds(y, FOLDS, SEED)))
    return centres, counts


def sklearn_lr_risks(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray) -> np.ndarray:
    """The independent centralised reference: log -> standardise -> unpenalised LR (sklearn)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    log_index = [COLUMNS.index(c) for c in LOG_COLUMNS]

    def log_some(x: np.ndarray) -> np.ndarray:
        out = x.copy()
        out[:, log_index] = np.log(out[:, log_index])
        return out

    model = make_pipeline(FunctionTransformer(log_some), StandardScaler(), LogisticRegression(C=np.inf, max_iter=1000, tol=1e-10))
    model.fit(train_x, train_y)
    return model.predict_proba(test_x)[:, 1]


#: Clipping ranges of the DP column sums (raw units), fixed before seeing the data.
DP_FEATURE_BOUNDS = {"ageAtBiopsy": (40.0, 90.0), "psa": (0.1, 100.0), "prostateVolume": (10.0, 300.0), "pirads": (1.0, 5.0)}
DP_EPSILON, DP_DELTA = 1.0, 1e-5
DP_TRAINING = {"rounds": 2, "learning_rate": 1.0, "tolerance": 1e-10}
DP_STRATEGY = {"name": "clipped_gradient", "clip_norm": 1.0, "step": "curvature"}
#: Independent DP studies (fresh noise, each charging fresh ledgers): one study's AUROC depends on
#: its noise, so the figures are the mean and the worst over these runs.
DP_RUNS = 10


def study_spec(pets: str = "none"):  # type: ignore[no-untyped-def]
    from flute.engine.spec import StudySpec

    data = {
        "study_id": "picai-benchmark",
        "name": "PI-CAI: federated LR across RUMC, PCNN, ZGT",
        "cohort": {"variables": list(COLUMNS)},
        "preprocessing": {"log_transform": list(LOG_COLUMNS)},
        "model": {"name": "logistic_regression", "l2": 0.0},
        "strategy": {"name": "newton"},
        "training": {"rounds": 25, "tolerance": 1e-10},
        "seed": SEED,
        "federation": {"min_hubs": 2},
        "evaluation": {"cv_folds": FOLDS, "leave_one_hub_out": pets == "none"},
        "pets": {"mode": pets},
    }
    if pets == "secagg_dp":
        data["strategy"] = DP_STRATEGY
        data["training"] = DP_TRAINING
        data["pets"]["dp"] = {"target_epsilon": DP_EPSILON, "delta": DP_DELTA, "feature_bounds": DP_FEATURE_BOUNDS}
    return StudySpec.from_mapping(data)


def membership_auc(result, centres: list[Centre]) -> float:  # type: ignore[no-untyped-def]
    """Loss-threshold membership inference (Yeom et al. 2018) on the CV fold models: the
    attacker scores each record by -log loss under a fold model; members are that model's
    training rows, non-members its held-out rows. AUC 0.5 = the attack learns nothing."""
    from flute.evaluate.exact import exact_auroc

    scores, membership = [], []
    for outcome in result.of_kind("cv"):
        for c in centres:
            risk = np.clip(outcome.model.predict(c.features), 1e-12, 1 - 1e-12)
            loss = -(c.labels * np.log(risk) + (1 - c.labels) * np.log(1 - risk))
            scores.append(-loss)
            membership.append((c.folds != outcome.task.fold).astype(np.int64))
    return exact_auroc(np.concatenate(membership), np.concatenate(scores))


def run_pet_arms(centres: list[Centre], plain_result) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Secure aggregation, and secure aggregation + DP (each centre's ledger in a temporary
    database, its budget set to the study's epsilon as a data owner would)."""
    if str(BENCHMARKS) not in sys.path:  # this module may be loaded by path (tests), not run as a script
        sys.path.insert(0, str(BENCHMARKS))
    from picai_dp import run_dp_study

    from flute.cohort.table import StudyTable
    from flute.engine.apps import client_app, server_app
    from flute.engine.embedded import HubBinding, run_embedded, study_run_config
    from flute.engine.sources import InMemorySource
    from flute.evaluate.discrimination import auroc

    figures: dict[str, float] = {}
    started = time.perf_counter()
    spec = study_spec("secagg")
    hubs = [HubBinding(c.name, source=InMemorySource(StudyTable(COLUMNS, c.features, c.labels))) for c in centres]
    secure = run_embedded(server_app, client_app, hubs, study_run_config(spec))
    figures["secagg_seconds"] = time.perf_counter() - started
    figures["auroc_federated_lr_secagg"] = auroc(secure.cv_pooled_summary()).value
    figures["secagg_max_weight_difference"] = float(np.max(np.abs(secure.final_model.weights - plain_result.final_model.weights)))

    spec = study_spec("secagg_dp")
    private_results, private_aurocs = [], []
    for run in range(DP_RUNS):
        started = time.perf_counter()
        private, spent_epsilon, spent_delta = run_dp_study(spec, centres, COLUMNS, DP_EPSILON, DP_DELTA)
        private_results.append(private)
        figures["secagg_dp_seconds"] = time.perf_counter() - started
        private_aurocs.append(auroc(private_results[-1].cv_pooled_summary()).value)
        figures[f"auroc_federated_lr_secagg_dp_eps1_run{run + 1}"] = private_aurocs[-1]
    figures["auroc_federated_lr_secagg_dp_eps1"] = float(np.mean(private_aurocs))
    figures["auroc_federated_lr_secagg_dp_eps1_worst"] = float(np.min(private_aurocs))
    figures["dp_epsilon_charged_per_hub"] = spent_epsilon
    figures["dp_delta_charged_per_hub"] = spent_delta
    figures["mia_auc_no_dp"] = membership_auc(plain_result, centres)
    figures["mia_auc_dp_eps1"] = float(np.mean([membership_auc(private, centres) for private in private_results]))
    return figures


def run(centres: list[Centre]) -> dict[str, float]:
    from flute.cohort.table import StudyTable
    from flute.engine.apps import client_app, server_app
    from flute.engine.embedded import HubBinding, run_embedded, study_run_config
    from flute.engine.sources import InMemorySource
    from flute.evaluate.discrimination import auroc
    from flute.evaluate.exact import accuracy_versus_exact, exact_auroc
    from flute.evaluate.summary import summarise_scores

    spec = study_spec()
    grid = spec.score_grid()
    started = time.perf_counter()
    hubs = [HubBinding(c.name, source=InMemorySource(StudyTable(COLUMNS, c.features, c.labels))) for c in centres]
    result = run_embedded(server_app, client_app, hubs, study_run_config(spec))
    federated_seconds = time.perf_counter() - started

    # Exact out-of-fold scores of the federated fold models (the benchmark may hold the rows;
    # the engine never did) to measure what the histograms cost.
    fed_risk = {c.name: np.empty(c.labels.shape[0]) for c in centres}
    for outcome in result.of_kind("cv"):
        for c in centres:
            held_out = c.folds == outcome.task.fold
            fed_risk[c.name][held_out] = outcome.model.predict(c.features[held_out])
    all_y = np.concatenate([c.labels for c in centres])
    all_fed = np.concatenate([fed_risk[c.name] for c in centres])
    histogram_consistent = summarise_scores(all_y, all_fed, grid).equals(result.cv_pooled_summary())
    accuracy = accuracy_versus_exact(all_y, all_fed, grid)
    fed_pooled = auroc(result.cv_pooled_summary())

    # Centralised and local-only references on the same folds.
    central_risk = {c.name: np.empty(c.labels.shape[0]) for c in centres}
    local_risk = {c.name: np.empty(c.labels.shape[0]) for c in centres}
    for fold in range(FOLDS):
        train_x = np.vstack([c.features[c.folds != fold] for c in centres])
        train_y = np.concatenate([c.labels[c.folds != fold] for c in centres])
        for c in centres:
            test = c.folds == fold
            central_risk[c.name][test] = sklearn_lr_risks(train_x, train_y, c.features[test])
            local_risk[c.name][test] = sklearn_lr_risks(c.features[~test], c.labels[~test], c.features[test])
    all_central = np.concatenate([central_risk[c.name] for c in centres])
    central = auroc(summarise_scores(all_y, all_central, grid))
    pirads = np.concatenate([c.features[:, COLUMNS.index("pirads")] for c in centres])
    pirads_ci = auroc(summarise_scores(all_y, (pirads - 1.0) / 4.0, grid))

    figures: dict[str, float] = {
        "n_patients": float(all_y.shape[0]),
        "auroc_federated_lr": fed_pooled.value,
        "auroc_federated_lr_ci_low": fed_pooled.ci_low,
        "auroc_federated_lr_ci_high": fed_pooled.ci_high,
        "auroc_centralised_lr": exact_auroc(all_y, all_central),
        "auroc_centralised_lr_ci_low": central.ci_low,
        "auroc_centralised_lr_ci_high": central.ci_high,
        "auroc_pirads_only": exact_auroc(all_y, pirads),
        "auroc_pirads_only_ci_low": pirads_ci.ci_low,
        "auroc_pirads_only_ci_high": pirads_ci.ci_high,
        "auroc_ratio_federated_vs_centralised": fed_pooled.value / exact_auroc(all_y, all_central),
        "auroc_error_vs_exact": accuracy.auroc_error,
        "calibration_intercept_error_vs_exact": accuracy.intercept_error,
        "calibration_slope_error_vs_exact": accuracy.slope_error,
        "histograms_equal_recomputed": float(histogram_consistent),
        "federated_seconds": federated_seconds,
    }
    site_summaries = result.cv_site_summaries()
    gaps = []
    for c in centres:
        fed_site = auroc(site_summaries[c.name]).value
        local_site = exact_auroc(c.labels, local_risk[c.name])
        figures[f"auroc_federated_{c.name}"] = fed_site
        figures[f"auroc_local_only_{c.name}"] = local_site
        gaps.append(fed_site - local_site)
    figures["site_gap_min"] = min(gaps)
    loho = result.loho_summaries()
    for c in centres:
        others = [o for o in centres if o is not c]
        risk = sklearn_lr_risks(np.vstack([o.features for o in others]), np.concatenate([o.labels for o in others]), c.features)
        figures[f"loco_federated_{c.name}"] = auroc(loho[c.name]).value
        figures[f"loco_centralised_{c.name}"] = exact_auroc(c.labels, risk)
    return {**figures, **run_pet_arms(centres, result)}


def print_table(figures: dict[str, float], counts: dict[str, int]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    central = figures["auroc_centralised_lr"]
    table = Table(title=f"PI-CAI csPCa: {int(figures['n_patients'])} patients, 3 centres, 5-fold CV (same folds for every arm)")
    for column in ("arm", "AUROC", "95% CI", "ratio vs centralised"):
        table.add_column(column, justify="right" if column != "arm" else "left")
    for arm, key in (("federated LR (3 hubs, Newton)", "auroc_federated_lr"), ("centralised LR (pooled, sklearn)", "auroc_centralised_lr"), ("PI-RADS alone", "auroc_pirads_only")):
        ci = f"{figures[key + '_ci_low']:.3f}-{figures[key + '_ci_high']:.3f}"
        table.add_row(arm, f"{figures[key]:.4f}", ci, f"{figures[key] / central:.4f}")
    console.print(table)
    sites = Table(title="Per centre (that centre's folds) and leave-one-centre-out")
    for column in ("centre", "federated", "local-only", "gap", "LOCO federated", "LOCO centralised"):
        sites.add_column(column, justify="right" if column != "centre" else "left")
    for name in CENTRES:
        fed, local = figures[f"auroc_federated_{name}"], figures[f"auroc_local_only_{name}"]
        sites.add_row(name, f"{fed:.4f}", f"{local:.4f}", f"{fed - local:+.4f}", f"{figures[f'loco_federated_{name}']:.4f}", f"{figures[f'loco_centralised_{name}']:.4f}")
    console.print(sites)
    pets = Table(title=f"PETs (same folds): secure aggregation; + record-level DP (epsilon {DP_EPSILON:g}, delta {DP_DELTA:g} per patient, whole study)")
    for column in ("arm", "AUROC", "minus federated LR", "MIA AUC", "seconds"):
        pets.add_column(column, justify="right" if column != "arm" else "left")
    fed = figures["auroc_federated_lr"]
    pets.add_row("federated LR, plaintext", f"{fed:.4f}", "0", f"{figures['mia_auc_no_dp']:.4f}", f"{figures['federated_seconds']:.1f}")
    for arm, key, mia, seconds in (
        ("federated LR, secure aggregation", "auroc_federated_lr_secagg", "", "secagg_seconds"),
        (f"secure aggregation + DP eps 1 (mean of {DP_RUNS})", "auroc_federated_lr_secagg_dp_eps1", "mia_auc_dp_eps1", "secagg_dp_seconds"),
        (f"secure aggregation + DP eps 1 (worst of {DP_RUNS})", "auroc_federated_lr_secagg_dp_eps1_worst", "", "secagg_dp_seconds"),
    ):
        pets.add_row(arm, f"{figures[key]:.4f}", f"{figures[key] - fed:+.4f}", f"{figures[mia]:.4f}" if mia else "-", f"{figures[seconds]:.1f}")
    console.print(pets)
    console.print(
        f"secure aggregation vs plaintext final model: max weight difference {figures['secagg_max_weight_difference']:.2e}; "
        f"each centre's ledger charged epsilon {figures['dp_epsilon_charged_per_hub']:.4f}, delta {figures['dp_delta_charged_per_hub']:.1e} "
        f"per DP study; DP runs: {', '.join(f'{figures[k]:.4f}' for k in sorted(figures) if k.startswith('auroc_federated_lr_secagg_dp_eps1_run'))}"
    )
    console.print(
        f"histogram vs exact on the same scores: AUROC error {figures['auroc_error_vs_exact']:.2e}, calibration intercept "
        f"{figures['calibration_intercept_error_vs_exact']:.2e}, slope {figures['calibration_slope_error_vs_exact']:.2e}; "
        f"engine histograms equal recomputed: {bool(figures['histograms_equal_recomputed'])}; "
        f"federated run {figures['federated_seconds']:.1f}s; cases {counts['cases']}, patients {counts['patients']}, "
        f"left out (missing predictor) {counts['incomplete']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="PI-CAI marksheet.csv")
    parser.add_argument("--json", type=Path, default=None, help="write the figures as a flat JSON object")
    parser.add_argument(
        "--models", default="lr,tree,forest,gbdt,svm,mlp",
        help="comma-separated arms: lr (logistic regression with the local-only, leave-one-centre-out and PET arms), tree, forest, gbdt, svm, mlp",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(f"PI-CAI marksheet not found at {args.data}; skipping the benchmark (pass --data PATH).")
        return 0
    sys.path.insert(0, str(REPO_ROOT / "src"))
    from picai_models import MODEL_KEYS, DpSetting, print_model_table, run_model_arms

    models = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = sorted(set(models) - {"lr", *MODEL_KEYS})
    if unknown:
        parser.error(f"unknown --models {unknown}; choose from lr, {', '.join(MODEL_KEYS)}")
    centres, counts = load_centres(args.data)
    figures = run(centres) if "lr" in models else {}
    if figures:
        print_table(figures, counts)
    zoo = [key for key in MODEL_KEYS if key in models]
    figures.update(run_model_arms(centres, zoo, COLUMNS, LOG_COLUMNS, FOLDS, SEED, DpSetting(DP_EPSILON, DP_DELTA, DP_FEATURE_BOUNDS)))
    print_model_table(figures, zoo, SEED)
    federated = [figures[f"auroc_federated_{key}"] for key in ["lr", *zoo] if f"auroc_federated_{key}" in figures]
    figures["auroc_best_federated"] = max(federated)
    if args.json is not None:
        args.json.write_text(json.dumps({**figures, **{k: float(v) for k, v in counts.items()}}, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
