"""`flute fhir`: check hospital FHIR exports against the FLUTE IG and extract study variables.

Thin: reads, screens and extracts through `flute.fhir`, and prints. Exit code 1 whenever
input was rejected, so scripts notice data that did not make it.
"""

from __future__ import annotations

import sys
from collections import Counter
from enum import Enum
from pathlib import Path
from typing import Iterable, List

import orjson
import typer
from rich.console import Console
from rich.table import Table

from flute.cohort.variables import VARIABLE_NAMES, StudyRow
from flute.fhir.extract import InclusionRule, extract_all
from flute.fhir.issues import Issue
from flute.fhir.readers import DEFAULT_MAX_RESOURCE_BYTES, ReadLimits, iter_units
from flute.fhir.screen import Screened, screen
from flute.fhir.validate import operation_outcome

app = typer.Typer(
    help="Validate FHIR data against the FLUTE IG profiles and extract the study variables.",
    no_args_is_help=True,
)

_PATHS = typer.Argument(..., help="FHIR JSON (Bundle or resource) and Bulk NDJSON files, or directories of them.")
_MAX_BYTES = typer.Option(DEFAULT_MAX_RESOURCE_BYTES, "--max-resource-bytes", min=1, help="Refuse any single resource larger than this.")
_STYLE = {"fatal": "bold red", "error": "red", "warning": "yellow", "information": "cyan"}


class Comparison(str, Enum):
    AT_LEAST = ">="
    ABOVE = ">"


@app.command()
def validate(
    paths: List[Path] = _PATHS,
    json_output: bool = typer.Option(False, "--json", help="Print a FHIR OperationOutcome instead of a table."),
    max_resource_bytes: int = _MAX_BYTES,
) -> None:
    """Check every resource against the FLUTE IG; exit 1 if any error was found."""
    screened = screen(iter_units(paths, ReadLimits(max_resource_bytes=max_resource_bytes)))
    if json_output:
        sys.stdout.write(orjson.dumps(operation_outcome(screened.issues), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        console = Console()
        if screened.issues:
            console.print(_issue_table(screened.issues))
        console.print(_summary(screened))
    raise typer.Exit(1 if screened.has_errors else 0)


@app.command()
def extract(
    paths: List[Path] = _PATHS,
    json_output: bool = typer.Option(False, "--json", help="One JSON object per patient and line."),
    psa_threshold: float = typer.Option(3.0, "--psa-threshold", min=0.0, help="PSA inclusion threshold in ng/mL."),
    psa_comparison: Comparison = typer.Option(Comparison.AT_LEAST, "--psa-comparison", help="'>=' (IG rule) or '>' (protocol prose)."),
    max_resource_bytes: int = _MAX_BYTES,
) -> None:
    """Validate, then extract one study row per patient from the valid resources.

    Rejected resources and other findings go to stderr; exit 1 if any resource was rejected.
    """
    screened = screen(iter_units(paths, ReadLimits(max_resource_bytes=max_resource_bytes)))
    rows, extract_issues = extract_all(screened.accepted, InclusionRule(psa_threshold, psa_comparison.value))
    errors = Console(stderr=True)
    for issue in [*screened.issues, *extract_issues]:
        errors.print(f"[{_STYLE[issue.severity.value]}]{issue.severity.value}[/] {issue.message}", markup=True, highlight=False, soft_wrap=True)
    if screened.rejected:
        errors.print(_summary(screened))
    if json_output:
        sys.stdout.write("".join(orjson.dumps(row.to_json()).decode() + "\n" for row in rows))
    else:
        Console().print(_row_table(rows))
    raise typer.Exit(1 if screened.rejected else 0)


def _issue_table(issues: Iterable[Issue]) -> Table:
    table = Table(title="Validation issues", show_lines=False)
    for column in ("severity", "rule", "resource", "location", "message"):
        table.add_column(column, overflow="fold")
    for issue in issues:
        resource = f"{issue.resource_type}/{issue.resource_id or '?'}" if issue.resource_type else ""
        table.add_row(f"[{_STYLE[issue.severity.value]}]{issue.severity.value}[/]", issue.rule, resource, issue.location or "", issue.message)
    return table


def _row_table(rows: Iterable[StudyRow]) -> Table:
    table = Table(title="Study variables")
    for column in ("patient", "included", *VARIABLE_NAMES, "csPCa"):
        table.add_column(column)
    for row in rows:
        table.add_row(row.patient, str(row.included), *(_cell(row.variables.get(n)) for n in VARIABLE_NAMES), _cell(row.cspca))
    return table


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def _summary(screened: Screened) -> str:
    counts = Counter(issue.severity.value for issue in screened.issues)
    found = ", ".join(f"{n} {severity}" for severity, n in sorted(counts.items())) or "no issues"
    return f"{screened.read} records read, {len(screened.accepted)} accepted, {screened.rejected} rejected ({found})"
