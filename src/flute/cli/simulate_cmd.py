"""`flute simulate`: write the three simulated pilot sites as FHIR, plus a manifest of what a
correct ingest must find. Thin: parses arguments, calls flute.cohort.simulate, prints a summary."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer


class FormatChoice(str, Enum):
    BUNDLES = "bundles"
    NDJSON = "ndjson"


def simulate(
    out: Annotated[Path, typer.Option("--out", help="New or empty directory; one subdirectory per site plus manifest.json.")],
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed; the same seed writes byte-identical files.")] = 0,
    fmt: Annotated[
        FormatChoice,
        typer.Option("--format", help="bundles: one batch Bundle per patient; ndjson: FHIR Bulk Data files per resource type."),
    ] = FormatChoice.BUNDLES,
    scale: Annotated[float, typer.Option("--scale", min=0.001, help="Multiplies every site's patient count (e.g. 10 for a load test).")] = 1.0,
) -> None:
    """Simulate the pilot cohort (Vall d'Hebron, IRST, CHU Liège) as FHIR R4 following the FLUTE IG."""
    from flute.cohort.simulate import MANIFEST_NAME, simulate_cohort

    try:
        manifest = simulate_cohort(out, seed=seed, fmt=fmt.value, scale=scale)
    except (FileExistsError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    for site in manifest.sites:
        invalid = sum(site.invalid_resources.values())
        typer.echo(
            f"{site.slug:<10} {site.patients:>6} patients  {site.included:>6} included  "
            f"csPCa {site.realised_prevalence:6.1%} (target {site.expected_prevalence:.0%})  "
            f"{sum(site.resources.values()):>7} resources  {invalid:>4} deliberately invalid  -> {out / site.directory}"
        )
    typer.echo(f"manifest: {out / MANIFEST_NAME}")
