"""Report figures drawn from histograms only, returned as PNG bytes.

Figures are built on matplotlib's object API with the Agg canvas (no pyplot, so no global
backend or figure state is touched); matplotlib is imported only when a figure is drawn.
"""

from __future__ import annotations

from typing import Sequence

from flute.evaluate.discrimination import roc_curve
from flute.evaluate.figures import new_figure, png_bytes
from flute.evaluate.report import NamedResult, ValidationReport




def roc_png(sites: Sequence[NamedResult], pooled: NamedResult) -> bytes:
    """ROC curves of every site and (bold) of the pooled patients on one axis."""
    figure = new_figure(5.5, 5.0)
    axis = figure.add_subplot()
    for result, width in (*((site, 1.2) for site in sites), (pooled, 2.5)):
        curve = roc_curve(result.summary)
        axis.plot(curve.false_positive_rate, curve.true_positive_rate,
                  label=f"{result.name} (AUROC {result.metrics.auroc.value:.3f})", linewidth=width)
    axis.plot([0, 1], [0, 1], linestyle=":", color="grey")
    axis.set(xlabel="1 - specificity", ylabel="Sensitivity", xlim=(0, 1), ylim=(0, 1), title="ROC curves")
    axis.legend(loc="lower right", fontsize="small")
    return png_bytes(figure)


def calibration_png(results: Sequence[NamedResult]) -> bytes:
    """One calibration plot per result: observed vs predicted risk by group, with Wilson CIs."""
    figure = new_figure(4.0 * len(results), 4.2)
    axes = figure.subplots(1, len(results), squeeze=False)[0]
    for axis, result in zip(axes, results):
        groups = result.metrics.calibration_curve
        predicted = [g.mean_predicted for g in groups]
        observed = [g.observed for g in groups]
        errors = [[g.observed - g.observed_ci_low for g in groups], [g.observed_ci_high - g.observed for g in groups]]
        axis.errorbar(predicted, observed, yerr=errors, fmt="o", capsize=3)
        axis.plot([0, 1], [0, 1], linestyle=":", color="grey")
        calibration = result.metrics.calibration
        subtitle = (
            f"intercept {calibration.intercept.value:.2f}, slope {calibration.slope.value:.2f}"
            if calibration
            else "calibration not estimable"
        )
        axis.set(xlabel="Predicted risk", ylabel="Observed csPCa rate", xlim=(0, 1), ylim=(0, 1),
                 title=f"{result.name}\n{subtitle}")
    return png_bytes(figure)


def decision_curve_png(report: ValidationReport) -> bytes:
    """Net benefit of the model, comparators, biopsy-all and biopsy-none over the thresholds."""
    figure = new_figure(6.0, 4.5)
    axis = figure.add_subplot()
    curve = report.pooled.metrics.decision_curve
    thresholds = [100 * p.threshold for p in curve]
    axis.plot(thresholds, [p.model for p in curve], linewidth=2.5, label="Federated model")
    for comparator in report.comparators:
        axis.plot(thresholds, [p.model for p in comparator.metrics.decision_curve], label=comparator.name)
    axis.plot(thresholds, [p.biopsy_all for p in curve], linestyle="--", color="black", label="Biopsy all")
    axis.plot(thresholds, [p.biopsy_none for p in curve], linestyle=":", color="grey", label="Biopsy none")
    low = min(0.0, *(p.model for p in curve)) - 0.02
    axis.set(xlabel="Risk threshold for biopsy (%)", ylabel="Net benefit", ylim=(low, None),
             title="Decision curves (pooled patients)")
    axis.legend(fontsize="small")
    return png_bytes(figure)
