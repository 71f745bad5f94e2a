"""`flute hub serve`: run this hub's federation node (a Flower SuperNode bound to the hub home).

A function, not a group: `flute.cli.hub_cmd` registers it as `flute hub serve`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def serve(
    home: Annotated[Path, typer.Option("--home", help="The hub home whose store studies read.")],
    coordinator: Annotated[str, typer.Option("--coordinator", help="The coordinator's address, HOST:PORT.")],
    pki: Annotated[Path, typer.Option("--pki", help="Directory holding the coordinator's ca.pem (and secagg-enrolment.json).")],
    key: Annotated[Path, typer.Option("--key", help="This hub's authentication private key (from `flute pki issue`).")],
    name: Annotated[str | None, typer.Option("--name", help="Name the hub reports (default: the hub home's name).")] = None,
    state: Annotated[Path | None, typer.Option("--state", help="Directory for the node's logs and runtime files (default: HOME/node).")] = None,
) -> None:
    """Connect this hub to the coordinator over TLS with its enrolled key; answer study messages.

    PKI/secagg-enrolment.json, if present, is this hub's list of its peers' secure-aggregation keys."""
    from flute.engine.deploy import DeploymentError, HubServer, serve_until_signalled
    from flute.engine.pki import PkiError, PkiLayout, secagg_enrolment
    from flute.hub.home import HubHomeError, load_config

    try:
        hub_name = name or load_config(home).name
        server = HubServer(
            hub_name, home, coordinator, PkiLayout(pki).ca_cert, key, state or home / "node",
            secagg_identities=secagg_enrolment(pki),
        )  # fmt: skip
    except (DeploymentError, PkiError, HubHomeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"hub {hub_name!r} serving {home} to {coordinator} (log: {server.process.log_path}); Ctrl-C stops")
    try:
        exit_code = serve_until_signalled(server.process)
    finally:
        server.stop()
    if exit_code is not None:
        typer.echo(f"error: the hub node exited with code {exit_code}:\n{server.process.log_tail()}", err=True)
        raise typer.Exit(1)
