"""`flute coordinator api`: run the coordinator's HTTP API (authentication, governance routes).

A function, not a group: `flute.cli.coordinator_cmd` registers it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flute.cli.service_options import HostOption, IdleOption, TlsCertOption, TlsKeyOption, security_policy, tls_files


def api(
    home: Annotated[Path | None, typer.Option("--home", help="Coordinator home (default: $FLUTE_COORDINATOR_HOME, else ./flute-coordinator).")] = None,
    host: HostOption = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port of the API.")] = 8443,
    tls_cert: TlsCertOption = None,
    tls_key: TlsKeyOption = None,
    idle_timeout: IdleOption = 15,
    hub: Annotated[list[Path] | None, typer.Option("--hub", help="A hub home this coordinator runs studies and statistics on in embedded mode (single machine); repeat per hub.")] = None,
) -> None:
    """Serve the coordinator API (HTTPS with --tls-cert/--tls-key); Ctrl-C stops."""
    from flute.coordinator.app import create_app
    from flute.coordinator.home import CoordinatorHomeError, resolve_home
    from flute.governance.keys import NodeKeyError
    from flute.governance.service import serve
    from flute.hub.home import HubHomeError

    tls = tls_files(tls_cert, tls_key)
    try:
        app = create_app(resolve_home(home), policy=security_policy(idle_timeout), hub_homes=hub or [])
        serve(app, host, port, tls)
    except (CoordinatorHomeError, HubHomeError, NodeKeyError, FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
