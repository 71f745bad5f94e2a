"""Federated validation: metrics from additive score histograms, and the TRIPOD-style report.

Hub side: `summarise_scores(y, p, grid)` -> `ScoreSummary` (release `summary.to_arrays()`).
Coordinator side: `ScoreSummary.from_arrays(summed_arrays, grid)` or `combine(summaries)`, then
`evaluate_summary(summary)` and `build_validation_report(...)`; render with `render_terminal`
or `write_html`. Pure: no I/O except `write_html`, no global state, no Flower imports.
"""

from flute.evaluate.grid import ScoreGrid
from flute.evaluate.html_report import write_html
from flute.evaluate.metrics import EvaluationMetrics, evaluate_summary
from flute.evaluate.report import (
    NamedSummary,
    RunDescription,
    StudyDescription,
    ValidationReport,
    build_validation_report,
)
from flute.evaluate.summary import ScoreSummary, combine, summarise_scores
from flute.evaluate.terminal import render_terminal

__all__ = [
    "EvaluationMetrics",
    "NamedSummary",
    "RunDescription",
    "ScoreGrid",
    "ScoreSummary",
    "StudyDescription",
    "ValidationReport",
    "build_validation_report",
    "combine",
    "evaluate_summary",
    "render_terminal",
    "summarise_scores",
    "write_html",
]
