"""`flute demo`: the main job on the embedded default - three simulated hospitals, end to end.

Simulate -> ingest into three hub stores -> choose the model family by federated cross-validation
-> run the chosen csPCa study federated (the same path as `flute study run`) -> print the
validation table (the model beside PI-RADS alone and the BCN-style reference), write the HTML
report and package the model as a signed artifact.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer


def demo(
    out: Annotated[Path, typer.Option("--out", help="Directory for the simulated FHIR, hub homes, study spec and report.")] = Path("demo-output"),
    seed: Annotated[int, typer.Option("--seed", help="Seed of the cohort simulator.")] = 0,
) -> None:
    """Run the main job end to end: three simulated pilot hospitals, each with its own hub store,
    federated model selection over the model zoo, the chosen model's federated csPCa study, its
    validation report (DIR/report.html) and the signed model artifact (DIR/model)."""
    from rich.console import Console
    from rich.table import Table

    from flute.cli import study_cmd
    from flute.demo import SELECTION_FILE, choose_study, package_demo_model, prepare_hubs

    console = Console()
    started = time.perf_counter()
    try:
        with console.status("preparing hubs") as status:
            prepared = prepare_hubs(out, seed=seed, on_step=lambda step: status.update(step))
    except FileExistsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc

    table = Table(title="Hub stores after ingestion (each hospital's data stays in its own store)")
    for column in ("hospital", "FHIR read", "stored", "quarantined", "patients", "included", "labelled", "csPCa"):
        table.add_column(column, justify="left" if column == "hospital" else "right")
    for hub in prepared.hubs:
        prevalence = f"{hub.cspca_prevalence:.1%}" if hub.cspca_prevalence is not None else "-"
        table.add_row(
            hub.site, str(hub.read), str(hub.stored), str(hub.quarantined), str(hub.patients), str(hub.included),
            str(hub.labelled), prevalence,
        )
    console.print(table)
    for hub in prepared.hubs:
        reasons = ", ".join(f"{rule} x{count}" for rule, count in sorted(hub.quarantined_by_rule.items())) or "none"
        console.print(f"  quarantined at {hub.site}: {reasons}")
    homes = [hub.home for hub in prepared.hubs]
    with console.status("model selection") as status:
        study = choose_study(out, homes, on_step=lambda step: status.update(step))
    selection = Table(title="Model selection: pooled 5-fold federated cross-validation (same folds for every model)")
    for column in ("model", "AUROC", "net benefit at 15 %"):
        selection.add_column(column, justify="left" if column == "model" else "right")
    for score in study.selection.scores:
        chosen = " (chosen)" if score.candidate == study.selection.best else ""
        selection.add_row(f"{score.candidate.model['name']}{chosen}", f"{score.auroc:.4f}", f"{score.net_benefit:.4f}")
    console.print(selection)
    console.print(f"study spec: {study.spec_path}; selection: {out / SELECTION_FILE}")

    study_cmd.run(study.spec_path, homes, out=out, checkpoint=None)
    model = package_demo_model(out)
    console.print(f"signed model artifact: {model.artifact} (check it: flute model verify {model.artifact} --trust {model.public_key})")
    console.print(f"demo finished in {time.perf_counter() - started:.0f} s; report: {out / 'report.html'}")
