"""Comparators of the validation report (F-PIL-15): PI-RADS alone and the BCN-style reference,
trained and scored federatedly on the model's CV folds with the model's privacy rules, equal the
same comparators computed on pooled rows; and what the simulated pilot cohort shows."""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.optimize import brentq

from flute.cohort.sim_tables import simulated_site_tables
from flute.cohort.table import StudyTable
from flute.cohort.variables import PIRADS, VARIABLE_NAMES
from flute.demo import DEMO_SPEC, POOLED_PREPROCESSING
from flute.engine.apps import client_app, server_app
from flute.engine.comparators import LABELS, comparator_table, hub_view, tagged
from flute.engine.checkpoint import Checkpoint
from flute.engine.embedded import HubBinding, run_embedded, study_run_config
from flute.engine.flower import RecordDict
from flute.engine.grid import HubFault
from flute.engine.hub_steps import HubRefusal
from flute.engine.records import RowSelection, StatsIns
from flute.engine.result import StudyResult, Task
from flute.engine.sources import InMemorySource
from flute.engine.spec import COMPARATOR_VARIABLES, SpecError, StudySpec
from flute.engine.validation import validation_report
from flute.engine.workflow import TooFewHubs
from flute.evaluate.decision import OPERATING_THRESHOLD
from flute.evaluate.exact import exact_auroc
from flute.evaluate.report import NamedResult, ValidationReport
from flute.evaluate.tables import comparator_table as comparator_report_table
from flute.learn.folds import stratified_folds
from flute.learn.reference_models import BCN_REFERENCE, reference_linear_predictor

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")

COMPARATORS = ["pirads_only", "bcn_reference"]
HISTOGRAM_TOLERANCE = 0.002


def site_tables(scale: float, seed: int = 0) -> dict[str, StudyTable]:
    """The simulated pilot hospitals' included, labelled rows, as each hub's store holds them."""
    return simulated_site_tables(seed, scale)


def demo_spec(**evaluation: Any) -> StudySpec:
    data = {**DEMO_SPEC, "evaluation": {**DEMO_SPEC["evaluation"], "comparators": COMPARATORS, **evaluation}}  # type: ignore[dict-item]
    return StudySpec.from_mapping(data)


def run(tables: dict[str, StudyTable], spec: StudySpec) -> StudyResult:
    hubs = [HubBinding(name, source=InMemorySource(table)) for name, table in tables.items()]
    return run_embedded(server_app, client_app, hubs, study_run_config(spec))


def comparator(report: ValidationReport, name: str) -> NamedResult:
    return next(result for result in report.comparators if result.name == LABELS[name])


# -- the same comparators on pooled rows ---------------------------------------------------


def _pirads_risks(train: StudyTable, held_out: StudyTable) -> np.ndarray:
    """Unpenalised logistic regression on mean-imputed PI-RADS (Newton on the pooled rows)."""
    column = VARIABLE_NAMES.index(PIRADS)
    mean = np.nanmean(train.features[:, column])

    def design(table: StudyTable) -> np.ndarray:
        values = np.where(np.isnan(table.features[:, column]), mean, table.features[:, column])
        return np.column_stack([np.ones(table.n), values])

    x, y, weights = design(train), train.labels, np.zeros(2)
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-x @ weights))
        weights -= np.linalg.solve((x * (p * (1 - p))[:, None]).T @ x, x.T @ (p - y))
    return 1.0 / (1.0 + np.exp(-design(held_out) @ weights))


def _reference_risks(train: StudyTable, held_out: StudyTable) -> np.ndarray:
    """The fixed reference with its intercept solved so predicted = observed csPCa on train."""
    logit = reference_linear_predictor(train.features, train.columns)
    intercept = brentq(lambda b: float(np.sum(1.0 / (1.0 + np.exp(-(b + logit)))) - train.labels.sum()), -60.0, 60.0, xtol=1e-12)
    return 1.0 / (1.0 + np.exp(-(intercept + reference_linear_predictor(held_out.features, held_out.columns))))


def pooled_out_of_fold(tables: dict[str, StudyTable], spec: StudySpec, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold risks of a comparator fitted on pooled training rows, with the same folds the
    hubs assign themselves (stratified per hub from the study seed)."""
    risks_of = _pirads_risks if name == "pirads_only" else _reference_risks
    k = spec.evaluation.cv_folds
    folds = {hub: stratified_folds(table.labels, k, spec.seed) for hub, table in tables.items()}
    labels, risks = [], []
    for fold in range(k):

        def part(keep_fold: bool) -> StudyTable:
            chosen = [(t.features[(folds[h] == fold) == keep_fold], t.labels[(folds[h] == fold) == keep_fold]) for h, t in tables.items()]
            return StudyTable(VARIABLE_NAMES, np.vstack([f for f, _ in chosen]), np.concatenate([y for _, y in chosen]))

        held_out = part(True)
        labels.append(held_out.labels)
        risks.append(risks_of(part(False), held_out))
    return np.concatenate(labels), np.concatenate(risks)


def net_benefit(labels: np.ndarray, risks: np.ndarray, threshold: float = OPERATING_THRESHOLD) -> float:
    biopsy = risks >= threshold
    true_positive = np.sum(biopsy & (labels == 1))
    false_positive = np.sum(biopsy & (labels == 0))
    return float(true_positive / labels.size - false_positive / labels.size * threshold / (1 - threshold))


@cache
def small_study() -> tuple[dict[str, StudyTable], StudyResult]:
    tables = site_tables(0.25)
    return tables, run(tables, demo_spec())


@pytest.mark.parametrize("name", COMPARATORS)
def test_federated_comparator_equals_the_pooled_computation(name: str) -> None:
    tables, result = small_study()
    report = validation_report(result, mode="embedded")
    federated = comparator(report, name).metrics
    labels, risks = pooled_out_of_fold(tables, result.spec, name)
    assert federated.n == labels.size == report.pooled.metrics.n
    assert abs(federated.auroc.value - exact_auroc(labels, risks)) <= HISTOGRAM_TOLERANCE
    assert abs(federated.operating_point.counts.net_benefit - net_benefit(labels, risks)) <= HISTOGRAM_TOLERANCE


def test_comparator_models_are_the_pooled_models_fold_by_fold() -> None:
    """Beyond the histograms: each fold's federated comparator predicts the pooled fit's risks."""
    tables, result = small_study()
    k, seed = result.spec.evaluation.cv_folds, result.spec.seed
    folds = {hub: stratified_folds(table.labels, k, seed) for hub, table in tables.items()}
    outcomes = [outcome for outcome in result.outcomes if outcome.task.comparator]
    assert {outcome.task.key for outcome in outcomes} == {f"{name}/cv-fold-{fold}" for name in COMPARATORS for fold in range(k)}
    for outcome in outcomes:
        fold, name = outcome.task.fold, outcome.task.comparator
        train = StudyTable(VARIABLE_NAMES, *(np.concatenate(parts) for parts in zip(*((t.features[folds[h] != fold], t.labels[folds[h] != fold]) for h, t in tables.items()))))
        held = StudyTable(VARIABLE_NAMES, *(np.concatenate(parts) for parts in zip(*((t.features[folds[h] == fold], t.labels[folds[h] == fold]) for h, t in tables.items()))))
        view = comparator_table(name, held)  # type: ignore[arg-type]
        expected = (_pirads_risks if name == "pirads_only" else _reference_risks)(train, held)
        np.testing.assert_allclose(outcome.model.predict(view.features), expected, atol=1e-8)
        if name == "bcn_reference":
            assert outcome.model.weights[1] == 1.0  # published coefficients kept; only the intercept moves


def test_comparators_under_secure_aggregation_give_the_same_histograms() -> None:
    """Under pets.mode 'secagg' the comparators' requests take the model's secure-sum path: the
    coordinator gets only sums over hubs, equal to the sums of the plaintext histograms."""
    tables, plain = small_study()
    evaluation = {**DEMO_SPEC["evaluation"], "leave_one_hub_out": False, "comparators": COMPARATORS}  # type: ignore[dict-item]
    secure_spec = {**DEMO_SPEC, "preprocessing": POOLED_PREPROCESSING, "evaluation": evaluation, "pets": {"mode": "secagg"}}  # no hub intercepts under secagg
    secure = run(tables, StudySpec.from_mapping(secure_spec))
    for name in COMPARATORS:
        expected, summed = plain.comparator_summaries()[name].to_arrays(), secure.comparator_summaries()[name].to_arrays()
        assert expected.keys() == summed.keys()
        for key, value in expected.items():
            # the same patients in the same bins; fixed-point training moves a logit sum by 1 unit at most
            np.testing.assert_allclose(summed[key], value, rtol=1e-6, atol=1, err_msg=key)
        assert plain.comparator_summaries()[name].n == secure.comparator_summaries()[name].n


def test_result_record_keeps_the_comparators() -> None:
    _, result = small_study()
    again = StudyResult.from_record(result.to_record())
    assert again.comparator_summaries().keys() == result.comparator_summaries().keys()
    assert again.cv_pooled_summary().n == result.cv_pooled_summary().n
    assert Task.from_key("bcn_reference/cv-fold-3") == Task("cv", fold=3, comparator="bcn_reference")


def test_report_shows_comparators_side_by_side() -> None:
    _, result = small_study()
    table = comparator_report_table(validation_report(result, mode="embedded"))
    assert [row[0] for row in table.rows] == ["Federated model", LABELS["pirads_only"], LABELS["bcn_reference"]]
    assert "Model AUROC minus this" in table.columns


def test_a_study_stopped_within_the_comparators_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    tables = site_tables(0.1)
    spec = demo_spec(cv_folds=2, leave_one_hub_out=False)
    uninterrupted = run(tables, spec)
    rounds = {outcome.task.key: outcome.model.rounds for outcome in uninterrupted.outcomes}
    # census; per task: preprocessing, its rounds, evaluation; fail in the 2nd PI-RADS fold
    after = 1 + sum(2 + rounds[key] for key in ("cv-fold-0", "cv-fold-1", "pirads_only/cv-fold-0")) + 1
    checkpoint = tmp_path / "study.checkpoint"
    hubs = [HubBinding(name, source=InMemorySource(table), fault=HubFault("raise", after=after) if name == "irst" else None) for name, table in tables.items()]
    with pytest.raises(TooFewHubs):
        run_embedded(server_app, client_app, hubs, study_run_config(spec, checkpoint=checkpoint))
    saved = Checkpoint.load(checkpoint)
    assert [outcome.task.key for outcome in saved.completed.outcomes] == ["cv-fold-0", "cv-fold-1", "pirads_only/cv-fold-0"]
    resumed = run_embedded(
        server_app, client_app, [HubBinding(name, source=InMemorySource(table)) for name, table in tables.items()], study_run_config(spec, checkpoint=checkpoint)
    )
    assert [o.task for o in resumed.outcomes] == [o.task for o in uninterrupted.outcomes]
    for a, b in zip(resumed.outcomes, uninterrupted.outcomes):
        assert a.model.weights.tobytes() == b.model.weights.tobytes()
        assert all(x.summary.equals(y.summary) for x, y in zip(a.scores, b.scores))


# -- refusals ------------------------------------------------------------------------------


def test_hub_refuses_a_comparator_its_spec_does_not_list() -> None:
    spec = demo_spec(comparators=["pirads_only"])
    table = site_tables(0.05)["irst"]
    request = tagged(StatsIns(RowSelection()).to_record(), "bcn_reference")
    with pytest.raises(HubRefusal, match="bcn_reference"):
        hub_view(spec, table, request)
    derived, view = hub_view(spec, table, tagged(RecordDict(), "pirads_only"))
    assert derived.cohort.variables == view.columns == (PIRADS,)
    assert hub_view(spec, table, RecordDict()) == (spec, table)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"evaluation": {"cv_folds": 0, "comparators": ["pirads_only"]}}, "cv_folds >= 2"),
        ({"cohort": {"variables": ["psa", "pirads"]}, "preprocessing": {"log_transform": ["psa"]}, "evaluation": {"comparators": ["bcn_reference"]}}, "needs the cohort variables"),
        ({"evaluation": {"comparators": ["pirads_only", "pirads_only"]}}, "more than once"),
        ({"evaluation": {"comparators": ["bcn_rc3"]}}, "pirads_only"),
    ],
)
def test_spec_refuses_comparators_that_do_not_fit(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(SpecError, match=reason):
        StudySpec.from_mapping({**DEMO_SPEC, **change})


def test_reference_reads_exactly_the_variables_the_spec_requires() -> None:
    assert set(BCN_REFERENCE.variables) == set(COMPARATOR_VARIABLES["bcn_reference"])


# -- the finding on the simulated pilot cohort -------------------------------------------


@pytest.mark.slow
def test_on_the_simulated_pilot_cohort_the_federated_model_beats_both_on_auroc_and_net_benefit() -> None:
    """At demo scale (seed 0), the demo's federated logistic regression (PI-RADS as categories, one
    intercept per hospital). Each site's outcomes follow its own evidence-anchored true model
    (`flute.cohort.risk_model`: PSA density, site-specific PI-RADS reading and DRE), so the
    BCN-style reference is a transported published model, not the data-generating one. The model
    beats PI-RADS alone clearly, and the reference on AUROC (by ~0.01) and on net benefit at
    15 % (by ~0.001, about 3 of 2,802 men: the reference is close to the true risks' own net
    benefit on this cohort; `benchmarks/simulated_pilot.py` shows the other seeds). With one
    intercept for all hospitals the same model is behind the reference on net benefit at this
    seed, which the second half pins (F-PIL-15)."""
    tables = site_tables(1.0)
    report = validation_report(run(tables, demo_spec(leave_one_hub_out=False)), mode="embedded")
    model, pirads, reference = report.pooled.metrics, comparator(report, "pirads_only").metrics, comparator(report, "bcn_reference").metrics
    net_benefit = {name: m.operating_point.counts.net_benefit for name, m in (("model", model), ("pirads", pirads), ("reference", reference))}
    assert model.auroc.value - pirads.auroc.value > 0.08
    assert net_benefit["model"] > net_benefit["pirads"] + 0.01
    assert model.auroc.value > reference.auroc.value + 0.005
    assert net_benefit["model"] > net_benefit["reference"]
    pooled_spec = json.loads(demo_spec(leave_one_hub_out=False).to_json())
    pooled_spec["preprocessing"]["hub_intercepts"] = []
    pooled = validation_report(run(tables, StudySpec.from_mapping(pooled_spec)), mode="embedded").pooled.metrics
    assert pooled.operating_point.counts.net_benefit < net_benefit["reference"] < net_benefit["model"]
