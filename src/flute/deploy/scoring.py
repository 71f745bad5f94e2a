"""Scoring FHIR input with a verified model: the clinical site's path (F-PIL-24, F-STD-7).

Input goes through exactly the hub's pipeline - `flute.fhir.screen` (readers' errors, profile
validation, references, transaction atomicity) and `flute.fhir.extract` (study variables, unit
harmonisation) - so a site scores a patient from the same variables a hub would have trained on.

Then each patient is checked against the model's manifest before it is scored:
- `score.ineligible`: the patient does not meet the inclusion criteria (PSA >= 3 ng/mL or a
  suspicious DRE), i.e. is outside the model's intended population;
- `score.missing`: a variable is missing and the manifest does not allow imputation;
- `score.range`: a value outside the feature schema's allowed range or codes, or <= 0 where
  the model takes its logarithm;
- `score.no-patient`: the input holds no Patient to score.
Any error (from validation, extraction or these checks) fails the whole request: the caller gets
every problem at once as an OperationOutcome, never a partial answer that hides a patient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable

import numpy as np

from flute.cohort.variables import StudyRow
from flute.deploy.artifact import ScoringModel
from flute.fhir.extract import extract_all
from flute.fhir.issues import Issue, Severity
from flute.fhir.risk_assessment import CsPcaPrediction, ModelReference, risk_assessment, risk_assessment_bundle
from flute.fhir.screen import screen
from flute.fhir.source import ImportUnit
from flute.fhir.validate import blocks_import

SCORING_RULES = ("score.ineligible", "score.missing", "score.range", "score.no-patient")


@dataclass(frozen=True)
class ScoringReport:
    """The predictions (input patient order) and every issue met on the way."""

    predictions: tuple[CsPcaPrediction, ...]
    issues: tuple[Issue, ...]

    @property
    def failed(self) -> bool:
        return blocks_import(self.issues)


def score_units(units: Iterable[ImportUnit], model: ScoringModel) -> ScoringReport:
    """Screen, extract, check against the manifest, then score every patient in one call."""
    screened = screen(units)
    rows, extract_issues = extract_all(screened.accepted)
    issues = [*screened.issues, *extract_issues]
    if not rows and not screened.has_errors:
        issues.append(Issue(Severity.ERROR, "score.no-patient", "the input holds no Patient resource to score; send a Bundle with the Patient and their records (rule score.no-patient)", code="required"))
    scoreable = []
    for row in rows:
        problems = _row_problems(row, model)
        issues.extend(problems)
        if not problems:
            scoreable.append(row)
    if blocks_import(issues):
        return ScoringReport((), tuple(issues))
    features = np.array([[_as_float(row.variables.get(name)) for name in model.columns] for row in scoreable], dtype=np.float64)
    risks = model.predict(features.reshape(len(scoreable), len(model.columns)))
    predictions = tuple(
        CsPcaPrediction(row.patient, float(risk), model.threshold, row.source_resources) for row, risk in zip(scoreable, risks)
    )
    return ScoringReport(predictions, tuple(issues))


def assessments_bundle(report: ScoringReport, model: ScoringModel, occurrence: datetime | None = None) -> dict[str, Any]:
    """The report's predictions as a collection Bundle of RiskAssessments."""
    when = occurrence or datetime.now(timezone.utc)
    identity = model.manifest.model
    reference = ModelReference(identity.model_id, identity.version, identity.title)
    return risk_assessment_bundle((risk_assessment(p, reference, when) for p in report.predictions), when)


def _row_problems(row: StudyRow, model: ScoringModel) -> list[Issue]:
    where = f"Patient/{row.patient}"
    if not row.included:
        return [_issue("score.ineligible", row, f"{where}: does not meet the inclusion criteria (PSA >= 3 ng/mL or a suspicious DRE), so it is outside the population model {model.manifest.model.model_id} is intended for; it is not scored", "business-rule")]
    problems = []
    missing = [name for name in model.columns if row.variables.get(name) is None]
    if missing and not model.manifest.preprocessing.impute_missing:
        problems.append(_issue("score.missing", row, f"{where}: {missing} missing; model {model.manifest.model.model_id} requires every variable (its manifest does not allow imputation); send the records they come from", "required"))
    log_columns = model.manifest.preprocessing.log_transform
    for feature in model.manifest.features:
        value = row.variables.get(feature.name)
        problem = feature.problem_with(float(value)) if value is not None else None
        if problem is None and value is not None and feature.name in log_columns and value <= 0:
            problem = f"{feature.name} = {value:g} has no logarithm, which the model takes"
        if problem is not None:
            problems.append(_issue("score.range", row, f"{where}: {problem}; the model was not built for it, so it is not scored", "value"))
    return problems


def _issue(rule: str, row: StudyRow, text: str, code: str) -> Issue:
    return Issue(Severity.ERROR, rule, f"{text} (rule {rule})", "Patient", row.patient, code=code)


def _as_float(value: float | int | None) -> float:
    return math.nan if value is None else float(value)
