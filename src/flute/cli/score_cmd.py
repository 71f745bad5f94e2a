"""`flute score`: csPCa risk for FHIR input with a verified model (F-STD-7, F-PIL-24).

`run` prints a FHIR Bundle of RiskAssessments, or an OperationOutcome listing every problem and
exits 1; `serve` verifies the artifact, then serves it over HTTP (flute.deploy.service).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, List, Optional

import typer

from flute.cli.model_cmd import DEFAULT_TRUST, TrustOption, verified_model

if TYPE_CHECKING:
    from flute.deploy.artifact import ScoringModel

SiteOption = Annotated[
    Optional[str],
    typer.Option("--site", help="Score as this training site, with its own intercept (models trained with hub intercepts; see GET /model)."),
]


def site_model(model: ScoringModel, site: str | None) -> ScoringModel:
    """The model at `site`, or exit 2 saying which sites it knows."""
    from flute.deploy.artifact import UnknownSite

    try:
        return model.for_site(site)
    except UnknownSite as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


app = typer.Typer(help="Score FHIR Bundles with a verified model: RiskAssessments out.", no_args_is_help=True)


@app.command("run")
def run(
    bundles: Annotated[List[Path], typer.Argument(help="FHIR JSON Bundles/resources or NDJSON files (one or many patients).")],
    model_path: Annotated[Path, typer.Option("--model", help="The model artifact directory.")],
    trust: TrustOption = DEFAULT_TRUST,
    site: SiteOption = None,
) -> None:
    """Validate and extract exactly as a hub does, then score every patient."""
    import orjson

    from flute.deploy.scoring import assessments_bundle, score_units
    from flute.fhir.readers import iter_units
    from flute.fhir.validate import operation_outcome

    model = site_model(verified_model(model_path, trust), site)
    report = score_units(iter_units(bundles), model)
    document = operation_outcome(report.issues) if report.failed else assessments_bundle(report, model)
    sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
    raise typer.Exit(1 if report.failed else 0)


@app.command("serve")
def serve(
    model_path: Annotated[Path, typer.Argument(help="The model artifact directory.")],
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8080,
    trust: TrustOption = DEFAULT_TRUST,
    site: SiteOption = None,
) -> None:
    """Verify the artifact (refuse to start if it fails), then serve POST /score, GET /health,
    GET /model and /openapi.json."""
    from flute.deploy.service import serve as serve_model

    model = site_model(verified_model(model_path, trust), site)
    identity = model.manifest.model
    typer.echo(f"serving {identity.model_id} {identity.version} on http://{host}:{port} (verified)", err=True)
    serve_model(model, host, port)

