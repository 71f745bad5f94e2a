"""Terminal view of a validation report as rich renderables (the CLI prints them; we never do)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flute.evaluate.report import ValidationReport
from flute.evaluate.tables import ReportTable, report_tables

if TYPE_CHECKING:
    from rich.console import RenderableType


def _rich_table(table: ReportTable) -> RenderableType:
    from rich.table import Table

    rendered = Table(title=table.title, title_justify="left", header_style="bold")
    for index, column in enumerate(table.columns):
        rendered.add_column(column, justify="left" if index == 0 else "right", overflow="fold")
    for row in table.rows:
        rendered.add_row(*row)
    return rendered


def render_terminal(report: ValidationReport) -> list[RenderableType]:
    """Title, every report table and the methods paragraph, in reading order."""
    from rich.panel import Panel
    from rich.text import Text

    title = Text(f"Validation report - {report.study.name}", style="bold")
    return [title, *(_rich_table(t) for t in report_tables(report)), Panel(report.methods, title="Methods")]
