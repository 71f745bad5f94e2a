"""Entry point of the `flute` CLI: assembles the command groups.

Each group lives in its own module and imports heavy libraries only inside the
commands that need them, so `flute --help` stays instant.
"""

from __future__ import annotations

import typer

from flute.cli import admin_cmd, audit_cmd
from flute.cli import synth_cmd
from flute.cli import coordinator_cmd, demo_cmd, fhir_cmd, hub_cmd, model_cmd, pki_cmd, score_cmd, simulate_cmd, stats_cmd, study_cmd

app = typer.Typer(
    name="flute",
    help="FLUTE: federated, privacy-enforcing healthcare AI across hospital data hubs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(fhir_cmd.app, name="fhir")
app.add_typer(hub_cmd.app, name="hub")
app.command("simulate")(simulate_cmd.simulate)
app.add_typer(pki_cmd.app, name="pki")
app.add_typer(coordinator_cmd.app, name="coordinator")
app.add_typer(study_cmd.app, name="study")
app.add_typer(model_cmd.app, name="model")
app.add_typer(score_cmd.app, name="score")
app.add_typer(stats_cmd.app, name="stats")
app.command("demo")(demo_cmd.demo)
app.add_typer(admin_cmd.app, name="admin")
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(synth_cmd.app, name="synth")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
