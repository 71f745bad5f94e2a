"""`flute hub identity`: print this hub's secure-aggregation identity public key (URS-15).

A function, not a group: `flute.cli.hub_cmd` registers it as `flute hub identity`. The hub sends
the printed hex to the coordinator, which enrols it with `flute pki issue --secagg-key HEX`; the
private key stays in the hub home (created 0600 on first use).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def identity(home: Annotated[Path, typer.Option("--home", help="The hub home whose identity key to show.")]) -> None:
    """Print the hub's Ed25519 identity public key (hex), creating the key on first use."""
    from flute.hub.home import HubHomeError
    from flute.hub.identity import identity_public_hex

    try:
        typer.echo(identity_public_hex(home))
    except HubHomeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
