"""Write a validation report as ONE self-contained HTML file (tables + base64-embedded PNGs).

A single file with no external assets can be archived with the study, attached to an email or
opened offline in a hospital network - the usual fate of validation reports.
"""

from __future__ import annotations

from pathlib import Path

from flute.evaluate.figures import EmbeddedFigure, embedded_png, render_report_page
from flute.evaluate.plots import calibration_png, decision_curve_png, roc_png
from flute.evaluate.report import ValidationReport
from flute.evaluate.tables import report_tables

TEMPLATE_NAME = "report.html"


def report_figures(report: ValidationReport) -> tuple[EmbeddedFigure, ...]:
    """ROC curves (sites + pooled), calibration plots (per site + pooled) and decision curves."""
    return (
        embedded_png("ROC curves per hospital and pooled", roc_png(report.sites, report.pooled)),
        embedded_png("Calibration per hospital and pooled", calibration_png((*report.sites, report.pooled))),
        embedded_png("Decision curves", decision_curve_png(report)),
    )


def render_html(report: ValidationReport) -> str:
    """The report as an HTML document string."""
    return render_report_page("flute.evaluate", TEMPLATE_NAME, report=report, tables=report_tables(report), figures=report_figures(report))


def write_html(report: ValidationReport, path: Path) -> Path:
    """Write the self-contained HTML report to `path` (parent folders must exist) and return it."""
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"write_html: folder {path.parent} does not exist; create it first")
    path.write_text(render_html(report), encoding="utf-8")
    return path
