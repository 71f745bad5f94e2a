"""`flute hub api`: run the hub's HTTP API, the server other nodes and the data owner's staff
talk to (F-HUF-21). A function, not a group: `flute.cli.hub_cmd` registers it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flute.cli.service_options import HostOption, IdleOption, TlsCertOption, TlsKeyOption, security_policy, tls_files


def api(
    home: Annotated[Path, typer.Option("--home", help="The hub home (`flute hub init`, then `flute admin init --home`).")],
    host: HostOption = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port of the API.")] = 8444,
    tls_cert: TlsCertOption = None,
    tls_key: TlsKeyOption = None,
    idle_timeout: IdleOption = 15,
    coordinator: Annotated[str | None, typer.Option("--coordinator", help="Coordinator API URL the data-owner UI takes access requests from and publishes the catalogue to (token in $FLUTE_COORDINATOR_TOKEN).")] = None,
    coordinator_ca: Annotated[Path | None, typer.Option("--coordinator-ca", help="CA certificate of the coordinator's TLS (default: the system's).")] = None,
) -> None:
    """Serve the hub API and the data-owner UI at /ui/ (HTTPS with --tls-cert/--tls-key); Ctrl-C stops."""
    from flute.governance.keys import NodeKeyError
    from flute.governance.link import CoordinatorUnavailable, link_from_environment
    from flute.governance.service import serve
    from flute.hub.home import HubHomeError
    from flute.hub.service import create_app
    from flute.hub.store import StoreError
    from flute.hub.ui.pages import connect_coordinator

    tls = tls_files(tls_cert, tls_key)
    try:
        app = create_app(home, policy=security_policy(idle_timeout))
        if coordinator is not None:
            connect_coordinator(app, link_from_environment(coordinator, coordinator_ca))
        serve(app, host, port, tls)
    except (HubHomeError, StoreError, NodeKeyError, CoordinatorUnavailable, FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
