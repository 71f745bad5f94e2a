"""The TRIPOD-style report: built from histograms only, rendered to HTML and to the terminal."""

from __future__ import annotations

import base64
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from flute.evaluate import (
    NamedSummary,
    RunDescription,
    ScoreGrid,
    StudyDescription,
    ValidationReport,
    build_validation_report,
    render_terminal,
    summarise_scores,
    write_html,
)
from flute.evaluate.grid import expit
from flute.evaluate.tables import format_auroc, format_estimate, format_percent

from .score_distributions import realistic_cspca

SITES = {"Vall d'Hebron": 1963, "IRST Meldola": 400, "CHU Liege": 700}
PIRADS_RISK = np.array([0.06, 0.05, 0.19, 0.54, 0.84])


@pytest.fixture(scope="module")
def report() -> ValidationReport:
    grid = ScoreGrid()
    rng = np.random.default_rng(42)
    site_data = {name: realistic_cspca(rng, n) for name, n in SITES.items()}
    sites = [NamedSummary(name, summarise_scores(y, p, grid), 4.5 + i) for i, (name, (y, p)) in enumerate(site_data.items())]
    # held-out evaluation: a model trained without the site scores it slightly worse
    held_out = [NamedSummary(name, summarise_scores(y, expit(0.9 * np.log(p / (1 - p)) - 0.1), grid)) for name, (y, p) in site_data.items()]
    y_all = np.concatenate([y for y, _ in site_data.values()])
    p_all = np.concatenate([p for _, p in site_data.values()])
    pirads_proxy = PIRADS_RISK[np.digitize(p_all, [0.1, 0.2, 0.35, 0.6])]
    comparators = [NamedSummary("PI-RADS alone", summarise_scores(y_all, pirads_proxy, grid))]
    return build_validation_report(
        StudyDescription("cspca-pilot-1", "csPCa pilot validation", "Federated logistic regression on the 7 BCN-RC variables"),
        RunDescription(mode="federated", pets=("secure aggregation", "differential privacy"), rounds=25, epsilon=3.0, delta=1e-5),
        sites,
        internal_external=held_out,
        comparators=comparators,
    )


class _Document(HTMLParser):
    """Collects tables (with the title of the preceding <h2>) and <img> sources."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[str] = []
        self._heading: str | None = None
        self._in_heading = False
        self._current: list[list[str]] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "h2":
            self._in_heading, self._heading = True, ""
        elif tag == "table":
            self._current = []
            self.tables[self._heading or ""] = self._current
        elif tag == "tr" and self._current is not None:
            self._current.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(dict(attrs)["src"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2":
            self._in_heading = False
        elif tag == "table":
            self._current = None
        elif tag in ("td", "th") and self._current is not None and self._cell is not None:
            self._current[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._in_heading:
            self._heading = (self._heading or "") + data
        if self._cell is not None:
            self._cell.append(data)


def test_html_report_is_self_contained_with_plots_and_correct_numbers(report: ValidationReport, tmp_path: Path) -> None:
    path = write_html(report, tmp_path / "report.html")
    document = _Document()
    document.feed(path.read_text(encoding="utf-8"))

    assert len(document.images) == 3
    for source in document.images:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"

    sites = document.tables["Performance per hospital and pooled"]
    assert sites[0][:2] == ["Hospital", "n"]
    rows = {row[0]: row for row in sites[1:]}
    assert set(rows) == {*SITES, "Pooled"}
    for result in (*report.sites, report.pooled):
        row = rows[result.name]
        assert int(row[1]) == result.metrics.n
        assert row[3] == format_percent(result.missing_percent)
        assert row[4] == format_auroc(result.metrics.auroc)
        assert float(row[4].split()[0]) == pytest.approx(result.metrics.auroc.value, abs=5e-4)
        assert row[6] == format_estimate(result.metrics.calibration.slope)
    assert int(rows["Pooled"][1]) == sum(SITES.values())

    decision = document.tables["Decision curve: net benefit on the pooled patients"]
    assert decision[0][:2] == ["Threshold", "Federated model"] and "PI-RADS alone" in decision[0]
    assert [row[0] for row in decision[1:]] == [f"{k}%" for k in range(5, 31)]
    at_15 = next(row for row in decision[1:] if row[0] == "15%")
    assert float(at_15[1]) == pytest.approx(report.pooled.metrics.operating_point.counts.net_benefit, abs=5e-5)

    loho = document.tables["Internal-external validation (leave one hospital out)"]
    assert [row[0] for row in loho[1:]] == list(SITES)
    assert "Heterogeneity across hospitals (DerSimonian-Laird random effects)" in document.tables
    operating = document.tables["Biopsy decision at a 15% risk threshold"]
    pooled_op = next(row for row in operating if row[0] == "Pooled")
    assert float(pooled_op[1].rstrip("%")) == pytest.approx(report.pooled.metrics.operating_point.biopsies_avoided_percent, abs=0.05)
    methods = path.read_text(encoding="utf-8").split('class="methods">', 1)[1]
    assert f"{report.grid.n_bins} bins" in methods
    assert f"at most {report.pooled.metrics.auroc.error_bound:.4f}" in methods
    assert "secure aggregation, differential privacy" in methods and "epsilon = 3" in methods


def test_terminal_rendering_shows_every_section(report: ValidationReport) -> None:
    console = Console(record=True, width=220)
    for renderable in render_terminal(report):
        console.print(renderable)
    text = console.export_text()
    for expected in (
        "Performance per hospital and pooled",
        "Internal-external validation",
        "Model and comparators on the pooled patients",
        "Heterogeneity across hospitals",
        "Decision curve",
        "Biopsy decision at a 15% risk threshold",
        "Methods",
        "PI-RADS alone",
        format_auroc(report.pooled.metrics.auroc),
        "secure aggregation, differential privacy",
    ):
        assert expected in text, expected


def test_report_refuses_comparators_scored_on_other_patients(report: ValidationReport) -> None:
    grid = report.grid
    site = NamedSummary("A", summarise_scores(np.array([0, 1, 0, 1]), np.array([0.1, 0.8, 0.3, 0.6]), grid))
    other = NamedSummary("PI-RADS alone", summarise_scores(np.array([0, 1]), np.array([0.1, 0.8]), grid))
    with pytest.raises(ValueError, match="same patients"):
        build_validation_report(report.study, report.run, [site], comparators=[other])


def test_single_site_report_has_no_heterogeneity_and_reports_unestimable_calibration(tmp_path: Path) -> None:
    grid = ScoreGrid()
    separated = NamedSummary("Only site", summarise_scores(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.7, 0.9]), grid))
    report = build_validation_report(
        StudyDescription("s", "tiny", "m"), RunDescription(mode="simulation", pets=(), rounds=None), [separated]
    )
    assert report.heterogeneity is None and report.pooled.metrics.calibration is None
    assert "separate" in (report.pooled.metrics.calibration_problem or "")
    document = _Document()
    document.feed(write_html(report, tmp_path / "r.html").read_text(encoding="utf-8"))
    assert "not estimable" in document.tables["Performance per hospital and pooled"][1]
