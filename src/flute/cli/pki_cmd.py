"""`flute pki`: the deployment's certificate authority, coordinator certificate and hub keys.

Thin: parses arguments, calls `flute.engine.pki`, prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Certificates (TLS) and hub authentication keys of a deployment.", no_args_is_help=True)

DirOption = Annotated[Path, typer.Option("--dir", help="The coordinator's PKI directory.")]


@app.command("init")
def init(
    directory: DirOption,
    hosts: Annotated[
        str,
        typer.Option("--hosts", help="Comma-separated DNS names / IPs hubs use to reach the coordinator (loopback is always added)."),
    ] = "localhost,127.0.0.1",
) -> None:
    """Create the CA and the coordinator's TLS certificate; hubs pin DIR/ca.pem."""
    from flute.engine.pki import PkiError, init_pki

    try:
        layout = init_pki(directory, [host for host in hosts.split(",") if host.strip()])
    except PkiError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"CA:          {layout.ca_cert} (give this file to every hub)")
    typer.echo(f"coordinator: {layout.server_cert} (key {layout.server_key}, mode 0600)")
    typer.echo(f"enrolment:   {layout.enrolment}")


@app.command("issue")
def issue(
    directory: DirOption,
    hub: Annotated[str, typer.Option("--hub", help="The hub's name, e.g. hospital-a.")],
    public_key: Annotated[
        Path | None,
        typer.Option("--public-key", help="Enrol this public key (made at the hub) instead of creating a key pair here."),
    ] = None,
    secagg_key: Annotated[
        str | None,
        typer.Option("--secagg-key", help="The hub's secure-aggregation identity key (hex, from `flute hub identity`)."),
    ] = None,
    home: Annotated[
        Path | None,
        typer.Option("--home", help="Read the secure-aggregation identity key from this hub home (hub on this machine)."),
    ] = None,
) -> None:
    """Enrol a hub: create its authentication key pair (or take its public key) and list it.

    With --secagg-key or --home the hub can also join secure-aggregation (pets) studies."""
    from flute.engine.pki import PkiError, PkiLayout, enrol_hub_public_key, issue_hub_key
    from flute.hub.home import HubHomeError

    if secagg_key is not None and home is not None:
        typer.echo("error: give --secagg-key or --home, not both", err=True)
        raise typer.Exit(2)
    try:
        if home is not None:
            from flute.hub.identity import identity_public_hex

            secagg_key = identity_public_hex(home)
        if public_key:
            key = enrol_hub_public_key(directory, hub, public_key, secagg_key)
        else:
            key = issue_hub_key(directory, hub, secagg_key)
    except (PkiError, HubHomeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if key.private_key_path is not None:
        typer.echo(f"hub {hub!r}: private key {key.private_key_path} (mode 0600; copy it to the hub, then delete it here)")
    typer.echo(f"hub {hub!r} enrolled: {key.public_key_openssh}")
    if key.secagg_public_hex is not None:
        typer.echo(f"hub {hub!r} secure-aggregation identity enrolled: {key.secagg_public_hex}")
        typer.echo(f"give every hub a fresh copy of {PkiLayout(directory).secagg_enrolment}")
    typer.echo("restart `flute coordinator serve` for the enrolment to take effect")
