"""From a federated study's result to a signed artifact: the step after `flute study run`.

The final all-data model is packaged with the study's global preprocessing, the provenance the
spec and result carry (spec hash, hubs, rounds), the PETs and DP budget of the spec, and the
pooled out-of-fold validation figures (F-PIL-15) when the study ran cross-validation.
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import datetime, timezone
from pathlib import Path

from flute import __version__
from flute.deploy.artifact import package_model
from flute.deploy.keys import SigningKey
from flute.deploy.manifest import DEFAULT_THRESHOLD, PrivacyRecord, TrainingProvenance, ValidationMetrics
from flute.engine.records import Preprocessing
from flute.engine.result import StudyResult, TrainedModel
from flute.engine.spec import PetOptions, StudySpec
from flute.evaluate.metrics import EvaluationMetrics


def package_study_result(
    result: StudyResult,
    spec: StudySpec,
    out_dir: Path,
    signing_key: SigningKey,
    *,
    version: str = "1.0.0",
    threshold: float = DEFAULT_THRESHOLD,
    allow_imputation: bool = False,
    trained_at: datetime | None = None,
) -> Path:
    """Sign and write the study's final model as an artifact in `out_dir` (new or empty).

    Raises LookupError when the study has no final model, ValueError when `result` was produced
    by another spec. The model id is the study id."""
    if result.spec != spec:
        raise ValueError(f"the result is of study {result.spec.study_id!r} with another spec than the one given ({spec.study_id!r}); package it with the spec it ran")
    model, site_intercepts = split_hub_intercepts(result.final_model, spec)
    standardiser = model.standardiser
    provenance = TrainingProvenance(
        study_id=spec.study_id,
        spec_sha256=spec_sha256(spec),
        hubs=model.trained_on,
        rounds=model.rounds,
        trained_at=trained_at or datetime.now(timezone.utc),
        code_version=__version__,
    )
    metrics = None
    if result.of_kind("cv"):
        from flute.evaluate.metrics import evaluate_summary

        metrics = validation_metrics(
            evaluate_summary(result.cv_pooled_summary(), decision_thresholds=(threshold,), operating_threshold=threshold),
            method=f"pooled out-of-fold predictions of {spec.evaluation.cv_folds}-fold federated cross-validation",
        )
    return package_model(
        model.fitted(), standardiser, provenance, metrics, out_dir, signing_key,
        model_id=spec.study_id, version=version, title=spec.name, privacy=privacy_record(spec.pets),
        threshold=threshold, allow_imputation=allow_imputation, model_type=model.model_name, site_intercepts=site_intercepts,
    )  # fmt: skip


def split_hub_intercepts(model: TrainedModel, spec: StudySpec) -> tuple[TrainedModel, dict[str, float]]:
    """A logistic model trained with hub intercepts as the model of the common intercept plus
    each hub's log-odds offset. The hub columns are the last, unscaled 0/1 inputs (mean 0, scale
    1), so a site's log-odds are the common model's plus its column's weight, and dropping the
    columns leaves exactly the model an unlisted site gets (all-zero hub columns)."""
    hubs = spec.preprocessing.hub_intercepts
    if not hubs:
        return model, {}
    if model.model_name != "logistic_regression":
        raise ValueError(f"hub intercepts fold only out of a logistic regression, not a {model.model_name}")
    keep = len(model.preprocessing.means) - len(hubs)
    common = dataclasses.replace(
        model,
        columns=model.columns[: len(model.columns) - len(hubs)],
        preprocessing=Preprocessing(model.preprocessing.means[:keep], model.preprocessing.scales[:keep]),
        weights=model.weights[: keep + 1],  # the intercept first, then one weight per input
    )
    return common, {hub: float(weight) for hub, weight in zip(hubs, model.weights[keep + 1 :], strict=True)}


def spec_sha256(spec: StudySpec) -> str:
    """SHA-256 of the spec's JSON form: names exactly which study configuration trained a model."""
    return hashlib.sha256(spec.to_json().encode("utf-8")).hexdigest()


def privacy_record(pets: PetOptions) -> PrivacyRecord:
    """The PETs a study spec applied and, under DP, its (epsilon, delta) guarantee."""
    if pets.mode == "none":
        return PrivacyRecord()
    if pets.dp is None:
        return PrivacyRecord(pets=("secure-aggregation",))
    return PrivacyRecord(
        pets=("secure-aggregation", f"differential-privacy ({pets.dp.unit}-level, {pets.dp.noise} noise)"),
        epsilon=pets.dp.target_epsilon,
        delta=pets.dp.delta,
    )


def validation_metrics(metrics: EvaluationMetrics, method: str) -> ValidationMetrics:
    """The manifest's figures from flute.evaluate's metrics (net benefit at the operating threshold)."""
    point = next(p for p in metrics.decision_curve if p.threshold == metrics.operating_point.threshold)
    fit = metrics.calibration
    return ValidationMetrics(
        method=method,
        n=metrics.n,
        events=metrics.events,
        auroc=metrics.auroc.value,
        auroc_ci_low=metrics.auroc.ci_low,
        auroc_ci_high=metrics.auroc.ci_high,
        calibration_intercept=fit.intercept.value if fit is not None else None,
        calibration_slope=fit.slope.value if fit is not None else None,
        net_benefit_threshold=point.threshold,
        net_benefit=point.model,
        net_benefit_biopsy_all=point.biopsy_all,
    )
