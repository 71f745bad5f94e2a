"""The report's tables as formatted text, shared by the terminal and HTML renderers.

Formatting lives here once, so both views show identical numbers (and tests can compare the
HTML against these strings).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import isnan

from flute.evaluate.calibration import Estimate
from flute.evaluate.discrimination import AurocEstimate
from flute.evaluate.heterogeneity import RandomEffectsSummary
from flute.evaluate.report import NamedResult, ValidationReport


@dataclass(frozen=True)
class ReportTable:
    """A titled table of preformatted cells."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def format_auroc(a: AurocEstimate) -> str:
    return f"{a.value:.3f} ({a.ci_low:.3f}-{a.ci_high:.3f})"


def format_estimate(e: Estimate) -> str:
    return f"{e.value:.2f} ({e.ci_low:.2f} to {e.ci_high:.2f})"


def format_percent(value: float | None) -> str:
    return "n/a" if value is None or isnan(value) else f"{value:.1f}%"


def format_net_benefit(value: float) -> str:
    return f"{value:.4f}"


def format_interval(low: float | None, high: float | None, digits: int) -> str:
    return "n/a (k < 3)" if low is None or high is None else f"{low:.{digits}f} to {high:.{digits}f}"


def _threshold_label(threshold: float) -> str:
    return f"{100 * threshold:g}%"


def _performance_row(result: NamedResult) -> tuple[str, ...]:
    m = result.metrics
    calibration = m.calibration
    not_estimable = "not estimable"
    return (
        result.name,
        str(m.n),
        format_percent(100 * m.prevalence),
        format_percent(result.missing_percent),
        format_auroc(m.auroc),
        format_estimate(calibration.intercept) if calibration else not_estimable,
        format_estimate(calibration.slope) if calibration else not_estimable,
    )


_PERFORMANCE_COLUMNS = (
    "n",
    "csPCa prevalence",
    "Missing data",
    "AUROC (95% CI)",
    "Calibration intercept (95% CI)",
    "Calibration slope (95% CI)",
)


def run_table(report: ValidationReport) -> ReportTable:
    run = report.run
    return ReportTable(
        title="Study and federated run",
        columns=("Item", "Value"),
        rows=(
            ("Study", f"{report.study.name} ({report.study.study_id})"),
            ("Model", report.study.model_description),
            ("Mode", run.mode),
            ("Rounds", "n/a" if run.rounds is None else str(run.rounds)),
            ("Privacy-enhancing technologies", ", ".join(run.pets) if run.pets else "none"),
            ("Differential privacy epsilon", "not used" if run.epsilon is None else f"{run.epsilon:g}"),
            ("Differential privacy delta", "not used" if run.delta is None else f"{run.delta:g}"),
        ),
    )


def site_table(report: ValidationReport) -> ReportTable:
    return ReportTable(
        title="Performance per hospital and pooled",
        columns=("Hospital", *_PERFORMANCE_COLUMNS),
        rows=tuple(_performance_row(r) for r in (*report.sites, report.pooled)),
    )


def internal_external_table(report: ValidationReport) -> ReportTable:
    return ReportTable(
        title="Internal-external validation (leave one hospital out)",
        columns=("Held-out hospital", *_PERFORMANCE_COLUMNS),
        rows=tuple(_performance_row(r) for r in report.internal_external),
    )


def comparator_table(report: ValidationReport) -> ReportTable:
    """Model and comparators side by side; the AUROC difference is a point estimate (model minus
    comparator): the histograms are not paired per patient, so no CI of the difference."""
    threshold = _threshold_label(report.operating_threshold)
    model_auroc = report.pooled.metrics.auroc.value
    rows = []
    for result in (report.pooled, *report.comparators):
        m = result.metrics
        rows.append(
            (
                "Federated model" if result is report.pooled else result.name,
                format_auroc(m.auroc),
                "-" if result is report.pooled else f"{model_auroc - m.auroc.value:+.3f}",
                format_net_benefit(m.operating_point.counts.net_benefit),
                format_percent(m.operating_point.biopsies_avoided_percent),
                format_percent(m.operating_point.cspca_missed_percent),
            )
        )
    return ReportTable(
        title="Model and comparators on the pooled patients",
        columns=(
            "Predictor",
            "AUROC (95% CI)",
            "Model AUROC minus this",
            f"Net benefit at {threshold}",
            f"Biopsies avoided at {threshold}",
            f"csPCa missed at {threshold}",
        ),
        rows=tuple(rows),
    )


def _random_effects_row(metric: str, summary: RandomEffectsSummary, digits: int) -> tuple[str, ...]:
    return (
        metric,
        str(summary.k),
        f"{summary.estimate:.{digits}f}",
        format_interval(summary.ci_low, summary.ci_high, digits),
        format_interval(summary.prediction_low, summary.prediction_high, digits),
        f"{summary.tau_squared:.4f}",
        format_percent(100 * summary.i_squared),
    )


def heterogeneity_table(report: ValidationReport) -> ReportTable:
    rows = []
    if report.heterogeneity is not None:
        rows.append(_random_effects_row("AUROC (pooled on logit scale)", report.heterogeneity.auroc, 3))
        if report.heterogeneity.calibration_slope is not None:
            rows.append(_random_effects_row("Calibration slope", report.heterogeneity.calibration_slope, 2))
    return ReportTable(
        title="Heterogeneity across hospitals (DerSimonian-Laird random effects)",
        columns=("Metric", "Sites", "Summary", "95% CI", "95% prediction interval", "tau^2", "I^2"),
        rows=tuple(rows),
    )


def decision_curve_table(report: ValidationReport) -> ReportTable:
    model_curve = report.pooled.metrics.decision_curve
    comparator_curves = [c.metrics.decision_curve for c in report.comparators]
    rows = []
    for index, point in enumerate(model_curve):
        rows.append(
            (
                _threshold_label(point.threshold),
                format_net_benefit(point.model),
                *(format_net_benefit(curve[index].model) for curve in comparator_curves),
                format_net_benefit(point.biopsy_all),
                format_net_benefit(point.biopsy_none),
                f"{point.biopsies_avoided_per_100:.1f}",
            )
        )
    return ReportTable(
        title="Decision curve: net benefit on the pooled patients",
        columns=(
            "Threshold",
            "Federated model",
            *(c.name for c in report.comparators),
            "Biopsy all",
            "Biopsy none",
            "Net biopsies avoided per 100 (model)",
        ),
        rows=tuple(rows),
    )


def operating_point_table(report: ValidationReport) -> ReportTable:
    rows = []
    for result in (*report.sites, report.pooled):
        op = result.metrics.operating_point
        rows.append(
            (
                result.name,
                format_percent(op.biopsies_avoided_percent),
                format_percent(op.cspca_missed_percent),
                format_percent(100 * op.sensitivity),
                format_percent(100 * op.specificity),
                format_percent(100 * op.positive_predictive_value),
                format_percent(100 * op.negative_predictive_value),
            )
        )
    return ReportTable(
        title=f"Biopsy decision at a {_threshold_label(report.operating_threshold)} risk threshold",
        columns=("Hospital", "Biopsies avoided", "csPCa missed", "Sensitivity", "Specificity", "PPV", "NPV"),
        rows=tuple(rows),
    )


def report_tables(report: ValidationReport) -> tuple[ReportTable, ...]:
    """All tables in reading order (empty optional sections are left out)."""
    tables = [run_table(report), site_table(report)]
    if report.internal_external:
        tables.append(internal_external_table(report))
    tables.append(comparator_table(report))
    if report.heterogeneity is not None:
        tables.append(heterogeneity_table(report))
    tables += [decision_curve_table(report), operating_point_table(report)]
    return tuple(tables)
