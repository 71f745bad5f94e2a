"""`flute demo`: the main job on the embedded default - three simulated hospitals, end to end.

Simulate -> ingest into three hub stores -> run the csPCa study federated (the same path as
`flute study run`) -> print the validation table and write the HTML report.
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
    a federated csPCa study across them, its validation report (DIR/report.html) and the signed
    model artifact (DIR/model)."""
    from rich.console import Console
    from rich.table import Table

    from flute.cli import study_cmd
    from flute.demo import package_demo_model, prepare_hubs

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
    console.print(f"study spec: {prepared.spec_path}")

    study_cmd.run(prepared.spec_path, [hub.home for hub in prepared.hubs], out=out, checkpoint=None)
    model = package_demo_model(out)
    console.print(f"signed model artifact: {model.artifact} (check it: flute model verify {model.artifact} --trust {model.public_key})")
    console.print(f"demo finished in {time.perf_counter() - started:.0f} s; report: {out / 'report.html'}")
