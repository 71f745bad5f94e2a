"""`flute coordinator`: serve the coordinator (Flower SuperLink) and submit studies to it.

Thin: parses arguments, calls `flute.engine.deploy`, prints. The Control API that `submit`
uses is reachable from the coordinator machine's loopback only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flute.cli import coordinator_api_cmd

app = typer.Typer(help="The coordinator of a multi-machine deployment.", no_args_is_help=True)
app.command("api")(coordinator_api_cmd.api)

PkiOption = Annotated[Path, typer.Option("--pki", help="The coordinator's PKI directory (`flute pki init`).")]
PortOption = Annotated[int, typer.Option("--port", min=1, max=65535, help="The coordinator's port.")]


@app.command("serve")
def serve(
    pki: PkiOption,
    host: Annotated[str, typer.Option("--host", help="127.0.0.1 (one machine) or 0.0.0.0 / :: (hubs on other machines).")] = "127.0.0.1",
    port: PortOption = 9093,
    state: Annotated[Path, typer.Option("--state", help="Directory for logs and Flower's runtime files.")] = Path("flute-coordinator"),
) -> None:
    """Run the SuperLink: TLS, only enrolled hubs admitted, Control API on loopback only."""
    from flute.engine.deploy import Coordinator, DeploymentError, serve_until_signalled
    from flute.engine.pki import PkiError

    try:
        coordinator = Coordinator(pki, state, host=host, port=port)
    except (DeploymentError, PkiError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"coordinator listening on {host}:{port} (log: {coordinator.process.log_path})")
    typer.echo(f"enrolled hubs: {', '.join(sorted(coordinator.enrolment)) or 'none (use `flute pki issue`)'}; Ctrl-C stops")
    try:
        exit_code = serve_until_signalled(coordinator.process)
    finally:
        coordinator.stop()
    if exit_code is not None:
        typer.echo(f"error: the SuperLink exited with code {exit_code}:\n{coordinator.process.log_tail()}", err=True)
        raise typer.Exit(1)


@app.command("submit")
def submit(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="The study spec (.json or .toml).")],
    pki: PkiOption,
    out: Annotated[Path, typer.Option("--out", help="Directory for result.flute (on this, the coordinator, machine).")],
    port: PortOption = 9093,
    hubs: Annotated[int, typer.Option("--hubs", min=0, help="Wait until this many hubs are connected before starting.")] = 0,
    timeout: Annotated[float, typer.Option("--timeout", min=1.0, help="Seconds to wait for the study to finish.")] = 3600.0,
) -> None:
    """Run a study on the running deployment; exit 1 with the SuperLink's reason if it fails."""
    from flute.engine.deploy import ControlClient, DeploymentError, read_study_result, study_bundle
    from flute.engine.pki import PkiError, PkiLayout
    from flute.engine.spec import SpecError, StudySpec

    try:
        spec = StudySpec.load(spec_path)
        layout = PkiLayout(pki)
        layout.require_ca()
        bundle = study_bundle(spec, out, pki=pki)
        control = ControlClient(f"127.0.0.1:{port}", layout.ca_cert)
    except (SpecError, PkiError, DeploymentError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        if hubs:
            connected = control.wait_for_hubs(minimum=hubs)
            typer.echo(f"hubs connected: {', '.join(hub.name for hub in connected)}")
        run_id = control.start_run(bundle)
        typer.echo(f"run {run_id} submitted")
        control.wait_for_run(run_id, timeout)
        result = read_study_result(out)
    except DeploymentError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        control.close()
    typer.echo(f"run {run_id} completed: {len(result.outcomes)} tasks; result in {out}")
