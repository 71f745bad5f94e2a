"""Comparators of the validation report, trained and scored like the study's model (F-PIL-15).

A comparator runs through the SAME messages, hub steps and (under secure aggregation) secure sums
as the study's logistic model: every request of a comparator task carries a `flute.comparator`
tag, and a hub that sees it answers as if the study were the comparator's derived spec over the
comparator's view of its own table. Hubs therefore release only what the model's tasks release
(column sums, Newton sums, risk histograms of the CV folds' held-out rows), and only for
comparators their own copy of the spec lists (`evaluation.comparators`).

- `pirads_only`: logistic regression on PI-RADS alone (federated Newton, no penalty, no class
  weights), trained in each CV fold on the fold's training rows: calibrated risks, so its net
  benefit is meaningful.
- `bcn_reference`: the BCN-style reference of `flute.learn.reference_models` (published odds
  ratios, fixed), whose intercept is recalibrated on each fold's training rows
  (calibration-in-the-large) from summed Newton sums of its one input, the reference log-odds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from flute.cohort.table import StudyTable
from flute.cohort.variables import PIRADS
from flute.engine.flower import ConfigRecord, RecordDict
from flute.engine.hub_steps import HubRefusal
from flute.engine.records import RecordFormatError
from flute.engine.spec import CohortSpec, ComparatorName, LogisticRegressionSpec, NewtonSpec, PreprocessingSpec, StudySpec
from flute.learn.aggregation import Aggregator, NewtonAggregator
from flute.learn.logistic import zero_weights
from flute.learn.reference_models import RECALIBRATION_START, InterceptRecalibration, reference_linear_predictor

COMPARATOR: Final = "flute.comparator"
"""Record name of the tag that makes a request a comparator's."""

REFERENCE_LOGIT: Final = "bcnReferenceLogit"
"""The derived column of `bcn_reference`: the reference's log-odds without intercept."""

LABELS: Final[dict[str, str]] = {
    "pirads_only": "PI-RADS alone",
    "bcn_reference": "BCN-style reference (approximation of BCN-RC 2)",
}


@dataclass(frozen=True)
class ComparatorPlan:
    """How the coordinator trains a comparator: the derived spec its requests run under, the
    aggregator of its rounds and the weights it starts from."""

    name: ComparatorName
    spec: StudySpec
    aggregator: Aggregator
    start: np.ndarray


def comparator_spec(spec: StudySpec, name: ComparatorName) -> StudySpec:
    """The spec a comparator's requests run under, derived from the study's spec (never parsed
    from a message): same study, seed, folds, federation, resources, score grid and PETs; an
    unpenalised logistic model trained by Newton; no leave-one-hub-out, comparators or tuning.
    `bcn_reference` reads its derived column `REFERENCE_LOGIT`, centred but not scaled."""
    variables = (PIRADS,) if name == "pirads_only" else (REFERENCE_LOGIT,)
    return spec.model_copy(
        update={
            "cohort": CohortSpec.model_construct(variables=variables, included_only=spec.cohort.included_only, outcome=spec.cohort.outcome),
            "preprocessing": PreprocessingSpec(standardise=name == "pirads_only", log_transform=()),
            "model": LogisticRegressionSpec(name="logistic_regression"),
            "strategy": NewtonSpec(name="newton"),
            "evaluation": spec.evaluation.model_copy(update={"leave_one_hub_out": False, "comparators": ()}),
            "tuning": None,
        }
    )


def comparator_plan(spec: StudySpec, name: ComparatorName) -> ComparatorPlan:
    derived = comparator_spec(spec, name)
    if name == "pirads_only":
        return ComparatorPlan(name, derived, NewtonAggregator(), zero_weights(1))
    return ComparatorPlan(name, derived, InterceptRecalibration(), RECALIBRATION_START.copy())


def comparator_table(name: ComparatorName, table: StudyTable) -> StudyTable:
    """A hub's table as the comparator sees it (same rows, same labels, so the same folds)."""
    if name == "pirads_only":
        return StudyTable((PIRADS,), table.features[:, [table.columns.index(PIRADS)]], table.labels)
    logit = reference_linear_predictor(table.features, table.columns)
    return StudyTable((REFERENCE_LOGIT,), logit[:, None], table.labels)


# -- the tag on the wire --------------------------------------------------------------------


def tagged(record: RecordDict, name: ComparatorName) -> RecordDict:
    """`record` as a request of comparator `name`."""
    record[COMPARATOR] = ConfigRecord({"name": name})
    return record


def requested_comparator(record: RecordDict) -> str | None:
    """The comparator a request is for, or None for the study's own model."""
    if COMPARATOR not in record.config_records:
        return None
    name = record.config_records[COMPARATOR].get("name")
    if not isinstance(name, str):
        raise RecordFormatError(f"{COMPARATOR}.name: expected a string, got {type(name).__name__}")
    return name


def hub_view(spec: StudySpec, table: StudyTable, request: RecordDict) -> tuple[StudySpec, StudyTable]:
    """The spec and table a hub answers `request` with: its own, or - for a comparator its spec
    lists - the comparator's derived spec and view of the same rows."""
    name = requested_comparator(request)
    if name is None:
        return spec, table
    if name not in spec.evaluation.comparators:
        raise HubRefusal(
            f"request for comparator {name!r} refused: study {spec.study_id} lists comparators {list(spec.evaluation.comparators)}"
        )
    return comparator_spec(spec, name), comparator_table(name, table)  # type: ignore[arg-type]
