"""The validation report of a federated csPCa model, shaped after TRIPOD+AI and TRIPOD-Cluster.

`build_validation_report` takes only score histograms (per site, leave-one-hospital-out,
comparators) plus descriptions of the study and of how training/evaluation ran, and computes
everything else. Renderers (`flute.evaluate.terminal`, `flute.evaluate.html_report`) only lay
out what is here, so the terminal and HTML views can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from flute.evaluate.decision import DECISION_THRESHOLDS, OPERATING_THRESHOLD
from flute.evaluate.grid import ScoreGrid
from flute.evaluate.heterogeneity import RandomEffectsSummary, pool_aurocs, pool_calibration_slopes
from flute.evaluate.metrics import EvaluationMetrics, evaluate_summary
from flute.evaluate.summary import ScoreSummary, combine


@dataclass(frozen=True)
class StudyDescription:
    """What was validated."""

    study_id: str
    name: str
    model_description: str


@dataclass(frozen=True)
class RunDescription:
    """How federated training and evaluation ran (TRIPOD+AI asks for it; F-SRS-4: chosen PETs).

    `epsilon`/`delta` are the differential-privacy budget spent, None when DP was not used.
    """

    mode: str
    pets: tuple[str, ...]
    rounds: int | None
    epsilon: float | None = None
    delta: float | None = None


@dataclass(frozen=True)
class NamedSummary:
    """Report input: a score histogram with its label (site, held-out site or comparator name).

    `missing_percent`: share of the site's included patients with at least one missing
    predictor before imputation (an aggregate the hub reports), None when unknown.
    """

    name: str
    summary: ScoreSummary
    missing_percent: float | None = None


@dataclass(frozen=True)
class NamedResult:
    """A labelled histogram with every metric computed from it."""

    name: str
    summary: ScoreSummary
    missing_percent: float | None
    metrics: EvaluationMetrics


@dataclass(frozen=True)
class Heterogeneity:
    """Random-effects summaries across sites; slope is None when a site's slope is not estimable."""

    auroc: RandomEffectsSummary
    calibration_slope: RandomEffectsSummary | None


@dataclass(frozen=True)
class ValidationReport:
    """Everything a TRIPOD-style validation of a federated model reports.

    `internal_external`: leave-one-hospital-out rows - the model trained without a hospital,
    evaluated on that hospital. `comparators`: other predictors (e.g. PI-RADS alone, a BCN-style
    reference) evaluated on the same pooled patients, side by side with the model (F-PIL-15).
    """

    study: StudyDescription
    run: RunDescription
    grid: ScoreGrid
    sites: tuple[NamedResult, ...]
    pooled: NamedResult
    internal_external: tuple[NamedResult, ...]
    comparators: tuple[NamedResult, ...]
    heterogeneity: Heterogeneity | None
    operating_threshold: float

    @property
    def methods(self) -> str:
        """The methods paragraph: how the numbers were obtained and how exact they are."""
        grid = self.grid
        pets = ", ".join(self.run.pets) if self.run.pets else "none"
        privacy = (
            f"differential privacy budget epsilon = {self.run.epsilon:g}"
            + (f", delta = {self.run.delta:g}" if self.run.delta is not None else "")
            if self.run.epsilon is not None
            else "no differential privacy"
        )
        rounds = f" over {self.run.rounds} rounds" if self.run.rounds is not None else ""
        return (
            f"The model was trained and evaluated in {self.run.mode} mode{rounds}; privacy-enhancing "
            f"technologies: {pets}; {privacy}. No patient-level prediction left a hospital: every "
            "metric was computed at the coordinator from additive per-hospital histograms of "
            f"predicted risk ({grid.n_bins} bins, uniform on the logit scale over "
            f"+-{grid.logit_limit:g}, bin width {grid.bin_width:.4f}, with bin edges at every "
            "whole-percent risk), split by outcome, with per-bin fixed-point sums of logit risk. "
            "AUROC is the Mann-Whitney statistic of the histogram (pairs within a bin counted as "
            "ties); it differs from the patient-level AUROC by at most "
            f"{self.pooled.metrics.auroc.error_bound:.4f} for the pooled model (worst case; "
            "genuinely tied scores add no error). 95 % CIs use DeLong's variance with placement "
            "values computed from the histogram. Calibration intercept (calibration-in-the-large, "
            "logit of predicted risk as offset) and slope were fitted by Newton-Raphson maximum "
            "likelihood on the bins as weighted points at each outcome's mean logit (error second "
            "order in the bin width); calibration curves use groups of equal size by predicted "
            "risk with Wilson 95 % CIs. Net benefit and operating-point counts are exact because "
            "the thresholds are bin edges. Heterogeneity across hospitals: DerSimonian-Laird "
            "random effects on logit AUROC and on the calibration slope, with 95 % CI and 95 % "
            "prediction interval (t distribution, k - 2 degrees of freedom)."
        )


def _evaluate(item: NamedSummary, thresholds: Sequence[float], operating_threshold: float) -> NamedResult:
    try:
        metrics = evaluate_summary(
            item.summary, decision_thresholds=thresholds, operating_threshold=operating_threshold
        )
    except ValueError as error:
        raise ValueError(f"validation report: cannot evaluate '{item.name}': {error}") from error
    return NamedResult(item.name, item.summary, item.missing_percent, metrics)


def _pooled_missing_percent(sites: Sequence[NamedSummary]) -> float | None:
    """Patient-weighted mean of the sites' missing-data shares (None if any site did not report)."""
    shares = [(site.missing_percent, site.summary.n) for site in sites]
    if any(share is None for share, _ in shares):
        return None
    return sum(share * n for share, n in shares if share is not None) / sum(n for _, n in shares)


def _heterogeneity(sites: Sequence[NamedResult]) -> Heterogeneity | None:
    if len(sites) < 2:
        return None
    calibrations = [site.metrics.calibration for site in sites]
    slope = (
        pool_calibration_slopes([c.slope for c in calibrations if c is not None])
        if all(c is not None for c in calibrations)
        else None
    )
    return Heterogeneity(auroc=pool_aurocs([site.metrics.auroc for site in sites]), calibration_slope=slope)


def build_validation_report(
    study: StudyDescription,
    run: RunDescription,
    sites: Sequence[NamedSummary],
    *,
    internal_external: Sequence[NamedSummary] = (),
    comparators: Sequence[NamedSummary] = (),
    decision_thresholds: Sequence[float] = DECISION_THRESHOLDS,
    operating_threshold: float = OPERATING_THRESHOLD,
) -> ValidationReport:
    """Compute the report from histograms alone.

    Comparators must cover exactly the pooled patients (same n and events), otherwise the
    side-by-side comparison would compare different populations.
    """
    if not sites:
        raise ValueError("validation report: no sites given; at least one hospital must report")
    names = [site.name for site in sites]
    if len(set(names)) != len(names):
        raise ValueError(f"validation report: site names must be unique, got {names}")
    grid = sites[0].summary.grid
    for item in (*sites, *internal_external, *comparators):
        if item.summary.grid != grid:
            raise ValueError(f"validation report: '{item.name}' was summarised on a different ScoreGrid")
    pooled_summary = combine(site.summary for site in sites)
    for comparator in comparators:
        if (comparator.summary.n, comparator.summary.n_events) != (pooled_summary.n, pooled_summary.n_events):
            raise ValueError(
                f"validation report: comparator '{comparator.name}' covers {comparator.summary.n} men "
                f"({comparator.summary.n_events} csPCa) but the pooled sites cover {pooled_summary.n} "
                f"({pooled_summary.n_events}); comparators must be scored on the same patients"
            )

    def evaluate(item: NamedSummary) -> NamedResult:
        return _evaluate(item, decision_thresholds, operating_threshold)

    site_results = tuple(evaluate(site) for site in sites)
    return ValidationReport(
        study=study,
        run=run,
        grid=grid,
        sites=site_results,
        pooled=evaluate(NamedSummary("Pooled", pooled_summary, _pooled_missing_percent(sites))),
        internal_external=tuple(evaluate(item) for item in internal_external),
        comparators=tuple(evaluate(item) for item in comparators),
        heterogeneity=_heterogeneity(site_results),
        operating_threshold=operating_threshold,
    )
