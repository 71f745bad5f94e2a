"""The evaluation report of a synthetic dataset as ONE self-contained HTML file: tables of
`flute.synth.evaluate.Evaluation` and PNG plots embedded as data URIs (F-IMSD-3, NF-IMSD-3/4),
in the house style of `flute.evaluate.html_report` (no external assets: it travels with the
dataset version, opens offline).

Plots: per-column real vs synthetic distributions, the absolute difference of the Spearman
correlation matrices, TSTR vs train-on-real AUROC bars, and the histograms of the synthetic
rows' distances to the closest train and holdout record (DCR). They read the real rows, so the
report is built where the evaluation runs (where the real rows are); only figures leave.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from flute.evaluate.figures import EmbeddedFigure, embedded_png, new_figure, png_bytes, render_report_page
from flute.synth.evaluate import Evaluation, closest_record_distances, correlation_matrix, numeric_values
from flute.synth.schema import TableSchema

if TYPE_CHECKING:
    import pandas as pd

TEMPLATE_NAME = "report.html"
REAL_COLOUR, SYNTHETIC_COLOUR = "#4c72b0", "#dd8452"
HISTOGRAM_BINS = 30


@dataclass(frozen=True)
class ReportTable:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class ReportInput:
    """What the report shows: the dataset's name and provenance, the evaluation, and the frames
    it was computed on (synthetic, real train, real holdout, all typed by `schema`)."""

    title: str
    provenance: Mapping[str, Any]
    evaluation: Evaluation
    schema: TableSchema
    synthetic: pd.DataFrame
    train: pd.DataFrame
    holdout: pd.DataFrame


def render_report(report: ReportInput) -> str:
    return render_report_page("flute.synth", TEMPLATE_NAME, title=report.title, tables=report_tables(report), figures=report_figures(report))


def report_tables(report: ReportInput) -> tuple[ReportTable, ...]:
    evaluation = report.evaluation.to_json()
    provenance = tuple((key, _text(value)) for key, value in report.provenance.items())
    summary = tuple((f"{part}.{key}", _text(value)) for part, values in evaluation.items() for key, value in values.items() if not isinstance(value, dict))  # type: ignore[union-attr]
    columns = tuple((name, f"{value:.3f}") for name, value in report.evaluation.fidelity.column_distance.items())
    return (
        ReportTable("How it was generated", ("property", "value"), provenance),
        ReportTable("Evaluation (fidelity, utility on the real holdout, privacy)", ("metric", "value"), summary),
        ReportTable("Per-column distance (KS for numbers, total variation for categories)", ("column", "distance"), columns),
    )


def report_figures(report: ReportInput) -> tuple[EmbeddedFigure, ...]:
    return (
        embedded_png("Per-column distributions: real (train) vs synthetic", distributions_png(report.schema, report.train, report.synthetic)),
        embedded_png("Absolute difference of the Spearman correlations, real vs synthetic", correlation_difference_png(report.schema, report.train, report.synthetic)),
        embedded_png("Utility: AUROC on the real holdout, trained on synthetic (TSTR) vs on real (TRTR)", utility_png(report.evaluation)),
        embedded_png("Distance to the closest record: synthetic rows to train vs holdout records", dcr_png(report.schema, report.synthetic, report.train, report.holdout)),
    )


def distributions_png(schema: TableSchema, real: pd.DataFrame, synthetic: pd.DataFrame) -> bytes:
    columns = schema.columns
    width = min(4, len(columns))
    rows = -(-len(columns) // width)
    figure = new_figure(3.4 * width, 2.8 * rows)
    axes = figure.subplots(rows, width, squeeze=False).ravel()
    for axis, column in zip(axes, columns):
        if column.kind.numeric:
            a, b = numeric_values(real[column.name]), numeric_values(synthetic[column.name])
            a, b = a[~np.isnan(a)], b[~np.isnan(b)]
            edges = np.histogram_bin_edges(np.r_[a, b], bins=HISTOGRAM_BINS)
            axis.hist(a, bins=edges, density=True, alpha=0.55, color=REAL_COLOUR, label="real")
            axis.hist(b, bins=edges, density=True, alpha=0.55, color=SYNTHETIC_COLOUR, label="synthetic")
        else:
            p = real[column.name].astype("string").fillna("missing").value_counts(normalize=True)
            q = synthetic[column.name].astype("string").fillna("missing").value_counts(normalize=True)
            labels = sorted(set(p.index) | set(q.index))
            positions = np.arange(len(labels))
            axis.bar(positions - 0.2, [p.get(label, 0.0) for label in labels], width=0.4, color=REAL_COLOUR, label="real")
            axis.bar(positions + 0.2, [q.get(label, 0.0) for label in labels], width=0.4, color=SYNTHETIC_COLOUR, label="synthetic")
            axis.set_xticks(positions, labels, rotation=30, fontsize="small")
        axis.set_title(column.name, fontsize="medium")
    for axis in axes[len(columns):]:
        axis.set_visible(False)
    axes[0].legend(fontsize="small")
    return png_bytes(figure)


def correlation_difference_png(schema: TableSchema, real: pd.DataFrame, synthetic: pd.DataFrame) -> bytes:
    difference = np.abs(correlation_matrix(schema, real) - correlation_matrix(schema, synthetic))
    figure = new_figure(6.0, 5.0)
    axis = figure.add_subplot()
    image = axis.imshow(difference, vmin=0.0, vmax=1.0, cmap="Reds")
    ticks = np.arange(len(schema.names))
    axis.set_xticks(ticks, schema.names, rotation=45, ha="right", fontsize="small")
    axis.set_yticks(ticks, schema.names, fontsize="small")
    for (i, j), value in np.ndenumerate(difference):
        if not np.isnan(value):
            axis.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize="x-small")
    figure.colorbar(image, ax=axis, label="|real - synthetic|")
    return png_bytes(figure)


def utility_png(evaluation: Evaluation) -> bytes:
    utility = evaluation.utility
    figure = new_figure(5.0, 3.6)
    axis = figure.add_subplot()
    positions = np.arange(2)
    axis.bar(positions - 0.2, [utility.tstr_lr, utility.tstr_gb], width=0.4, color=SYNTHETIC_COLOUR, label="trained on synthetic (TSTR)")
    axis.bar(positions + 0.2, [utility.trtr_lr, utility.trtr_gb], width=0.4, color=REAL_COLOUR, label="trained on real (TRTR)")
    axis.axhline(0.5, linestyle=":", color="grey")
    axis.set_xticks(positions, ["logistic regression", "gradient boosting"])
    axis.set(ylim=(0.0, 1.0), ylabel="AUROC on the real holdout")
    axis.legend(fontsize="small", loc="lower right")
    return png_bytes(figure)


def dcr_png(schema: TableSchema, synthetic: pd.DataFrame, train: pd.DataFrame, holdout: pd.DataFrame, *, seed: int = 0) -> bytes:
    """The distances behind `Privacy.dcr_ratio`: train subsampled to the holdout's size."""
    to_train, to_holdout = closest_record_distances(schema, synthetic, train, holdout, seed=seed)
    figure = new_figure(5.5, 3.6)
    axis = figure.add_subplot()
    edges = np.histogram_bin_edges(np.r_[to_train, to_holdout], bins=HISTOGRAM_BINS)
    axis.hist(to_train, bins=edges, alpha=0.55, color=REAL_COLOUR, label=f"to train (median {np.median(to_train):.2f})")
    axis.hist(to_holdout, bins=edges, alpha=0.55, color="#55a868", label=f"to holdout (median {np.median(to_holdout):.2f})")
    axis.set(xlabel="distance to the closest real record (standardised)", ylabel="synthetic rows")
    axis.legend(fontsize="small")
    return png_bytes(figure)




def _text(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v) if not isinstance(v, (list, tuple)) else "-".join(map(str, v)) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_text(v)}" for k, v in value.items())
    return "none" if value is None else str(value)
