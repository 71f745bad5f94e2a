"""Matplotlib figures for reports without pyplot: each figure on its own Agg canvas (no global
backend or figure state is touched, so reports can be drawn from worker threads and jobs), saved
as PNG bytes for embedding. matplotlib is imported only when a figure is drawn."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def new_figure(width: float, height: float) -> Figure:
    """A constrained-layout figure of `width` x `height` inches at 100 dpi on an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def png_bytes(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


@dataclass(frozen=True)
class EmbeddedFigure:
    """A figure ready for an <img src="data:..."> tag: reports stay one self-contained file."""

    title: str
    data_uri: str


def embedded_png(title: str, png: bytes) -> EmbeddedFigure:
    return EmbeddedFigure(title, "data:image/png;base64," + base64.b64encode(png).decode("ascii"))


def render_report_page(package: str, template: str, **context: object) -> str:
    """Render `package`'s templates/`template`, which extends flute.evaluate's
    `base_report.html` (one layout and style for every FLUTE report), autoescaped."""
    from jinja2 import ChoiceLoader, Environment, PackageLoader, select_autoescape

    loader = ChoiceLoader([PackageLoader(package, "templates"), PackageLoader("flute.evaluate", "templates")])
    environment = Environment(loader=loader, autoescape=select_autoescape(default=True, default_for_string=True))
    return environment.get_template(template).render(**context)
